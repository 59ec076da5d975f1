// Processes beside a container's own: ExecSync (run, collect, bounded) and
// the interactive exec the streaming server drives.
import { randomBytes } from 'node:crypto';
import { errorMessage } from '../lib/errors.js';
import type { ProcessIo } from './agent-port.js';
import type { PodContext } from './context.js';
import { PodError } from './errors.js';
import { GUEST_SETUP_TIMEOUT_MS } from './container-ops.js';

/** Each of stdout and stderr of ExecSync is kept up to this size; the rest is dropped. */
export const EXEC_SYNC_MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

export interface ExecSyncResult {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
}

function runningContainer(ctx: PodContext, id: string) {
  const c = ctx.containers.must(id);
  if (c.status.state !== 'RUNNING') throw new PodError('FAILED_PRECONDITION', `container ${id} is ${c.status.state}, not RUNNING`);
  const live = ctx.livePods.get(c.meta.podId);
  if (!live) throw new PodError('FAILED_PRECONDITION', `the pod of container ${id} is not running`);
  return { c, agent: live.agent };
}

function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let size = 0;
    stream.on('data', (b: Buffer) => {
      if (size >= EXEC_SYNC_MAX_OUTPUT_BYTES) return;
      const keep = b.subarray(0, EXEC_SYNC_MAX_OUTPUT_BYTES - size);
      parts.push(keep);
      size += keep.length;
    });
    const done = () => resolve(Buffer.concat(parts));
    stream.on('end', done);
    stream.on('close', done);
    stream.on('error', done);
  });
}

export interface ExecOptions {
  tty: boolean;
  stdin: boolean;
}

/** Starts a process in a running container with the container's user and environment. */
export async function execProcess(ctx: PodContext, id: string, cmd: string[], opts: ExecOptions, startTimeoutMs = GUEST_SETUP_TIMEOUT_MS): Promise<{ execId: string; io: ProcessIo }> {
  if (cmd.length === 0) throw new PodError('INVALID_ARGUMENT', 'exec needs a command');
  const { agent } = runningContainer(ctx, id);
  const execId = randomBytes(8).toString('hex');
  // The agent fills in the container's env, cwd and user for an exec whose spec leaves them empty.
  const io = await agent.exec(id, execId, { args: cmd, env: [], cwd: '', uid: -1, gid: -1, additionalGids: [], terminal: opts.tty, stdin: opts.stdin }, { timeoutMs: startTimeoutMs });
  return { execId, io };
}

export async function execSync(ctx: PodContext, id: string, cmd: string[], timeoutSec: number): Promise<ExecSyncResult> {
  const { agent } = runningContainer(ctx, id);
  const what = JSON.stringify(cmd.join(' ')).slice(0, 200);
  // The caller's timeout bounds the whole call, the start too: a guest that
  // stopped answering must not hold it for the agent's own bound.
  const startBound = timeoutSec > 0 ? Math.min(GUEST_SETUP_TIMEOUT_MS, timeoutSec * 1000) : GUEST_SETUP_TIMEOUT_MS;
  const { execId, io } = await execProcess(ctx, id, cmd, { tty: false, stdin: false }, startBound).catch((err: unknown) => {
    if ((err as { code?: unknown }).code === 'AGENT_TIMEOUT') throw new PodError('DEADLINE_EXCEEDED', `command ${what} did not start within ${startBound / 1000} s: the guest did not answer`, {}, err);
    throw err;
  });
  const out = Promise.all([collect(io.stdout), collect(io.stderr)]);
  const waited = agent.wait(id, execId);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((r) => {
    if (timeoutSec > 0) timer = setTimeout(() => r('timeout'), timeoutSec * 1000);
  });
  try {
    const exit = await Promise.race([waited, timedOut]);
    if (exit === 'timeout') {
      // Not waited for: a guest that stopped answering would hold the reply for the signal's own bound.
      agent.signal(id, execId, 'SIGKILL').catch(() => {});
      throw new PodError('DEADLINE_EXCEEDED', `command ${what} timed out after ${timeoutSec} s`);
    }
    const [stdout, stderr] = await out;
    return { stdout, stderr, exitCode: exit.exitCode };
  } catch (err) {
    if (err instanceof PodError) throw err;
    throw new PodError('INTERNAL', `exec in container ${id}: ${errorMessage(err)}`, {}, err);
  } finally {
    clearTimeout(timer);
  }
}
