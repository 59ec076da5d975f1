// Kubernetes' channel protocols over one WebSocket, framed as wsstream
// (k8s.io/apimachinery) frames them: every message starts with its channel
// number, a byte in binary messages (channel.k8s.io and its vN. names) or
// an ASCII digit before base64 text (base64.channel.k8s.io, and its vN.
// names). v5 adds one message from the client: [255, N] says that channel N
// has ended (stdin's EOF), which WebSocket cannot say otherwise. The server
// never sends channel 255 (kubelet does not; clients treat it as an
// unknown channel).
//
// Each channel is a Duplex: what the client sends on it is read, what is
// written goes to the client. Bounds are those of the SPDY path: messages
// up to maxFrameBytes (larger ones close the connection, status 1009), a
// channel buffers up to streamBufferBytes for its reader before the socket
// stops being read, and output goes out in 32 KiB messages, each written
// only when the one before has reached the socket.
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { errorMessage } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { CLOSE_GRACE_MS, MAX_DATA_FRAME_BYTES } from './spdy-connection.js';

const log = logger('stream');

/** What the server does with a channel: kubelet's wsstream channel types. */
export type ChannelMode = 'read' | 'write' | 'both' | 'ignore';

/** The client's close signal of v5.channel.k8s.io. */
export const CLOSE_CHANNEL = 255;
const BASE64_TEXT = /^[A-Za-z0-9+/]*={0,2}$/;

export interface ChannelFraming {
  /** base64.channel.k8s.io and its versions: text messages, a digit, then base64. */
  base64: boolean;
  /** v5.channel.k8s.io: the client may end a channel with [255, N]. */
  closeSignal: boolean;
}

export interface WebSocketLimits {
  /** Bytes one channel buffers for its reader before the socket pauses. */
  channelBufferBytes: number;
  /** A connection with no traffic for this long is closed. */
  idleTimeoutMs: number;
}

export class WebSocketChannel extends Duplex {
  /** The client said this channel has ended (v5). */
  remoteEnded = false;

  constructor(
    private readonly conn: WebSocketChannels,
    readonly num: number,
    readonly mode: ChannelMode,
    highWaterMark: number,
  ) {
    super({ readableHighWaterMark: highWaterMark, writableHighWaterMark: MAX_DATA_FRAME_BYTES, allowHalfOpen: true });
    // A write that fails with the socket is reported by the connection's own
    // close; a channel nobody listens on yet must not throw it at the daemon.
    this.on('error', (err) => log.debug('WebSocket channel error', { channel: num, err: errorMessage(err) }));
  }

  get reads(): boolean {
    return this.mode === 'read' || this.mode === 'both';
  }

  get writes(): boolean {
    return this.mode === 'write' || this.mode === 'both';
  }

  override _read(): void {
    this.conn.channelWantsData(this);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    // A channel the client did not ask for swallows what is written, as kubelet's does.
    if (!this.writes) return cb();
    this.conn.send(this.num, chunk).then(() => cb(), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    cb(); // WebSocket has no way to end one channel from the server
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.conn.channelDestroyed(this);
    cb(err);
  }
}

export class WebSocketChannels extends EventEmitter {
  readonly channels: WebSocketChannel[];
  /** Channels whose reader is full; the socket is read again when none is. */
  private readonly blocked = new Set<WebSocketChannel>();
  private closed = false;
  private closing = false;
  private graceTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ws: WebSocket,
    socket: { setTimeout(ms: number, cb?: () => void): unknown },
    modes: ChannelMode[],
    private readonly framing: ChannelFraming,
    limits: WebSocketLimits,
  ) {
    super();
    this.channels = modes.map((m, i) => new WebSocketChannel(this, i, m, limits.channelBufferBytes));
    // ws clears the socket's timeout when it takes the socket: set it after.
    socket.setTimeout(limits.idleTimeoutMs, () => this.destroy(new Error(`no traffic for ${limits.idleTimeoutMs} ms`)));
    ws.on('message', (data: Buffer, isBinary: boolean) => this.received(data, isBinary));
    ws.on('error', (err) => this.destroy(err));
    ws.on('close', () => this.destroy());
  }

  get isClosed(): boolean {
    return this.closed;
  }

  channel(n: number): WebSocketChannel {
    const c = this.channels[n];
    if (!c) throw new Error(`no channel ${n}`);
    return c;
  }

  private received(data: Buffer, isBinary: boolean): void {
    if (this.closed || data.length === 0) return;
    let num = data[0]!;
    if (this.framing.closeSignal && num === CLOSE_CHANNEL) return this.remoteEnded(data[1]);
    let payload = data.subarray(1);
    if (this.framing.base64) {
      num -= 0x30; // the channel is an ASCII digit
      const text = payload.toString('latin1');
      if (text.length % 4 !== 0 || !BASE64_TEXT.test(text)) {
        log.debug('dropped a message that is not base64', { channel: num, binary: isBinary });
        return;
      }
      payload = Buffer.from(text, 'base64');
    }
    const c = this.channels[num];
    if (!c || !c.reads) {
      log.debug('dropped a message for a channel that is not read', { channel: num });
      return;
    }
    if (c.remoteEnded || c.destroyed || payload.length === 0) return;
    if (!c.push(payload)) {
      this.blocked.add(c);
      this.ws.pause();
    }
  }

  private remoteEnded(num: number | undefined): void {
    const c = num === undefined ? undefined : this.channels[num];
    if (!c?.reads || c.remoteEnded || c.destroyed) return;
    c.remoteEnded = true;
    c.push(null);
  }

  channelWantsData(c: WebSocketChannel): void {
    if (this.blocked.delete(c) && this.blocked.size === 0 && !this.closed) this.ws.resume();
  }

  channelDestroyed(c: WebSocketChannel): void {
    this.channelWantsData(c);
  }

  /** Sends bytes on a channel in messages of at most 32 KiB; settles when the last has reached the socket. */
  async send(num: number, data: Buffer): Promise<void> {
    let at = 0;
    do {
      if (this.closed) throw new Error('the WebSocket is closed');
      const piece = data.subarray(at, at + MAX_DATA_FRAME_BYTES);
      at += piece.length;
      const message = this.framing.base64 ? String.fromCharCode(0x30 + num) + piece.toString('base64') : Buffer.concat([Buffer.from([num]), piece]);
      await new Promise<void>((resolve, reject) => this.ws.send(message, { binary: !this.framing.base64 }, (err) => (err ? reject(err) : resolve())));
    } while (at < data.length);
  }

  /** Tells the client the connection is up: an empty message on a channel, as kubelet sends. */
  announce(num: number): void {
    void this.send(num, Buffer.alloc(0)).catch(() => {});
  }

  /** Closes normally (1000) once what is queued has gone; a client that does not answer is cut after CLOSE_GRACE_MS. */
  async close(): Promise<void> {
    if (this.closed || this.closing) return;
    this.closing = true;
    this.ws.close(1000);
    this.graceTimer = setTimeout(() => this.destroy(), CLOSE_GRACE_MS).unref();
  }

  /** Closes at once: every channel ends, the socket goes. */
  destroy(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.graceTimer);
    for (const c of this.channels) c.destroy();
    this.blocked.clear();
    if (err) log.debug('WebSocket session ended by an error', { err: errorMessage(err) });
    this.ws.terminate();
    this.emit('close', err);
  }
}
