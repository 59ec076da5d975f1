// The typed agent client: one session on one byte stream.
//
//   syncing --HELLO from agent--> open --close()/error/EOF--> closed
//   syncing --timeout/error/EOF--> closed
//
// Calls are REQUEST frames on odd stream ids; the RESPONSE with the same id
// settles the call. Every call has a timeout; pending calls fail with
// AGENT_CLOSED when the channel closes. The guest is untrusted: a response
// for a stream id we never used, a bad frame or an undecodable message
// closes the channel with AGENT_PROTOCOL.
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { logger } from '../lib/log.js';
import { AgentCallError, AgentError, protocolError } from './errors.js';
import {
  encodeFrame,
  FrameDecoder,
  FrameType,
  HOST_MAGIC,
  MAX_FRAME_PAYLOAD_BYTES,
  NONCE_BYTES,
  PROTOCOL_VERSION,
  SyncScanner,
  type Frame,
} from './framing.js';
import {
  decodeError,
  decodeHello,
  decodeResponse,
  encodeHello,
  encodeRequest,
  type RequestCall,
  type ResponseResult,
} from './messages.js';

const log = logger('agent');

/** Default of every call's timeoutMs. */
export const CALL_TIMEOUT_MS = 10_000;
/** Calls in flight at once; more is refused with AGENT_BUSY. */
export const MAX_PENDING_CALLS = 1024;
/** Stream ids of timed-out calls whose late response is dropped, not a protocol error. */
const MAX_EXPIRED_STREAMS = 1024;
/** Longest timeout a caller may ask for (a day), so a typo is not a forever-wait. */
const MAX_TIMEOUT_MS = 24 * 3600 * 1000;

export interface AgentVersion {
  agentVersion: string;
  protocolVersion: number;
  kernelRelease: string;
}

export interface CallOptions {
  /** Default CALL_TIMEOUT_MS (10 s). */
  timeoutMs?: number;
}

interface PendingCall {
  call: string;
  timer: NodeJS.Timeout;
  resolve: (r: ResponseResult) => void;
  reject: (e: Error) => void;
}

type State = 'syncing' | 'open' | 'closed';

export function checkTimeout(ms: unknown, what: string): number {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0 || ms > MAX_TIMEOUT_MS) {
    throw new AgentError('AGENT_OPTIONS', `${what} must be a number of milliseconds in (0, ${MAX_TIMEOUT_MS}], not ${String(ms)}`);
  }
  return ms;
}

export class AgentClient extends EventEmitter {
  private state: State = 'syncing';
  private readonly decoder = new FrameDecoder();
  private readonly scanner: SyncScanner;
  private readonly nonce = randomBytes(NONCE_BYTES);
  private readonly pending = new Map<number, PendingCall>();
  private readonly expired = new Set<number>();
  private nextStreamId = 1;
  private handshake?: { resolve: () => void; reject: (e: Error) => void; timer: NodeJS.Timeout };
  private closeError: Error | undefined;
  private synced = false;
  /** The agent's version string from its HELLO (set once open). */
  agentVersion = '';

