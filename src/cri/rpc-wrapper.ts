// The one path every CRI call takes: readiness check, entry and exit debug
// lines (request scrubbed of secrets, duration, status), the mapping of any
// thrown error to a gRPC status, and cancellation handed to the handler as
// an AbortSignal (client gone or deadline passed).
import { status as GrpcStatus, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData } from '@grpc/grpc-js';
import { logger, type Logger } from '../lib/log.js';
import { CriError, toGrpcStatus } from './errors.js';
import { scrubForLog } from './scrub.js';
import { criRequestSeconds, criRequests } from '../lib/metrics.js';

export interface CallContext {
  /** Service and method, e.g. "ImageService/PullImage". */
  rpc: string;
  /** Aborted when the client cancels or the call's deadline passes. */
  signal: AbortSignal;
  /** The client's deadline, if it gave one. */
  deadline: Date | undefined;
  /** Aborted when the daemon starts shutting down: calls that never end by themselves (event streams) end then. */
  stopping: AbortSignal;
}

export type UnaryHandler<Req, Res> = (req: Req, ctx: CallContext) => Promise<Res>;
/**
 * A server-streaming handler: `send` writes one response message. Its promise
 * waits while the client reads slower than we write (gRPC's buffer is full),
 * so a handler that awaits it holds at most one buffer of unread messages.
 */
export type StreamHandler<Req, Res> = (req: Req, ctx: CallContext, send: (msg: Res) => Promise<void>) => Promise<void>;

const log = logger('cri');

/** Where calls go through: readiness, the in-flight count, and the cancellers a forced shutdown fires. */
export class CallGate {
  private state: 'starting' | 'ready' | 'stopping' = 'starting';
  private inflight = 0;
  private readonly active = new Set<AbortController>();
  private readonly stoppingCtl = new AbortController();

  /** Aborted once the gate moves to stopping. */
  get stopping(): AbortSignal {
    return this.stoppingCtl.signal;
  }

  setReady(): void {
    this.moveTo('ready');
  }

  setStopping(): void {
    this.moveTo('stopping');
  }

  private moveTo(next: 'ready' | 'stopping'): void {
    // starting -> ready -> stopping, or starting -> stopping; never back.
    if (this.state === next || this.state === 'stopping') return;
    log.debug(`gate ${this.state} -> ${next}`);
    this.state = next;
    if (next === 'stopping') this.stoppingCtl.abort();
  }

  get inFlight(): number {
    return this.inflight;
  }

  /** Throws the error a client sees when calls are not served now. */
  enter(rpc: string): void {
    if (this.state === 'starting') throw new CriError('UNAVAILABLE', `frakti is still starting; retry ${rpc} shortly`);
    if (this.state === 'stopping') throw new CriError('UNAVAILABLE', `frakti is shutting down; ${rpc} refused`);
    this.inflight++;
  }

  /** Registers a call's canceller so that a forced shutdown reaches its handler. */
  track(abort: AbortController): void {
    this.active.add(abort);
  }

  /** Aborts every call still running (forced shutdown). */
  abortAll(reason: Error): void {
    for (const a of this.active) a.abort(reason);
  }

  leave(abort?: AbortController): void {
    if (abort) this.active.delete(abort);
    this.inflight--;
  }
}

interface AnyCall {
  request: unknown;
  getDeadline(): Date | number;
  on(event: 'cancelled', fn: () => void): unknown;
  cancelled: boolean;
}

function contextOf(rpc: string, call: AnyCall, stopping: AbortSignal): { ctx: CallContext; abort: AbortController; settle: () => void } {
  const abort = new AbortController();
  let settled = false;
  // grpc-js may report 'cancelled' after the answer went out (the stream
  // closing); aborting then would reach work that already ended.
  const d = call.getDeadline();
  const deadline = d instanceof Date ? d : Number.isFinite(d) ? new Date(d) : undefined;
  call.on('cancelled', () => {
    if (settled) return;
    const late = deadline !== undefined && deadline.getTime() <= Date.now();
    abort.abort(late ? new CriError('DEADLINE_EXCEEDED', `${rpc}: the client's deadline passed`) : new CriError('CANCELLED', `${rpc}: the client cancelled the call`));
  });
  return { ctx: { rpc, signal: abort.signal, deadline, stopping }, abort, settle: () => void (settled = true) };
}

