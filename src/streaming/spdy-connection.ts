// The server side of one SPDY connection after an HTTP upgrade: streams
// the client opens arrive as Duplex objects (bytes from the client to read,
// bytes to the client to write), each answered with a SYN_REPLY.
//
// Flow control. Kubernetes' SPDY library never sends WINDOW_UPDATE and
// ignores it, so against it windows cannot govern sending: backpressure is
// the socket's own. A peer that announces its window in SETTINGS gets it
// honoured. In the other direction a stream whose reader lags pauses the
// whole socket, so what is held in memory stays bounded whatever the peer
// does, and consumed bytes are granted back with WINDOW_UPDATE for peers
// that count.
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import { errorMessage } from '../lib/errors.js';
import { HeaderCompressor, HeaderDecompressor } from './spdy-header-zlib.js';
import {
  ControlType, DEFAULT_WINDOW_BYTES, FLAG_FIN, FRAME_HEADER_BYTES, GoawayStatus, RstStatus, SETTINGS_INITIAL_WINDOW_SIZE, SPDY_VERSION, SpdyProtocolError,
  controlFrame, dataFrame, decodeHeaderBlock, encodeHeaderBlock, goaway, readFrame, rstStream, u32s, windowUpdate, type Frame,
} from './spdy-frames.js';

export interface SpdyLimits {
  /** Streams open at once; more are refused (REFUSED_STREAM). */
  maxStreams: number;
  /** Largest frame accepted. */
  maxFrameBytes: number;
  /** Largest header block once decompressed, and most header pairs. */
  maxHeaderBytes: number;
  maxHeaderPairs: number;
  /** Bytes one stream buffers for its reader before the socket pauses. */
  streamBufferBytes: number;
  /** A connection with no traffic for this long is closed. */
  idleTimeoutMs: number;
}

export const DEFAULT_SPDY_LIMITS: SpdyLimits = {
  maxStreams: 64,
  maxFrameBytes: 1024 * 1024,
  maxHeaderBytes: 64 * 1024,
  maxHeaderPairs: 128,
  streamBufferBytes: 256 * 1024,
  idleTimeoutMs: 4 * 60 * 60 * 1000,
};

/** Bytes of one outgoing DATA frame (Kubernetes' clients copy in 32 KiB pieces too). */
export const MAX_DATA_FRAME_BYTES = 32 * 1024;
/** How long a client may take to hang up after our GOAWAY. */
export const CLOSE_GRACE_MS = 10_000;
/** Consumed bytes are granted back in pieces at least this big. */
const WINDOW_GRANT_BYTES = 16 * 1024;

export class SpdyStream extends Duplex {
  /** Bytes pushed to the reader, and bytes granted back to the peer. */
  pushedBytes = 0;
  grantedBytes = 0;
  /** What the peer lets us send on this stream (counted only when it announced flow control). */
  sendWindow: number;
  remoteClosed = false;
  reset = false;
  readonly replied: Promise<void>;

  constructor(
    private readonly conn: SpdyConnection,
    readonly id: number,
    readonly headers: ReadonlyMap<string, string[]>,
    initialWindow: number,
    replied: Promise<void>,
    highWaterMark: number,
  ) {
    super({ readableHighWaterMark: highWaterMark, writableHighWaterMark: MAX_DATA_FRAME_BYTES, allowHalfOpen: true });
    this.sendWindow = initialWindow;
    this.replied = replied;
    // A rejected reply means the connection died; 'close' tells the users.
    replied.catch(() => {});
  }

  /** The first value of a header (names are lower-case). */
  header(name: string): string | undefined {
    return this.headers.get(name.toLowerCase())?.[0];
  }

