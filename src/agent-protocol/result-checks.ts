// Checks of what the agent answers, field by field: the guest is untrusted,
// so every id, count and string is bounded before the host uses it. A
// failure is AGENT_PROTOCOL, and the client closes the channel.
import { protocolError } from './errors.js';
import { array, bool, boundedString, int32, int64Big, object, u64, uint32 } from './messages.js';
import type { ContainerInfo, ContainerStats, ExitStatus, GuestStats } from './types.js';

const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const EXEC_ID = /^([A-Za-z0-9_-]{1,64})?$/;
/** The agent keeps at most this many exec records per container. */
const MAX_EXECS_PER_CONTAINER = 1024;
/** Most containers a listContainers answer may name. */
export const MAX_LISTED_CONTAINERS = 4096;
const MAX_EXIT_CODE = 255 + 128;
const MAX_NS = 2n ** 63n - 1n;

export interface StreamIds {
  stdout: number;
  stderr: number;
  stdin: number;
}

export function uint32Field(v: unknown, field: string): number {
  return uint32(v, field);
}

export function streamIds(v: unknown, field: string): StreamIds {
  const o = object(v, field);
  const ids = { stdout: uint32(o.stdoutStream, `${field} stdout`), stderr: uint32(o.stderrStream, `${field} stderr`), stdin: uint32(o.stdinStream, `${field} stdin`) };
  if (ids.stdout === 0 || ids.stderr === 0) throw protocolError(`${field} lacks an output stream`);
  const set = new Set([ids.stdout, ids.stderr, ids.stdin].filter((x) => x !== 0));
  if (set.size !== (ids.stdin === 0 ? 2 : 3)) throw protocolError(`${field} names one stream twice`);
  return ids;
}

export function processStarted(body: Record<string, unknown>): { pid: number; io: StreamIds } {
  const pid = uint32(body.pid, 'pid');
  if (pid === 0 || pid > 4194304) throw protocolError(`pid ${pid} is out of range`);
  return { pid, io: streamIds(body.io, 'io') };
}

function containerId(v: unknown, field: string): string {
  const id = boundedString(v, field, 128);
  if (!CONTAINER_ID.test(id)) throw protocolError(`${field} is not a container id`);
  return id;
}

export function exitStatus(v: unknown, field: string): ExitStatus {
  const o = object(v, field);
  const exitCode = int32(o.exitCode, `${field} exit_code`);
  if (exitCode < 0 || exitCode > MAX_EXIT_CODE) throw protocolError(`${field} exit code ${exitCode} is out of range`);
  const signal = boundedString(o.signal, `${field} signal`, 16);
  if (signal !== '' && !/^SIG[A-Z0-9+]{2,12}$/.test(signal)) throw protocolError(`${field} signal is not a signal name`);
  const ns = int64Big(o.exitedAtNs, `${field} exited_at_ns`, 0n, MAX_NS);
  const status: ExitStatus = { exitCode, exitedAt: new Date(Number(ns / 1_000_000n)) };
  if (signal) status.signal = signal;
  return status;
}

export function exitEvent(body: Record<string, unknown>): { containerId: string; execId: string; status: ExitStatus } {
  const execId = boundedString(body.execId, 'exit exec_id', 64);
  if (!EXEC_ID.test(execId)) throw protocolError('exit exec_id is not an exec id');
  return { containerId: containerId(body.containerId, 'exit container_id'), execId, status: exitStatus(body.status, 'exit status') };
}

export function oomEvent(body: Record<string, unknown>): string {
  return containerId(body.containerId, 'oom container_id');
}

export function containerStats(body: Record<string, unknown>): ContainerStats {
  const ns = int64Big(body.timestampNs, 'timestamp_ns', 0n, MAX_NS);
  return {
    cpuUsageNs: int64Big(body.cpuUsageNs, 'cpu_usage_ns', 0n, 2n ** 64n - 1n),
    memoryUsageBytes: u64(body.memoryUsageBytes, 'memory_usage_bytes'),
    memoryWorkingSetBytes: u64(body.memoryWorkingSetBytes, 'memory_working_set_bytes'),
    pids: u64(body.pids, 'pids'),
    timestamp: new Date(Number(ns / 1_000_000n)),
  };
}

export function guestStats(body: Record<string, unknown>): GuestStats {
  return {
    memTotalBytes: u64(body.memTotalBytes, 'mem_total_bytes'),
    memAvailableBytes: u64(body.memAvailableBytes, 'mem_available_bytes'),
    cpus: uint32(body.cpus, 'cpus'),
  };
}

export function containerInfos(body: Record<string, unknown>): ContainerInfo[] {
  return array(body.containers, 'containers', MAX_LISTED_CONTAINERS).map((v, i) => {
    const o = object(v, `containers[${i}]`);
    const state = boundedString(o.state, 'state', 16);
    if (state !== 'created' && state !== 'running' && state !== 'exited') throw protocolError(`container state ${JSON.stringify(state)} is unknown`);
    const runningExecs = array(o.runningExecs ?? [], 'runningExecs', MAX_EXECS_PER_CONTAINER).map((e) => {
      const id = boundedString(e, 'running exec id', 64);
      if (!id || !EXEC_ID.test(id)) throw protocolError('runningExecs holds something that is not an exec id');
      return id;
    });
    const info: ContainerInfo = { id: containerId(o.id, 'container id'), state, pid: uint32(o.pid, 'container pid'), runningExecs };
    if (bool(o.exited, 'container exited')) info.exit = exitStatus(o.exit, 'container exit');
    return info;
  });
}
