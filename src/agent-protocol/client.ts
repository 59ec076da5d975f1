// The typed agent client: one session on one byte stream.
//
//   syncing --HELLO from agent--> open --close()/error/EOF--> closed
//   syncing --timeout/error/EOF--> closed
//
// Calls are REQUEST frames on odd stream ids; the RESPONSE with the same id
// settles the call. Every call has a timeout; pending calls fail with
// AGENT_CLOSED when the channel closes. Byte streams (process io, port
// forwards) are even ids the agent names in its answers (byte-stream.ts);
// EVENT frames carry process exits (which settle wait()) and OOM kills.
// The guest is untrusted: a frame for a stream id we never used, a bad
// frame, a value out of range or an undecodable message closes the channel
// with AGENT_PROTOCOL.
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { logger } from '../lib/log.js';
import { agentCallSeconds, secondsSince } from '../lib/metrics.js';
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
  decodeEvent,
  decodeHello,
  decodeResponse,
  encodeHello,
  encodeRequest,
  type BodyCall,
  type BodyResult,
  type RequestCall,
  type ResponseResult,
} from './messages.js';
import { ByteStream, type AckMode, type FrameSink } from './byte-stream.js';
import {
  checkContainerId,
  checkExecId,
  checkPort,
  containerSpecBody,
  networkBody,
  processBody,
  resourcesBody,
  sandboxBody,
  signalName,
} from './request-checks.js';
import {
  containerInfos,
  containerStats,
  exitEvent,
  exitStatus,
  guestStats,
  oomEvent,
  processStarted,
  streamIds,
  uint32Field,
  type StreamIds,
} from './result-checks.js';
import type {
  ContainerInfo,
  ContainerStats,
  ExitStatus,
  GuestContainerSpec,
  GuestNetwork,
  GuestResources,
  GuestStats,
  IoOptions,
  ProcessIo,
  ProcessSpec,
  SandboxSetup,
} from './types.js';

const log = logger('agent');

function checkAck(ack: unknown): asserts ack is AckMode {
  if (ack !== 'read' && ack !== 'caller') throw new AgentError('AGENT_OPTIONS', `ack must be 'read' or 'caller', not ${String(ack)}`);
}

