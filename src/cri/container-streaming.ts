// RuntimeService/Exec, Attach and PortForward: check the call, store it
// under a one-time token and answer the streaming server's URL for it.
import type { PodDeps } from './pod-manager-holder.js';
import { CriError, invalidArgument } from './errors.js';
import type { StreamingServer } from '../streaming/index.js';

export interface StreamingDeps extends PodDeps {
  streaming: () => StreamingServer;
}

function runningContainer(d: StreamingDeps, rpc: string, id: string) {
  if (!id) throw invalidArgument(`${rpc}: container_id is required`);
  const c = d.pods().container(id);
  if (c.status.state !== 'RUNNING') throw new CriError('FAILED_PRECONDITION', `${rpc}: container ${c.meta.id} is ${c.status.state}, not RUNNING`);
  return c;
}

function checkChannels(rpc: string, r: { tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean }): void {
  if (!r.stdin && !r.stdout && !r.stderr) throw invalidArgument(`${rpc}: one of stdin, stdout and stderr must be set`);
  if (r.tty && r.stderr) throw invalidArgument(`${rpc}: tty and stderr cannot both be set (a terminal has one output)`);
}

export function makeExec(d: StreamingDeps) {
  return async (req: { container_id: string; cmd: string[]; tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean }) => {
    checkChannels('Exec', req);
    if (req.cmd.length === 0) throw invalidArgument('Exec: cmd is required');
    const c = runningContainer(d, 'Exec', req.container_id);
    const url = d.streaming().urlFor({ kind: 'exec', containerId: c.meta.id, cmd: req.cmd, tty: req.tty, stdin: req.stdin, stdout: req.stdout, stderr: req.stderr });
    return { url };
  };
}

export function makeAttach(d: StreamingDeps) {
  return async (req: { container_id: string; tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean }) => {
    checkChannels('Attach', req);
    const c = runningContainer(d, 'Attach', req.container_id);
    if (req.stdin && !c.meta.spec.stdin) throw new CriError('FAILED_PRECONDITION', `Attach: container ${c.meta.id} was not created with stdin open`);
    if (req.tty !== c.meta.spec.tty) throw invalidArgument(`Attach: tty is ${req.tty} but container ${c.meta.id} was created with tty ${c.meta.spec.tty}`);
    const url = d.streaming().urlFor({ kind: 'attach', containerId: c.meta.id, tty: req.tty, stdin: req.stdin, stdout: req.stdout, stderr: req.stderr });
    return { url };
  };
}

/** Ports one PortForward call may name. */
export const MAX_FORWARDED_PORTS = 32;

export function makePortForward(d: StreamingDeps) {
  return async (req: { pod_sandbox_id: string; port: number[] }) => {
    if (!req.pod_sandbox_id) throw invalidArgument('PortForward: pod_sandbox_id is required');
    // Over WebSocket every port opens its channels and connections at once (SPDY bounds its streams).
    if (req.port.length > MAX_FORWARDED_PORTS) throw invalidArgument(`PortForward: ${req.port.length} ports; at most ${MAX_FORWARDED_PORTS} in one call`);
    for (const p of req.port) if (!Number.isInteger(p) || p < 1 || p > 65535) throw invalidArgument(`PortForward: port ${p} is not in 1..65535`);
    const pod = d.pods().pod(req.pod_sandbox_id);
    if (pod.status.state !== 'READY') throw new CriError('FAILED_PRECONDITION', `PortForward: pod ${pod.meta.id} is ${pod.status.state}, not READY`);
    return { url: d.streaming().urlFor({ kind: 'portforward', podId: pod.meta.id, ports: req.port }) };
  };
}