  /** Use connectAgent(); the constructor only wires the stream. `what` names the peer in errors. */
  constructor(
    private readonly stream: Duplex,
    readonly what: string,
  ) {
    super();
    this.scanner = new SyncScanner(this.nonce);
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('error', (err: Error) => this.fail(err instanceof AgentError ? err : new AgentError('AGENT_CLOSED', `agent channel ${what} failed: ${err.message}`, {}, { cause: err })));
    stream.on('end', () => this.fail(new AgentError('AGENT_CLOSED', `agent channel ${what} closed by the peer`)));
    stream.on('close', () => this.fail(new AgentError('AGENT_CLOSED', `agent channel ${what} closed`)));
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  /** Sends HOST_MAGIC + HELLO and waits for the agent's marker and HELLO. */
  start(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.state !== 'syncing' || this.handshake) return Promise.reject(new AgentError('AGENT_CLOSED', 'agent client already started'));
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => this.fail(new AgentError('AGENT_TIMEOUT', `agent at ${this.what} did not answer the handshake within ${timeoutMs} ms`, { timeoutMs })),
        timeoutMs,
      );
      this.handshake = { resolve, reject, timer };
      if (signal) {
        const onAbort = () => this.fail(new AgentError('AGENT_ABORTED', `handshake with the agent at ${this.what} was aborted`));
        if (signal.aborted) return onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
        const detach = () => signal.removeEventListener('abort', onAbort);
        this.once('close', detach);
        this.once('open', detach);
      }
      const hello = encodeFrame({ type: FrameType.HELLO, streamId: 0, flags: 0, payload: encodeHello({ protocolVersion: PROTOCOL_VERSION, nonce: this.nonce }) });
      this.stream.write(Buffer.concat([HOST_MAGIC, hello]));
    });
  }

  async version(opts: CallOptions = {}): Promise<AgentVersion> {
    const r = await this.call({ call: 'version' }, opts);
    if (r.result !== 'version') throw this.unexpected('version', r);
    return r.version;
  }

  async ping(opts: CallOptions & { data?: Buffer } = {}): Promise<void> {
    await this.echo(opts.data ?? Buffer.alloc(0), { ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}) });
  }

  /** Ping carrying `data`, which the agent sends back; checks it came back whole. */
  async echo(data: Buffer, opts: CallOptions = {}): Promise<Buffer> {
    const r = await this.call({ call: 'ping', data }, opts);
    if (r.result !== 'ping') throw this.unexpected('ping', r);
    if (!r.data.equals(data)) throw this.fatal(protocolError('ping echo differs from what was sent'));
    return r.data;
  }

  /** Resolves once the agent acknowledged; it then syncs and powers the VM off. */
  async shutdown(opts: CallOptions = {}): Promise<void> {
    const r = await this.call({ call: 'shutdown' }, opts);
    if (r.result !== 'shutdown') throw this.unexpected('shutdown', r);
  }

  close(): void {
    this.fail(new AgentError('AGENT_CLOSED', `agent channel ${this.what} closed by us`), true);
  }

  private call(req: RequestCall, opts: CallOptions): Promise<ResponseResult> {
    const timeoutMs = checkTimeout(opts.timeoutMs ?? CALL_TIMEOUT_MS, 'timeoutMs');
    if (this.state !== 'open') {
      return Promise.reject(this.closeError ?? new AgentError('AGENT_CLOSED', `agent channel ${this.what} is not open`));
    }
    if (this.pending.size >= MAX_PENDING_CALLS) {
      return Promise.reject(new AgentError('AGENT_BUSY', `too many agent calls in flight (${MAX_PENDING_CALLS})`));
    }
    const payload = encodeRequest(req);
    if (payload.length > MAX_FRAME_PAYLOAD_BYTES) {
      return Promise.reject(new AgentError('AGENT_OPTIONS', `agent call ${req.call} of ${payload.length} bytes exceeds the ${MAX_FRAME_PAYLOAD_BYTES}-byte frame limit`));
    }
    const streamId = this.allocateStreamId();
    return new Promise<ResponseResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(streamId);
        this.rememberExpired(streamId);
        reject(new AgentError('AGENT_TIMEOUT', `agent call ${req.call} timed out after ${timeoutMs} ms`, { call: req.call, streamId, timeoutMs }));
      }, timeoutMs);
      this.pending.set(streamId, { call: req.call, timer, resolve, reject });
      log.trace('call', { call: req.call, streamId });
      this.stream.write(encodeFrame({ type: FrameType.REQUEST, streamId, flags: 0, payload }));
    }).then((r) => {
      if (r.result === 'error') throw new AgentCallError(req.call, r.error.errnum, r.error.message);
      return r;
    });
  }

  private allocateStreamId(): number {
    // Odd ids, wrapping before 2^32, skipping ids still in use.
    for (;;) {
      const id = this.nextStreamId;
      this.nextStreamId = id >= 0xfffffffd ? 1 : id + 2;
      if (!this.pending.has(id) && !this.expired.has(id)) return id;
    }
  }

  private rememberExpired(streamId: number): void {
    this.expired.add(streamId);
    if (this.expired.size > MAX_EXPIRED_STREAMS) this.expired.delete(this.expired.values().next().value as number);
  }

  private unexpected(call: string, r: ResponseResult): AgentError {
    return this.fatal(protocolError(`agent answered ${call} with a ${r.result} result`));
  }

  /** Closes the channel with `err` and returns it, for `throw this.fatal(...)`. */
  private fatal(err: AgentError): AgentError {
    this.fail(err);
    return err;
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    try {
      let data: Buffer | null = chunk;
      if (this.state === 'syncing' && !this.synced) {
        data = this.scanner.push(chunk);
        if (data === null) return;
        this.synced = true;
        log.trace('session marker found', { discarded: this.scanner.discardedBytes });
      }
      for (const frame of this.decoder.push(data)) {
        this.onFrame(frame);
        if ((this.state as State) === 'closed') return; // onFrame may have closed us
      }
    } catch (err) {
      this.fail(err instanceof AgentError ? err : protocolError((err as Error).message));
    }
  }

  private onFrame(frame: Frame): void {
    if (frame.type === FrameType.GOAWAY) {
      const e = decodeError(frame.payload);
      throw protocolError(`agent dropped the session: ${e.message} (errno ${e.errnum})`, { errnum: e.errnum });
    }
    if (this.state === 'syncing') {
      if (frame.type !== FrameType.HELLO || frame.streamId !== 0) throw protocolError(`expected HELLO, got frame type ${frame.type}`);
      const hello = decodeHello(frame.payload);
      if (hello.protocolVersion !== PROTOCOL_VERSION) {
        throw protocolError(`agent speaks protocol version ${hello.protocolVersion}, we speak ${PROTOCOL_VERSION}`, { agentProtocol: hello.protocolVersion });
      }
      this.agentVersion = hello.agentVersion;
      this.state = 'open';
      log.trace('syncing -> open', { peer: this.what, agentVersion: hello.agentVersion });
      const hs = this.handshake!;
      clearTimeout(hs.timer);
      this.handshake = undefined;
      this.emit('open');
      hs.resolve();
      return;
    }
    if (frame.type !== FrameType.RESPONSE) throw protocolError(`unexpected frame type ${frame.type} on stream ${frame.streamId}`);
    const p = this.pending.get(frame.streamId);
    if (!p) {
      if (this.expired.delete(frame.streamId)) return; // the answer to a call that timed out
      throw protocolError(`response for unknown stream ${frame.streamId}`, { streamId: frame.streamId });
    }
    const result = decodeResponse(frame.payload);
    this.pending.delete(frame.streamId);
    clearTimeout(p.timer);
    log.trace('response', { call: p.call, streamId: frame.streamId, result: result.result });
    p.resolve(result);
  }

  /** Moves to closed once: rejects the handshake and every pending call, destroys the stream. */
  private fail(err: Error, byUs = false): void {
    if (this.state === 'closed') return;
    log.trace(`${this.state} -> closed`, { peer: this.what, error: err.message });
    this.state = 'closed';
    this.closeError = err;
    if (this.handshake) {
      clearTimeout(this.handshake.timer);
      this.handshake.reject(err);
      this.handshake = undefined;
    }
    const callErr = err instanceof AgentError && err.code === 'AGENT_CLOSED' ? err : new AgentError('AGENT_CLOSED', `agent channel ${this.what} closed: ${err.message}`, {}, { cause: err });
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(callErr);
    }
    this.pending.clear();
    this.stream.destroy();
    this.emit('close', byUs ? undefined : err);
  }
}
