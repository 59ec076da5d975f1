// Connecting to the agent: one attempt (connectAgent), or retries while the
// VM may still be booting (waitForAgent).
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { AgentClient, checkTimeout } from './client.js';
import { AgentError } from './errors.js';
import { checkKeys, describeTarget, openTransport, validateTarget, type AgentTarget } from './transport.js';

const log = logger('agent');

/** Default of ConnectOptions.timeoutMs. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** Default of waitForAgent's intervalMs. */
export const WAIT_INTERVAL_MS = 20;
/**
 * Longest single attempt of waitForAgent. Over virtio-serial the socket
 * accepts at once and our HELLO waits in QEMU until the agent opens its port,
 * so one attempt usually spans the boot; the cap only bounds an attempt
 * whose HELLO got lost.
 */
export const WAIT_ATTEMPT_TIMEOUT_MS = 2_000;

export interface ConnectOptions {
  /** Bound on connecting plus the handshake (waitForAgent: on all attempts). Default 10 000 ms. */
  timeoutMs?: number;
  /** Aborts the attempt(s) with AGENT_ABORTED. */
  signal?: AbortSignal;
}

export interface WaitOptions extends ConnectOptions {
  /** Pause between failed attempts. Default 20 ms. */
  intervalMs?: number;
}

/** Connect and handshake once; rejects with AgentError (AGENT_TIMEOUT, AGENT_PROTOCOL, AGENT_CLOSED, AGENT_CONNECT, ...). */
export async function connectAgent(target: AgentTarget, opts: ConnectOptions = {}): Promise<AgentClient> {
  checkKeys(opts, ['timeoutMs', 'signal']);
  validateTarget(target);
  const timeoutMs = checkTimeout(opts.timeoutMs ?? CONNECT_TIMEOUT_MS, 'timeoutMs');
  const deadline = Date.now() + timeoutMs;
  const what = describeTarget(target);
  const opening = openTransport(target, opts.signal);
  // A connection that completes after we gave up is closed, never leaked.
  const stream = await withTimeout(opening, timeoutMs, what).catch((err: unknown) => {
    opening.then((s) => s.destroy(), () => {});
    throw err;
  });
  const client = new AgentClient(stream, what);
  await client.start(Math.max(1, deadline - Date.now()), opts.signal);
  log.debug('agent connected', { target: what, agentVersion: client.agentVersion });
  return client;
}

/** Retries connectAgent until the agent answers, bounded by timeoutMs. */
export async function waitForAgent(target: AgentTarget, opts: WaitOptions = {}): Promise<AgentClient> {
  checkKeys(opts, ['timeoutMs', 'signal', 'intervalMs']);
  validateTarget(target);
  const timeoutMs = checkTimeout(opts.timeoutMs ?? CONNECT_TIMEOUT_MS, 'timeoutMs');
  const intervalMs = checkTimeout(opts.intervalMs ?? WAIT_INTERVAL_MS, 'intervalMs');
  const deadline = Date.now() + timeoutMs;
  let attempts = 0;
  let last: unknown;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    attempts++;
    try {
      return await connectAgent(target, { timeoutMs: Math.min(left, WAIT_ATTEMPT_TIMEOUT_MS), ...(opts.signal ? { signal: opts.signal } : {}) });
    } catch (err) {
      last = err;
      // A protocol error is a real answer from a broken or foreign peer: retrying would not help.
      if (err instanceof AgentError && ['AGENT_PROTOCOL', 'AGENT_ABORTED', 'AGENT_OPTIONS'].includes(err.code)) throw err;
      log.trace('agent not ready', { target: describeTarget(target), attempt: attempts, error: errorMessage(err) });
    }
    const pause = Math.min(intervalMs, deadline - Date.now());
    if (pause > 0) await sleep(pause, undefined, opts.signal ? { signal: opts.signal } : {}).catch(() => {
      throw new AgentError('AGENT_ABORTED', `waiting for the agent at ${describeTarget(target)} was aborted`);
    });
  }
  throw new AgentError(
    'AGENT_TIMEOUT',
    `agent at ${describeTarget(target)} did not answer within ${timeoutMs} ms (${attempts} attempts; last: ${last ? errorMessage(last) : 'none'})`,
    { target: describeTarget(target), timeoutMs, attempts },
    { cause: last },
  );
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new AgentError('AGENT_TIMEOUT', `connecting to the agent at ${what} timed out after ${ms} ms`, { timeoutMs: ms })), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
