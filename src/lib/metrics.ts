// The daemon's Prometheus metrics, in one registry every room may record
// into (this is the ground floor). Nothing is served from here: the daemon
// serves the registry on --metrics-address when an operator asks for it.
// Label values are bounded sets (RPC names, status codes, a few kinds), so
// no series grows with the number of pods except the per-VM gauges, which
// are dropped when their VM goes.
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const metrics = new Registry();

let processMetrics = false;
/**
 * Adds the process's own series (RSS, open fds, heap, event loop lag, as
 * prom-client names them), once. Only a daemon that serves metrics asks:
 * the event loop monitor runs for as long as the process does.
 */
export function collectProcessMetrics(): void {
  if (processMetrics) return;
  processMetrics = true;
  collectDefaultMetrics({ register: metrics, prefix: 'frakti_' });
}

const SECONDS_FAST = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const SECONDS_SLOW = [0.25, 0.5, 1, 1.5, 2, 3, 4, 5, 7.5, 10, 15, 20, 30, 60, 120];

export const criRequests = new Counter({ name: 'frakti_cri_requests_total', help: 'CRI calls answered, by method and gRPC status code.', labelNames: ['method', 'code'], registers: [metrics] });
export const criRequestSeconds = new Histogram({ name: 'frakti_cri_request_duration_seconds', help: 'Time to answer a CRI call, by method.', labelNames: ['method'], buckets: SECONDS_FAST, registers: [metrics] });
export const podStartSeconds = new Histogram({
  name: 'frakti_pod_start_duration_seconds',
  help: 'RunPodSandbox from the call to a ready pod, by how its VM came (cold: booted for it).',
  labelNames: ['kind'],
  buckets: SECONDS_SLOW,
  registers: [metrics],
});
export const imagePulls = new Counter({ name: 'frakti_image_pulls_total', help: 'Image pulls, by result (ok, error).', labelNames: ['result'], registers: [metrics] });
export const imagePullBytes = new Counter({ name: 'frakti_image_pull_bytes_total', help: 'Bytes of the images pulled (config and compressed layers).', registers: [metrics] });
export const imagePullSeconds = new Histogram({ name: 'frakti_image_pull_duration_seconds', help: 'Time of a successful image pull.', buckets: SECONDS_SLOW, registers: [metrics] });
export const agentCallSeconds = new Histogram({
  name: 'frakti_agent_call_duration_seconds',
  help: 'Round trip of a call to a guest agent, by call.',
  labelNames: ['call'],
  buckets: SECONDS_FAST,
  registers: [metrics],
});

/** Seconds since a process.hrtime.bigint() reading. */
export function secondsSince(startNs: bigint): number {
  return Number(process.hrtime.bigint() - startNs) / 1e9;
}