function logExit(l: Logger, rpc: string, startNs: bigint, code: GrpcStatus, err?: unknown, details?: string): void {
  const durationMs = Number(process.hrtime.bigint() - startNs) / 1e6;
  const method = rpc.slice(rpc.indexOf('/') + 1);
  criRequests.inc({ method, code: GrpcStatus[code] });
  criRequestSeconds.observe({ method }, durationMs / 1000);
  const fields = { rpc, duration_ms: Math.round(durationMs * 1000) / 1000, status: GrpcStatus[code] };
  if (code === GrpcStatus.OK) l.debug('rpc done', fields);
  // A bug of ours: with the stack.
  else if (code === GrpcStatus.INTERNAL) l.error('rpc failed', { ...fields, error: details, stack: err instanceof Error ? err.stack : undefined });
  // Trouble outside the client's control (a registry failing): operators want it.
  else if (code === GrpcStatus.UNKNOWN) l.warn('rpc failed', { ...fields, error: details });
  // The client's own mistake or an expected answer (NotFound): only when debugging.
  else l.debug('rpc failed', { ...fields, error: details });
}

/** Last resort: a failure while answering must not become an unhandled rejection. */
function answerFailed(rpc: string) {
  return (err: unknown) => log.error('could not send the answer', { rpc, error: String(err) });
}

export function wrapUnary<Req, Res>(gate: CallGate, rpc: string, handler: UnaryHandler<Req, Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    const start = process.hrtime.bigint();
    log.debug('rpc start', { rpc, request: scrubForLog(call.request) });
    try {
      gate.enter(rpc);
    } catch (err) {
      const st = toGrpcStatus(err);
      logExit(log, rpc, start, st.code, err, st.details);
      callback({ code: st.code, details: st.details });
      return;
    }
    const { ctx, abort, settle } = contextOf(rpc, call as unknown as AnyCall, gate.stopping);
    gate.track(abort);
    Promise.resolve()
      .then(() => handler(call.request, ctx))
      .finally(settle)
      .then(
        (res) => {
          logExit(log, rpc, start, GrpcStatus.OK);
          callback(null, res);
        },
        (err: unknown) => {
          const st = toGrpcStatus(err);
          logExit(log, rpc, start, st.code, err, st.details);
          callback({ code: st.code, details: st.details });
        },
      )
      .catch(answerFailed(rpc))
      .finally(() => gate.leave(abort));
  };
}

/** Resolves once the call's write buffer drains, or the call is cancelled (then nothing more is read). */
function drained(call: ServerWritableStream<unknown, unknown>, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      call.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    if (signal.aborted) return resolve();
    call.on('drain', done);
    signal.addEventListener('abort', done);
  });
}

export function wrapServerStream<Req, Res>(gate: CallGate, rpc: string, handler: StreamHandler<Req, Res>) {
  return (call: ServerWritableStream<Req, Res>): void => {
    const start = process.hrtime.bigint();
    log.debug('rpc start', { rpc, request: scrubForLog(call.request) });
    try {
      gate.enter(rpc);
    } catch (err) {
      const st = toGrpcStatus(err);
      logExit(log, rpc, start, st.code, err, st.details);
      call.emit('error', { code: st.code, details: st.details });
      return;
    }
    const { ctx, abort, settle } = contextOf(rpc, call as unknown as AnyCall, gate.stopping);
    gate.track(abort);
    Promise.resolve()
      .then(() => handler(call.request, ctx, (msg) => (call.write(msg) ? Promise.resolve() : drained(call, ctx.signal))))
      .finally(settle)
      .then(
        () => {
          logExit(log, rpc, start, GrpcStatus.OK);
          call.end();
        },
        (err: unknown) => {
          const st = toGrpcStatus(err);
          logExit(log, rpc, start, st.code, err, st.details);
          call.emit('error', { code: st.code, details: st.details });
        },
      )
      .catch(answerFailed(rpc))
      .finally(() => gate.leave(abort));
  };
}