  override _read(): void {
    this.conn.streamWantsData(this);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.conn.sendData(this, chunk, false).then(() => cb(), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.conn.sendData(this, Buffer.alloc(0), true).then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.conn.streamDestroyed(this);
    cb(err);
  }
}

export class SpdyConnection extends EventEmitter {
  private inbuf: Buffer = Buffer.alloc(0);
  private readonly streams = new Map<number, SpdyStream>();
  /** Streams whose reader is full; the socket reads again when none is. */
  private readonly blocked = new Set<SpdyStream>();
  private lastPeerStreamId = 0;
  private processing = false;
  private closed = false;
  private closing = false;
  private readonly compressor = new HeaderCompressor();
  private readonly decompressor = new HeaderDecompressor();
  /** Control frames with header blocks go out in compression order. */
  private headerWrites: Promise<void> = Promise.resolve();
  private flowControlled = false;
  private peerInitialWindow = DEFAULT_WINDOW_BYTES;
  private sessionSendWindow = DEFAULT_WINDOW_BYTES;
  private readonly windowWaiters = new Set<() => void>();

  constructor(
    private readonly socket: Duplex & { setTimeout?(ms: number, cb?: () => void): unknown; setNoDelay?(on?: boolean): unknown },
    head: Buffer,
    private readonly limits: SpdyLimits,
    private readonly onStream: (s: SpdyStream) => void,
  ) {
    super();
    socket.setNoDelay?.(true);
    socket.setTimeout?.(limits.idleTimeoutMs, () => this.destroy(new Error(`no traffic for ${limits.idleTimeoutMs} ms`)));
    socket.on('data', (b: Buffer) => this.received(b));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
    socket.on('end', () => this.destroy());
    if (head.length > 0) this.received(head);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private received(b: Buffer): void {
    if (this.closed) return;
    this.inbuf = this.inbuf.length === 0 ? b : Buffer.concat([this.inbuf, b]);
    // More than a whole frame waiting: stop reading until the frames are handled.
    if (this.inbuf.length > this.limits.maxFrameBytes + FRAME_HEADER_BYTES) this.socket.pause();
    void this.process();
  }

  private async process(): Promise<void> {
    if (this.processing) return;
    this.processing = true;
    try {
      while (!this.closed) {
        const r = readFrame(this.inbuf, this.limits.maxFrameBytes);
        if (!r) break;
        this.inbuf = this.inbuf.subarray(r.size);
        await this.handle(r.frame);
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.processing = false;
      if (!this.closed && this.blocked.size === 0 && this.inbuf.length <= this.limits.maxFrameBytes + FRAME_HEADER_BYTES) this.socket.resume();
    }
  }

  private async handle(f: Frame): Promise<void> {
    if (f.kind === 'data') return this.handleData(f.streamId, f.flags, f.data);
    if (f.version !== SPDY_VERSION) throw new SpdyProtocolError(`SPDY version ${f.version}; only ${SPDY_VERSION} is spoken`);
    const p = f.payload;
    const need = (n: number) => {
      if (p.length < n) throw new SpdyProtocolError(`control frame ${f.type} of ${p.length} bytes is too short`);
    };
    switch (f.type) {
      case ControlType.SYN_STREAM: {
        need(10);
        const id = p.readUInt32BE(0) & 0x7fffffff;
        const headers = await this.headerBlock(p.subarray(10));
        return this.openStream(id, f.flags, headers);
      }
      case ControlType.SYN_REPLY:
      case ControlType.HEADERS: {
        // We open no streams, so a reply is out of place; HEADERS add nothing we use. Both
        // still go through the decompressor, which must see every block.
        need(4);
        await this.headerBlock(p.subarray(4));
        const s = this.streams.get(p.readUInt32BE(0) & 0x7fffffff);
        if (s && f.flags & FLAG_FIN) this.remoteFinished(s);
        return;
      }
      case ControlType.RST_STREAM: {
        need(8);
        const s = this.streams.get(p.readUInt32BE(0) & 0x7fffffff);
        if (s) {
          s.reset = true;
          s.destroy();
        }
        return;
      }
      case ControlType.SETTINGS:
        return this.settings(p);
      case ControlType.PING:
        need(4);
        // Only the peer's pings (odd ids) are echoed; we send none.
        if (p.readUInt32BE(0) % 2 === 1) this.write([controlFrame(ControlType.PING, 0, p.subarray(0, 4))]);
        return;
      case ControlType.GOAWAY:
        // The peer opens no more streams; those open run to their end.
        this.emit('goaway');
        return;
      case ControlType.WINDOW_UPDATE: {
        need(8);
        const id = p.readUInt32BE(0) & 0x7fffffff;
        const delta = p.readUInt32BE(4) & 0x7fffffff;
        if (id === 0) this.sessionSendWindow += delta;
        else {
          const s = this.streams.get(id);
          if (s) s.sendWindow += delta;
        }
        this.flowControlled = true;
        this.wakeWindowWaiters();
        return;
      }
      default:
        return; // SPDY says: ignore control frames of unknown type
    }
  }

  private headerBlock(compressed: Buffer): Promise<Map<string, string[]>> {
    return this.decompressor.decompress(compressed, this.limits.maxHeaderBytes).then((b) => decodeHeaderBlock(b, this.limits.maxHeaderPairs));
  }

  private settings(p: Buffer): void {
    if (p.length < 4) throw new SpdyProtocolError('SETTINGS frame is too short');
    const n = p.readUInt32BE(0);
    if (p.length !== 4 + n * 8) throw new SpdyProtocolError(`SETTINGS frame says ${n} entries in ${p.length} bytes`);
    for (let i = 0; i < n; i++) {
      const id = p.readUInt32BE(4 + i * 8) & 0xffffff;
      const value = p.readUInt32BE(8 + i * 8);
      if (id !== SETTINGS_INITIAL_WINDOW_SIZE) continue;
      if (value > 0x7fffffff) throw new SpdyProtocolError(`initial window ${value} is too large`);
      for (const s of this.streams.values()) s.sendWindow += value - this.peerInitialWindow;
      this.peerInitialWindow = value;
      this.flowControlled = true;
      this.wakeWindowWaiters();
    }
  }

  private openStream(id: number, flags: number, headers: Map<string, string[]>): void {
    if (id % 2 === 0 || id <= this.lastPeerStreamId) throw new SpdyProtocolError(`stream id ${id} is not a new odd id`);
    this.lastPeerStreamId = id;
    if (this.streams.size >= this.limits.maxStreams || this.closing) {
      this.write([rstStream(id, RstStatus.REFUSED_STREAM)]);
      return;
    }
    // Kubernetes' clients read nothing from the reply; SPDY's HTTP layering asks for these two.
    const replied = this.sendHeaders(ControlType.SYN_REPLY, id, 0, [[':status', '200'], [':version', 'HTTP/1.1']]);
    const s = new SpdyStream(this, id, headers, this.peerInitialWindow, replied, this.limits.streamBufferBytes);
    this.streams.set(id, s);
    if (flags & FLAG_FIN) this.remoteFinished(s);
    this.onStream(s);
  }

  private handleData(id: number, flags: number, data: Buffer): void {
    const s = this.streams.get(id);
    if (!s) {
      // A stream we reset or refused may still have frames in flight.
      if (id > this.lastPeerStreamId) throw new SpdyProtocolError(`data for stream ${id}, which was never opened`);
      return;
    }
    if (s.remoteClosed) {
      this.write([rstStream(id, RstStatus.STREAM_ALREADY_CLOSED)]);
      return;
    }
    if (data.length > 0) {
      s.pushedBytes += data.length;
      if (!s.push(data)) {
        this.blocked.add(s);
        this.socket.pause();
      }
    }
    if (flags & FLAG_FIN) this.remoteFinished(s);
  }

  private remoteFinished(s: SpdyStream): void {
    if (s.remoteClosed) return;
    s.remoteClosed = true;
    s.push(null);
  }

  /** The stream's reader took bytes: grant them back, and read the socket again if nobody is full. */
  streamWantsData(s: SpdyStream): void {
    const consumed = s.pushedBytes - s.readableLength - s.grantedBytes;
    if (consumed >= WINDOW_GRANT_BYTES && !s.remoteClosed && !this.closed) {
      s.grantedBytes += consumed;
      this.write([windowUpdate(s.id, consumed), windowUpdate(0, consumed)]);
    }
    if (this.blocked.delete(s) && this.blocked.size === 0 && !this.closed) this.socket.resume();
  }

  streamDestroyed(s: SpdyStream): void {
    if (this.streams.get(s.id) !== s) return;
    this.streams.delete(s.id);
    if (this.blocked.delete(s) && this.blocked.size === 0 && !this.closed) this.socket.resume();
    // Ended both ways is a finished stream; anything else is cut off, after its reply (still queued, maybe).
    if (!this.closed && !s.reset && !(s.remoteClosed && s.writableFinished)) {
      void s.replied.then(() => this.write([rstStream(s.id, RstStatus.CANCEL)]), () => {});
    }
    this.wakeWindowWaiters();
  }

  private sendHeaders(type: number, id: number, flags: number, headers: Array<[string, string]>): Promise<void> {
    const sent = this.headerWrites.then(async () => {
      if (this.closed) throw new Error('connection closed');
      const block = await this.compressor.compress(encodeHeaderBlock(headers));
      this.write([controlFrame(type, flags, Buffer.concat([u32s(id), block]))]);
    });
    this.headerWrites = sent.catch(() => {});
    return sent;
  }

  /** Sends bytes on a stream (fin: the last of them), after its reply and within the windows if counted. */
  async sendData(s: SpdyStream, data: Buffer, fin: boolean): Promise<void> {
    await s.replied;
    let at = 0;
    do {
      if (this.closed || s.destroyed) throw new Error(`stream ${s.id} is closed`);
      let n = Math.min(MAX_DATA_FRAME_BYTES, data.length - at);
      if (this.flowControlled && n > 0) {
        await this.windowOpen(s);
        n = Math.min(n, s.sendWindow, this.sessionSendWindow);
      }
      s.sendWindow -= n;
      this.sessionSendWindow -= n;
      const last = at + n === data.length;
      const ok = this.write(dataFrame(s.id, fin && last ? FLAG_FIN : 0, data.subarray(at, at + n)));
      at += n;
      if (!ok) await this.drained();
    } while (at < data.length);
  }

  private windowOpen(s: SpdyStream): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.closed || s.destroyed) {
          this.windowWaiters.delete(check);
          reject(new Error(`stream ${s.id} is closed`));
        } else if (s.sendWindow > 0 && this.sessionSendWindow > 0) {
          this.windowWaiters.delete(check);
          resolve();
        }
      };
      this.windowWaiters.add(check);
      check();
    });
  }

  private wakeWindowWaiters(): void {
    for (const w of [...this.windowWaiters]) w();
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.off('close', done);
        resolve();
      };
      this.socket.once('drain', done);
      this.once('close', done);
    });
  }

  private write(parts: Buffer[]): boolean {
    if (this.closed || this.socket.destroyed) return true;
    let ok = true;
    for (const p of parts) ok = this.socket.write(p) && ok;
    return ok;
  }

  private fail(err: unknown): void {
    if (this.closed) return;
    const status = err instanceof SpdyProtocolError ? GoawayStatus.PROTOCOL_ERROR : GoawayStatus.INTERNAL_ERROR;
    this.write([goaway(this.lastPeerStreamId, status)]);
    this.destroy(new Error(`SPDY: ${errorMessage(err)}`));
  }

  /**
   * Says GOAWAY once what is queued has gone out and leaves the closing to
   * the client, as kubelet does: a client that sees the socket end may drop
   * frames it has read but not yet handed to its streams (Kubernetes' SPDY
   * library does). A client that stays is cut after CLOSE_GRACE_MS.
   */
  async close(): Promise<void> {
    if (this.closed || this.closing) return;
    this.closing = true;
    await this.headerWrites;
    this.write([goaway(this.lastPeerStreamId, GoawayStatus.OK)]);
    setTimeout(() => this.destroy(), CLOSE_GRACE_MS).unref();
  }

  /** Closes at once: every stream ends, the socket goes. */
  destroy(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.streams.values()) s.destroy();
    this.streams.clear();
    this.wakeWindowWaiters();
    this.compressor.close();
    this.decompressor.close();
    if (err) this.socket.destroy();
    else if (!this.socket.writableEnded) this.socket.end();
    // Half-closed sockets must not linger: a peer that never closes its side is cut after a grace.
    setTimeout(() => this.socket.destroy(), 5_000).unref();
    this.emit('close', err);
  }
}
