// A QMP client: JSON lines over a unix socket.
//
//   connecting --greeting--> negotiating --qmp_capabilities--> ready --> closed
//
// Commands carry an id and are matched to replies by it; events are emitted
// as they arrive. Every command has a timeout; every line is bounded; the
// number of commands in flight is bounded. Garbage, an over-long line or a
// hang-up fails every pending command with a clear error and closes.
import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import { logger } from '../lib/log.js';
import { QmpClosedError, QmpCommandError, QmpProtocolError, QmpTimeoutError } from './errors.js';

const log = logger('qmp');

/** Replies such as query-qmp-schema reach a few hundred KiB. */
export const QMP_MAX_LINE_BYTES = 8 * 1024 * 1024;
export const QMP_DEFAULT_TIMEOUT_MS = 10_000;
export const QMP_MAX_IN_FLIGHT = 64;

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export interface QmpGreeting {
  version: { qemu: { major: number; minor: number; micro: number }; package: string };
  capabilities: string[];
}

export interface QmpConnectOptions {
  /** Bound on connect + greeting + negotiation. Default 10 000 ms. */
  timeoutMs?: number;
  /** Default timeout of each command. Default 10 000 ms. */
  commandTimeoutMs?: number;
  /** Bound on one JSON line. Default QMP_MAX_LINE_BYTES. */
  maxLineBytes?: number;
}

interface Pending {
  command: string;
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

type State = 'connecting' | 'negotiating' | 'ready' | 'closed';

export declare interface QmpClient {
  on(event: 'event', fn: (ev: QmpEvent) => void): this;
  on(event: 'close', fn: (err?: Error) => void): this;
}

export class QmpClient extends EventEmitter {
  private state: State = 'connecting';
  private buf: Buffer[] = [];
  private bufBytes = 0;
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private greetingWaiter?: { resolve(g: QmpGreeting): void; reject(e: Error): void };
  greeting?: QmpGreeting;
  private closeError?: Error;

  private constructor(
    private readonly sock: Socket,
    private readonly commandTimeoutMs: number,
    private readonly maxLineBytes: number,
  ) {
    super();
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('error', (err) => this.fail(new QmpClosedError(`QMP connection error: ${err.message}`)));
    sock.on('close', () => this.fail(this.closeError ?? new QmpClosedError()));
  }