/** Default of every call's timeoutMs. */
export const CALL_TIMEOUT_MS = 10_000;
/** Calls in flight at once; more is refused with AGENT_BUSY. */
export const MAX_PENDING_CALLS = 1024;
/** Stream ids of timed-out calls whose late response is dropped, not a protocol error. */
const MAX_EXPIRED_STREAMS = 1024;
/** Byte streams open at once; the agent naming more is a protocol error. */
export const MAX_OPEN_STREAMS = 8192;
/** wait() calls outstanding at once; more is refused with AGENT_BUSY. */
export const MAX_EXIT_WAITERS = 8192;
/** Stream ids we closed whose late WINDOW frames are ignored. */
const MAX_RETIRED_STREAMS = 4096;
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
  /** Runs as the response is read, before any later frame: opens the streams it names. */
  sync?: ((r: ResponseResult) => void) | undefined;
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
  private readonly streams = new Map<number, ByteStream>();
  private readonly retired = new Set<number>();
  private readonly exitWaiters = new Map<string, { resolve: (s: ExitStatus) => void; reject: (e: Error) => void }[]>();
  private exitWaiterCount = 0;
  private readonly sink: FrameSink;
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
    const self = this;
    this.sink = {
      send: (type, streamId, payload) => {
        if (self.state === 'open') self.stream.write(encodeFrame({ type, streamId, flags: 0, payload }));
      },
      get open() {
        return self.state === 'open';
      },
    };
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

  /** Hostname, virtio-fs shares, resolv.conf, hosts and sysctls of the guest. */
  async setupSandbox(s: SandboxSetup, opts: CallOptions = {}): Promise<void> {
    await this.bodyCall('setupSandbox', sandboxBody(s), 'setupSandbox', opts);
  }

  /** NICs found by MAC: name, MTU, addresses, up; then routes and neighbours (rtnetlink in the agent). */
  async configureNetwork(n: GuestNetwork, opts: CallOptions = {}): Promise<void> {
    await this.bodyCall('configureNetwork', networkBody(n), 'configureNetwork', opts);
  }

  /** Creates the container (namespaces, cgroup, mounts, pivot_root); its process waits for startContainer. */
  async createContainer(spec: GuestContainerSpec, opts: CallOptions = {}): Promise<void> {
    await this.bodyCall('createContainer', { spec: containerSpecBody(spec) }, 'createContainer', opts);
  }

  async startContainer(containerId: string, opts: CallOptions & IoOptions = {}): Promise<ProcessIo & { pid: number }> {
    const { ack = 'read', ...call } = opts;
    checkAck(ack);
    return this.bodyCall('startContainer', { containerId: checkContainerId(containerId) }, 'started', call, (b) => {
      const started = processStarted(b);
      return { pid: started.pid, ...this.openIo(started.io, ack) };
    });
  }

  async exec(containerId: string, execId: string, process: ProcessSpec, opts: CallOptions & IoOptions = {}): Promise<ProcessIo & { pid: number }> {
    const { ack = 'read', ...call } = opts;
    checkAck(ack);
    const req = { containerId: checkContainerId(containerId), execId: checkExecId(execId, false), process: processBody(process, true) };
    return this.bodyCall('exec', req, 'started', call, (b) => {
      const started = processStarted(b);
      return { pid: started.pid, ...this.openIo(started.io, ack) };
    });
  }

  async signal(containerId: string, execId: string, signal: string, opts: CallOptions = {}): Promise<void> {
    const req = { containerId: checkContainerId(containerId), execId: checkExecId(execId, true), signal: signalName(signal) };
    await this.bodyCall('signal', req, 'signal', opts);
  }

  /**
   * Resolves once the process exited and its output streams ended. No
   * timeout: the agent answers at once, and when the process still runs its
   * exit EVENT settles the wait, however long that takes. Rejects with
   * AGENT_CLOSED when the channel closes; call it again after a reconnect.
   */
  async wait(containerId: string, execId: string): Promise<ExitStatus> {
    const key = `${checkContainerId(containerId)}/${checkExecId(execId, true)}`;
    if (this.state !== 'open') throw this.closeError ?? new AgentError('AGENT_CLOSED', `agent channel ${this.what} is not open`);
    if (this.exitWaiterCount >= MAX_EXIT_WAITERS) throw new AgentError('AGENT_BUSY', `too many waits outstanding (${MAX_EXIT_WAITERS})`);
    // The waiter is in place before the call goes out: the exit event may arrive before the answer.
    let waiter!: { resolve: (s: ExitStatus) => void; reject: (e: Error) => void };
    const exited = new Promise<ExitStatus>((resolve, reject) => (waiter = { resolve, reject }));
    // The channel may close while the call is out: that rejects `exited` before
    // the call's own failure returns from here, with nobody awaiting it yet.
    // Marked handled, it is not an unhandled rejection that ends the daemon;
    // a caller that gets it still sees the rejection.
    exited.catch(() => {});
    const list = this.exitWaiters.get(key) ?? [];
    list.push(waiter);
    this.exitWaiters.set(key, list);
    this.exitWaiterCount++;
    try {
      await this.bodyCall('wait', { containerId, execId }, 'wait', {}, (b) => {
        if (typeof b.exited !== 'boolean') throw protocolError('wait answer lacks exited');
        if (b.exited) this.settleExit(key, exitStatus(b.status, 'wait status'));
      });
    } catch (err) {
      this.dropWaiter(key, waiter);
      throw err;
    }
    return exited;
  }

  async resizeTty(containerId: string, execId: string, rows: number, cols: number, opts: CallOptions = {}): Promise<void> {
    for (const [n, v] of [['rows', rows], ['cols', cols]] as const) {
      if (!Number.isInteger(v) || v < 1 || v > 0xffff) throw new AgentError('AGENT_OPTIONS', `${n} must be an integer in [1, 65535], not ${v}`);
    }
    const req = { containerId: checkContainerId(containerId), execId: checkExecId(execId, true), rows, cols };
    await this.bodyCall('resizeTty', req, 'resizeTty', opts);
  }

  /** New streams for a process' io on this connection; output held by the agent comes first. */
  async attachIo(containerId: string, execId: string, opts: CallOptions & IoOptions = {}): Promise<ProcessIo> {
    const { ack = 'read', ...call } = opts;
    checkAck(ack);
    const req = { containerId: checkContainerId(containerId), execId: checkExecId(execId, true) };
    return this.bodyCall('attachIo', req, 'attachIo', call, (b) => this.openIo(streamIds(b.io, 'attachIo io'), ack));
  }

  /** Kills what still runs in the container, removes its cgroup and forgets its exits. */
  async removeContainer(containerId: string, opts: CallOptions = {}): Promise<void> {
    await this.bodyCall('removeContainer', { containerId: checkContainerId(containerId) }, 'removeContainer', opts);
  }

  async updateResources(containerId: string, r: GuestResources, opts: CallOptions = {}): Promise<void> {
    await this.bodyCall('updateResources', { containerId: checkContainerId(containerId), resources: resourcesBody(r) }, 'updateResources', opts);
  }

  async containerStats(containerId: string, opts: CallOptions = {}): Promise<ContainerStats> {
    return this.bodyCall('containerStats', { containerId: checkContainerId(containerId) }, 'containerStats', opts, containerStats);
  }

  async guestStats(opts: CallOptions = {}): Promise<GuestStats> {
    return this.bodyCall('guestStats', {}, 'guestStats', opts, guestStats);
  }

  async onlineHotplugged(opts: CallOptions = {}): Promise<{ cpus: number; memoryBytes: number }> {
    return this.bodyCall('onlineHotplugged', {}, 'onlineHotplugged', opts, (b) => {
      const g = guestStats({ memTotalBytes: '0', memAvailableBytes: b.memoryBytes, cpus: b.cpus });
      return { cpus: g.cpus, memoryBytes: g.memAvailableBytes };
    });
  }

  /** A byte stream to 127.0.0.1:port inside the guest; ends when either side closes. */
  async portForward(port: number, opts: CallOptions = {}): Promise<NodeJS.ReadWriteStream> {
    return this.bodyCall('portForward', { port: checkPort(port) }, 'portForward', opts, (b) => {
      const id = uint32Field(b.stream, 'portForward stream');
      return this.openStream(id, { inbound: true, outbound: true }).stream as NodeJS.ReadWriteStream;
    });
  }

  async listContainers(opts: CallOptions = {}): Promise<ContainerInfo[]> {
    return this.bodyCall('listContainers', {}, 'listContainers', opts, containerInfos);
  }

  /**
   * One call whose answer is `result`; `convert` checks the answer's body
   * (and opens the streams it names) synchronously as the frame is read, so
   * DATA right behind the answer finds its stream.
   */
  private async bodyCall<T = Record<string, unknown>>(
    call: BodyCall,
    body: Record<string, unknown>,
    result: BodyResult,
    opts: CallOptions,
    convert: (b: Record<string, unknown>) => T = (b) => b as T,
  ): Promise<T> {
    let out: { value: T } | undefined;
    await this.call({ call, body }, opts, (r) => {
      if (r.result !== result || !('body' in r)) throw protocolError(`agent answered ${call} with a ${r.result} result`);
      out = { value: convert(r.body) };
    });
    return out!.value;
  }

  /** Streams of one process from the ids in an answer. */
  private openIo(ids: StreamIds, ack: AckMode): ProcessIo {
    const out = this.openStream(ids.stdout, { inbound: true, outbound: false }, ack);
    const err = this.openStream(ids.stderr, { inbound: true, outbound: false }, ack);
    const io: ProcessIo = {
      stdout: out.stream as NodeJS.ReadableStream,
      stderr: err.stream as NodeJS.ReadableStream,
      acknowledge: (stream, n) => (stream === 'stdout' ? out : err).acknowledge(n),
    };
    if (ids.stdin !== 0) io.stdin = this.openStream(ids.stdin, { inbound: false, outbound: true }).stream as NodeJS.WritableStream;
    return io;
  }

  private openStream(id: number, dirs: { inbound: boolean; outbound: boolean }, ack: AckMode = 'read'): ByteStream {
    if (id === 0 || id % 2 !== 0) throw protocolError(`agent named stream ${id}; agent streams are even and non-zero`);
    if (this.streams.has(id)) throw protocolError(`agent reused open stream ${id}`);
    if (this.streams.size >= MAX_OPEN_STREAMS) throw protocolError(`agent opened more than ${MAX_OPEN_STREAMS} streams`);
    this.retired.delete(id);
    const s = new ByteStream(id, this.sink, dirs, (done) => this.retire(done), ack);
    this.streams.set(id, s);
    return s;
  }

  /** Streams named by a late answer: known (their frames are no protocol error) and drained (their process never blocks on us). */
  private drainLateStreams(r: ResponseResult): void {
    if (!('body' in r)) return;
    let opened: ByteStream[] = [];
    if (r.result === 'started' || r.result === 'attachIo') {
      const ids = r.result === 'started' ? processStarted(r.body).io : streamIds(r.body.io, 'attachIo io');
      opened = [this.openStream(ids.stdout, { inbound: true, outbound: false }), this.openStream(ids.stderr, { inbound: true, outbound: false })];
      if (ids.stdin !== 0) opened.push(this.openStream(ids.stdin, { inbound: false, outbound: true }));
    } else if (r.result === 'portForward') {
      opened = [this.openStream(uint32Field(r.body.stream, 'portForward stream'), { inbound: true, outbound: true })];
    }
    for (const s of opened) s.stream.destroy();
  }

  private retire(s: ByteStream): void {
    if (this.streams.get(s.id) !== s) return;
    this.streams.delete(s.id);
    this.retired.add(s.id);
    if (this.retired.size > MAX_RETIRED_STREAMS) this.retired.delete(this.retired.values().next().value as number);
  }

  private onStreamFrame(frame: Frame): void {
    if (frame.streamId === 0 || frame.streamId % 2 !== 0) throw protocolError(`stream frame type ${frame.type} on call stream ${frame.streamId}`);
    const s = this.streams.get(frame.streamId);
    if (!s) {
      // Credit for a stream we finished writing is harmless; anything else names a stream we do not know.
      if (frame.type === FrameType.WINDOW && this.retired.has(frame.streamId)) return;
      throw protocolError(`frame type ${frame.type} for unknown stream ${frame.streamId}`, { streamId: frame.streamId });
    }
    if (frame.type === FrameType.DATA) s.onData(frame.payload);
    else if (frame.type === FrameType.WINDOW) s.onWindow(frame.payload);
    else s.onClose(frame.payload);
  }

  private onEvent(frame: Frame): void {
    if (frame.streamId !== 0) throw protocolError(`EVENT on stream ${frame.streamId}, not 0`);
    const ev = decodeEvent(frame.payload);
    if (ev.event === 'exit') {
      const e = exitEvent(ev.body);
      log.trace('exit event', { containerId: e.containerId, execId: e.execId, exitCode: e.status.exitCode });
      this.settleExit(`${e.containerId}/${e.execId}`, e.status);
    } else {
      const id = oomEvent(ev.body);
      log.trace('oom event', { containerId: id });
      this.emit('oom', id);
    }
  }

  private settleExit(key: string, status: ExitStatus): void {
    const list = this.exitWaiters.get(key);
    if (!list) return;
    this.exitWaiters.delete(key);
    this.exitWaiterCount -= list.length;
    for (const w of list) w.resolve(status);
  }

  private dropWaiter(key: string, waiter: { resolve: (s: ExitStatus) => void; reject: (e: Error) => void }): void {
    const list = this.exitWaiters.get(key);
    const i = list ? list.indexOf(waiter) : -1;
    if (!list || i < 0) return;
    list.splice(i, 1);
    this.exitWaiterCount--;
    if (list.length === 0) this.exitWaiters.delete(key);
  }

  private call(req: RequestCall, opts: CallOptions, sync?: (r: ResponseResult) => void): Promise<ResponseResult> {
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
    const startNs = process.hrtime.bigint();
    return new Promise<ResponseResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(streamId);
        this.rememberExpired(streamId);
        reject(new AgentError('AGENT_TIMEOUT', `agent call ${req.call} timed out after ${timeoutMs} ms`, { call: req.call, streamId, timeoutMs }));
      }, timeoutMs);
      this.pending.set(streamId, { call: req.call, timer, resolve, reject, sync });
      log.trace('call', { call: req.call, streamId });
      this.stream.write(encodeFrame({ type: FrameType.REQUEST, streamId, flags: 0, payload }));
    }).then((r) => {
      agentCallSeconds.observe({ call: req.call }, secondsSince(startNs));
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
    if (frame.type === FrameType.DATA || frame.type === FrameType.WINDOW || frame.type === FrameType.CLOSE) return this.onStreamFrame(frame);
    if (frame.type === FrameType.EVENT) return this.onEvent(frame);
    if (frame.type !== FrameType.RESPONSE) throw protocolError(`unexpected frame type ${frame.type} on stream ${frame.streamId}`);
    const p = this.pending.get(frame.streamId);
    if (!p) {
      if (this.expired.delete(frame.streamId)) {
        // The answer to a call that timed out: streams it names are opened and dropped at once.
        this.drainLateStreams(decodeResponse(frame.payload));
        return;
      }
      throw protocolError(`response for unknown stream ${frame.streamId}`, { streamId: frame.streamId });
    }
    const result = decodeResponse(frame.payload);
    this.pending.delete(frame.streamId);
    clearTimeout(p.timer);
    log.trace('response', { call: p.call, streamId: frame.streamId, result: result.result });
    if (p.sync && result.result !== 'error') {
      try {
        p.sync(result);
      } catch (err) {
        p.reject(err as Error);
        throw err;
      }
    }
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
    for (const [, list] of this.exitWaiters) for (const w of list) w.reject(callErr);
    this.exitWaiters.clear();
    this.exitWaiterCount = 0;
    for (const [, st] of this.streams) st.onChannelClosed(callErr);
    this.streams.clear();
    this.stream.destroy();
    this.emit('close', byUs ? undefined : err);
  }
}
