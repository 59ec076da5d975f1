// RuntimeService/ContainerStats, ListContainerStats, PodSandboxStats, ListPodSandboxStats:
// cpu and memory from the guest cgroups, through the agent.
import type { PodManager } from '../pod/index.js';
import type { PodDeps } from './pod-manager-holder.js';
import { matchesLabels, nanos } from './pod-mapping.js';
import type { StringMap } from './cri-types.js';
import type { ContainerStats } from './runtime-types.js';

async function statsOf(pods: PodManager, id: string): Promise<ContainerStats> {
  const c = pods.container(id);
  const s = await pods.containerStats(c.meta.id).catch(() => undefined);
  const ts = nanos(s?.timestamp.getTime() ?? Date.now());
  // The writable layer lives on the host (the overlay's upper dir): kubelet weighs it for ephemeral-storage eviction.
  const rw = await pods.writableLayer(c.meta.id).catch(() => undefined);
  return {
    attributes: { id: c.meta.id, metadata: { name: c.meta.spec.name, attempt: c.meta.spec.attempt }, labels: c.meta.spec.labels, annotations: c.meta.spec.annotations },
    cpu: s ? { timestamp: ts, usage_core_nano_seconds: { value: s.cpuUsageNs.toString() }, usage_nano_cores: null } : null,
    memory: s ? { timestamp: ts, working_set_bytes: { value: String(s.memoryWorkingSetBytes) }, usage_bytes: { value: String(s.memoryUsageBytes) }, available_bytes: null } : null,
    writable_layer: rw ? { timestamp: nanos(Date.now()), fs_id: { mountpoint: rw.dir }, used_bytes: { value: String(rw.bytes) }, inodes_used: { value: String(rw.inodes) } } : null,
  };
}

export function makeContainerStats(d: PodDeps) {
  return async (req: { container_id: string }) => ({ stats: await statsOf(d.pods(), req.container_id) });
}

export function makeListContainerStats(d: PodDeps) {
  return async (req: { filter: { id: string; pod_sandbox_id: string; label_selector: StringMap } | null }) => {
    const f = req.filter;
    const pods = d.pods();
    const ids = pods.containers().filter((c) =>
      c.status.state === 'RUNNING' && (!f?.id || c.meta.id.startsWith(f.id)) && (!f?.pod_sandbox_id || c.meta.podId.startsWith(f.pod_sandbox_id)) && matchesLabels(c.meta.spec.labels, f?.label_selector));
    return { stats: await Promise.all(ids.map((c) => statsOf(pods, c.meta.id))) };
  };
}

async function podStats(pods: PodManager, id: string) {
  const p = pods.pod(id);
  const containers = await Promise.all(pods.containers().filter((c) => c.meta.podId === p.meta.id && c.status.state === 'RUNNING').map((c) => statsOf(pods, c.meta.id)));
  const sum = (f: (s: ContainerStats) => string | undefined) => containers.reduce((a, s) => a + BigInt(f(s) ?? '0'), 0n).toString();
  const ts = nanos(Date.now());
  const net = await pods.podNetwork(id).catch(() => undefined);
  const eth0 = net && { name: 'eth0', rx_bytes: { value: String(net.rxBytes) }, rx_errors: { value: String(net.rxErrors) }, tx_bytes: { value: String(net.txBytes) }, tx_errors: { value: String(net.txErrors) } };
  return {
    attributes: { id: p.meta.id, metadata: p.meta.spec.metadata, labels: p.meta.spec.labels, annotations: p.meta.spec.annotations },
    linux: {
      cpu: { timestamp: ts, usage_core_nano_seconds: { value: sum((s) => s.cpu?.usage_core_nano_seconds?.value) }, usage_nano_cores: null },
      memory: { timestamp: ts, working_set_bytes: { value: sum((s) => s.memory?.working_set_bytes?.value) }, usage_bytes: { value: sum((s) => s.memory?.usage_bytes?.value) }, available_bytes: null },
      network: eth0 ? { timestamp: ts, default_interface: eth0, interfaces: [eth0] } : null,
      process: null,
      containers,
    },
    windows: null,
  };
}

export function makePodSandboxStats(d: PodDeps) {
  return async (req: { pod_sandbox_id: string }) => ({ stats: await podStats(d.pods(), req.pod_sandbox_id) });
}

export function makeListPodSandboxStats(d: PodDeps) {
  return async (req: { filter: { id: string; label_selector: StringMap } | null }) => {
    const f = req.filter;
    const pods = d.pods();
    const ids = pods.pods().filter((p) => p.status.state === 'READY' && (!f?.id || p.meta.id.startsWith(f.id)) && matchesLabels(p.meta.spec.labels, f?.label_selector));
    return { stats: await Promise.all(ids.map((p) => podStats(pods, p.meta.id))) };
  };
}
