// The sessions behind the CRI streaming URLs: an interactive exec, an
// attach to a container's own process, a port forward into the pod. The
// CRI room carries their bytes over the wire; here they meet the agent.
import { PassThrough, type Duplex, type Readable, type Writable } from 'node:stream';
import { errorMessage } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import type { OutputTap, PodContext } from './context.js';
import { execProcess } from './exec-ops.js';
import { PodError } from './errors.js';

const log = logger('pod');

/** Output an attach client has not taken yet; past it the client misses bytes (the log keeps them all). */
export const ATTACH_MAX_BUFFERED_BYTES = 1024 * 1024;
const TTY_MAX = 0xffff;

export interface ExecSession {
  stdout: Readable;
  stderr: Readable;
  /** Present when asked for; end() closes the process' stdin. */
  stdin?: Writable;
  resize(cols: number, rows: number): Promise<void>;
  /** The exit code, once the process has exited and its output is delivered. */
  exited: Promise<number>;
  /** SIGKILL, for a client that went away. */
  kill(): Promise<void>;
}

export interface AttachSession {
  tty: boolean;
  stdout: Readable;
  stderr: Readable;
  stdin?: Writable;
  resize(cols: number, rows: number): Promise<void>;
  /** Settles when the container has exited and its output reached the streams. */
  exited: Promise<void>;
  detach(): void;
}

function checkSize(cols: number, rows: number): void {
  for (const [n, v] of [['width', cols], ['height', rows]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > TTY_MAX) throw new PodError('INVALID_ARGUMENT', `terminal ${n} ${v} is not in 0..${TTY_MAX}`);
  }
}

export function addOutputTap(ctx: PodContext, id: string, tap: OutputTap): () => void {
  let taps = ctx.outputTaps.get(id);
  if (!taps) ctx.outputTaps.set(id, (taps = new Set()));
  taps.add(tap);
  return () => void taps.delete(tap);
}

function runningContainer(ctx: PodContext, id: string) {
  const c = ctx.containers.must(id);
  const live = ctx.livePods.get(c.meta.podId);
  if (c.status.state !== 'RUNNING' || !live) throw new PodError('FAILED_PRECONDITION', `container ${id} is ${c.status.state}, not RUNNING`);
  return { c, agent: live.agent };
}

export async function startExec(ctx: PodContext, id: string, cmd: string[], opts: { tty: boolean; stdin: boolean }): Promise<ExecSession> {
  const { agent } = runningContainer(ctx, id);
  const { execId, io } = await execProcess(ctx, id, cmd, opts);
  return {
    stdout: io.stdout as Readable,
    stderr: io.stderr as Readable,
    stdin: io.stdin as Writable | undefined,
    resize: async (cols, rows) => {
      checkSize(cols, rows);
      if (opts.tty) await agent.resizeTty(id, execId, rows, cols);
    },
    exited: agent.wait(id, execId).then((s) => s.exitCode),
    kill: () => agent.signal(id, execId, 'SIGKILL').catch(() => {}),
  };
}

/** Streams the container's output from now on, and feeds its stdin when it has one. */
export function attachContainer(ctx: PodContext, id: string, opts: { stdin: boolean }): AttachSession {
  const { c, agent } = runningContainer(ctx, id);
  const live = ctx.liveContainers.get(id);
  const spec = c.meta.spec;
  let stdin: Writable | undefined;
  if (opts.stdin) {
    const target = live?.io?.stdin;
    if (!spec.stdin || !target) throw new PodError('FAILED_PRECONDITION', `container ${id} was not created with stdin open`);
    // The container's stdin outlives one attach: only with stdin_once does the first client's EOF close it.
    const input = new PassThrough();
    // The target errors when the VM's channel goes; that ends this client's input, nothing more.
    const onTargetError = () => input.destroy();
    target.on('error', onTargetError);
    input.pipe(target, { end: false });
    input.on('end', () => {
      if (spec.stdinOnce) target.end();
    });
    input.once('close', () => {
      input.unpipe(target);
      target.off('error', onTargetError);
    });
    stdin = input;
  }
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let dropped = 0;
  const untap = addOutputTap(ctx, id, (name, chunk) => {
    const to = name === 'stdout' ? stdout : stderr;
    if (to.writableLength + chunk.length > ATTACH_MAX_BUFFERED_BYTES) {
      if (dropped === 0) log.warn('attach client is too slow; its copy of the output drops bytes', { container: id });
      dropped += chunk.length;
      return;
    }
    to.write(chunk);
  });
  const detach = () => {
    untap();
    stdout.end();
    stderr.end();
    stdin?.destroy();
  };
  const exited = (live?.exited ?? Promise.resolve()).then(detach, detach);
  return {
    tty: spec.tty,
    stdout,
    stderr,
    stdin,
    resize: async (cols, rows) => {
      checkSize(cols, rows);
      if (spec.tty) await agent.resizeTty(id, '', rows, cols);
    },
    exited,
    detach,
  };
}

/** A byte stream to 127.0.0.1:port inside the pod, through the agent. */
export async function portForward(ctx: PodContext, podId: string, port: number): Promise<Duplex> {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new PodError('INVALID_ARGUMENT', `port ${port} is not in 1..65535`);
  const pod = ctx.pods.must(podId);
  const live = ctx.livePods.get(podId);
  if (pod.status.state !== 'READY' || !live) throw new PodError('FAILED_PRECONDITION', `pod ${podId} is not ready`);
  try {
    return (await live.agent.portForward(port)) as Duplex;
  } catch (err) {
    // The streaming layer names the port and the pod; the agent says what failed.
    throw new PodError('UNAVAILABLE', errorMessage(err), { pod: podId, port }, err);
  }
}