  /** Connects to a QMP socket (a fresh VM or one already running) and negotiates capabilities. */
  static async connect(path: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? QMP_DEFAULT_TIMEOUT_MS;
    const sock = connect(path);
    const client = new QmpClient(sock, opts.commandTimeoutMs ?? QMP_DEFAULT_TIMEOUT_MS, opts.maxLineBytes ?? QMP_MAX_LINE_BYTES);
    const timer = setTimeout(() => client.fail(new QmpTimeoutError(`connect ${path}`, timeoutMs)), timeoutMs);
    try {
      const greeting = await new Promise<QmpGreeting>((resolve, reject) => {
        client.greetingWaiter = { resolve, reject };
      });
      client.greeting = greeting;
      client.transition('negotiating');
      await client.execute('qmp_capabilities', undefined, { timeoutMs });
      client.transition('ready');
      return client;
    } catch (err) {
      client.close();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  get ready(): boolean {
    return this.state === 'ready';
  }

  /** Runs one command; resolves with its `return` value. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<T> {
    if (this.state === 'closed') return Promise.reject(this.closeError ?? new QmpClosedError());
    if (this.state === 'connecting') return Promise.reject(new QmpProtocolError(`${command} sent before the greeting`));
    if (this.pending.size >= QMP_MAX_IN_FLIGHT) {
      return Promise.reject(new QmpProtocolError(`too many commands in flight (${QMP_MAX_IN_FLIGHT})`));
    }
    const id = `frakti-${this.nextId++}`;
    const timeoutMs = opts.timeoutMs ?? this.commandTimeoutMs;
    const msg: Record<string, unknown> = { execute: command, id };
    if (args !== undefined) msg.arguments = args;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpTimeoutError(command, timeoutMs));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      log.trace('->', msg);
      this.sock.write(JSON.stringify(msg) + '\n');
    });
  }

  /** Waits for the next event of that name (and matching `match`, if given), bounded. */
  waitEvent(name: string, timeoutMs: number, match?: (ev: QmpEvent) => boolean): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const onEvent = (ev: QmpEvent) => {
        if (ev.event !== name || (match && !match(ev))) return;
        cleanup();
        resolve(ev);
      };
      const onClose = (err?: Error) => {
        cleanup();
        reject(err ?? new QmpClosedError());
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new QmpTimeoutError(`wait for event ${name}`, timeoutMs));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off('event', onEvent);
        this.off('close', onClose);
      };
      this.on('event', onEvent);
      this.on('close', onClose);
    });
  }

  close(): void {
    this.fail(new QmpClosedError('QMP connection closed by frakti'));
  }

  private transition(to: State): void {
    log.trace(`${this.state} -> ${to}`);
    this.state = to;
  }

  private onData(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      const part = chunk.subarray(start, nl);
      start = nl + 1;
      if (this.bufBytes + part.length > this.maxLineBytes) return this.tooLong();
      const line = this.bufBytes === 0 ? part : Buffer.concat([...this.buf, part]);
      this.buf = [];
      this.bufBytes = 0;
      this.onLine(line.toString('utf8'));
      if (this.state === 'closed') return;
    }
    const rest = chunk.subarray(start);
    if (rest.length === 0) return;
    if (this.bufBytes + rest.length > this.maxLineBytes) return this.tooLong();
    this.buf.push(rest);
    this.bufBytes += rest.length;
  }

  private tooLong(): void {
    this.fail(new QmpProtocolError(`line longer than ${this.maxLineBytes} bytes`));
  }

  private onLine(line: string): void {
    if (line.trim() === '') return;
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      return this.fail(new QmpProtocolError(`not JSON: ${JSON.stringify(line.slice(0, 80))}`));
    }
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
      return this.fail(new QmpProtocolError('a message that is not a JSON object'));
    }
    const m = msg as Record<string, unknown>;
    log.trace('<-', m);
    if (this.state === 'connecting') {
      const qmp = m.QMP as QmpGreeting | undefined;
      if (!qmp || typeof qmp !== 'object' || !qmp.version) {
        return this.fail(new QmpProtocolError('the first message is not a QMP greeting'));
      }
      const w = this.greetingWaiter;
      this.greetingWaiter = undefined;
      w?.resolve(qmp);
      return;
    }
    if (typeof m.event === 'string') {
      this.emit('event', m as unknown as QmpEvent);
      return;
    }
    if ('return' in m || 'error' in m) {
      const id = typeof m.id === 'string' ? m.id : undefined;
      const p = id === undefined ? undefined : this.pending.get(id);
      // A reply to a command that already timed out is dropped; one with an id we never sent is a protocol error.
      if (!p) {
        if (id !== undefined && id.startsWith('frakti-') && Number(id.slice(7)) < this.nextId) return;
        return this.fail(new QmpProtocolError(`reply with unknown id ${JSON.stringify(m.id)}`));
      }
      this.pending.delete(id!);
      clearTimeout(p.timer);
      if ('error' in m) {
        const e = (m.error ?? {}) as { class?: unknown; desc?: unknown };
        p.reject(new QmpCommandError(p.command, String(e.class ?? 'GenericError'), String(e.desc ?? '(no description)')));
      } else {
        p.resolve(m.return);
      }
      return;
    }
    this.fail(new QmpProtocolError(`unexpected message with keys ${Object.keys(m).slice(0, 5).join(',')}`));
  }

  private fail(err: Error): void {
    if (this.state === 'closed') return;
    this.transition('closed');
    this.closeError = err;
    this.buf = [];
    this.bufBytes = 0;
    this.greetingWaiter?.reject(err);
    this.greetingWaiter = undefined;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    this.sock.destroy();
    this.emit('close', err instanceof QmpClosedError && err.message.includes('by frakti') ? undefined : err);
  }
}
