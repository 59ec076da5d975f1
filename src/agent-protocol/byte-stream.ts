// One byte stream of the agent channel, host side: process stdout/stderr
// (agent -> host), stdin (host -> agent), or a port forward (both ways).
//
// Flow control (agent.proto): each direction starts with STREAM_WINDOW_BYTES
// of credit. Inbound: the agent may send that much; we give credit back with
// WINDOW only for bytes the consumer has taken out of the Readable ('read'
// mode), or only for bytes the consumer says it has stored ('caller' mode:
// acknowledge()), so at most a window is held here however much the process
// writes. That WINDOW is also the agent's acknowledgement: what we never
// granted, the agent sends again to the next connection, so bytes lost with
// a dropped channel (or a crashed frakti) are not lost for the output.
// Outbound: we send at most the credit the agent granted; a write waits for
// WINDOW. A peer that exceeds its credit breaks the protocol.
import { Duplex, Readable, Writable } from 'node:stream';
import { protocolError } from './errors.js';
import { FrameType, MAX_DATA_BYTES, STREAM_WINDOW_BYTES } from './framing.js';

/** Most credit a stream may accumulate (a peer granting more is broken). */
const MAX_CREDIT_BYTES = 64 * 1024 * 1024;
/** Readable buffer before we stop granting credit. */
const READ_HIGH_WATER_BYTES = 64 * 1024;

/** Who acknowledges inbound bytes: the stream as they are read, or the consumer with acknowledge(). */
export type AckMode = 'read' | 'caller';

export interface FrameSink {
  send(type: FrameType, streamId: number, payload: Buffer): void;
  readonly open: boolean;
}

function windowPayload(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/** Fails a node stream with err when someone listens for errors, else ends it (an unhandled 'error' would crash the daemon). */
function failQuietly(s: Readable | Writable | Duplex, err: Error, readable: boolean): void {
  if (s.destroyed) return;
  if (s.listenerCount('error') > 0) {
    // The listener may be pipe()'s own, which unpipes and then throws the
    // error again when nobody else listens: this one makes sure somebody does.
    s.once('error', () => {});
    s.destroy(err);
  } else if (readable) {
    (s as Readable).push(null);
    // A Duplex (a port forward) is dead both ways: once its reader took the
    // rest, it closes, or its writable side would wait for an end() forever.
    if (s instanceof Duplex) {
      if (s.readableEnded) s.destroy();
      else s.once('end', () => s.destroy());
    }
  } else s.destroy();
}

export class ByteStream {
  /** What node streams the caller gets. */
  readonly stream: Duplex | Readable | Writable;
  /** Inbound: credit the agent still has; null when this stream has no inbound direction. */
  private inCredit: number | null;
  private inUngranted = 0;
  private inDone: boolean;
  private inDiscard = false;
  /** Outbound: credit we have; null when no outbound direction. */
  private outCredit: number | null;
  private outDone: boolean;
  private pendingWrite: { chunk: Buffer; cb: (err?: Error | null) => void } | null = null;

  constructor(
    readonly id: number,
    private readonly sink: FrameSink,
    readonly dirs: { inbound: boolean; outbound: boolean },
    private readonly onFinished: (s: ByteStream) => void,
    private readonly ackMode: AckMode = 'read',
  ) {
    this.inCredit = dirs.inbound ? STREAM_WINDOW_BYTES : null;
    this.outCredit = dirs.outbound ? STREAM_WINDOW_BYTES : null;
    this.inDone = !dirs.inbound;
    this.outDone = !dirs.outbound;
    const read = () => this.grant();
    // Credit follows consumption: after every read() (flowing mode and
    // async iteration read() too), what left the buffer is granted.
    const ackingRead = <T extends Readable>(r: T): T => {
      if (ackMode === 'caller') return r;
      const plainRead = r.read.bind(r);
      r.read = (size?: number) => {
        const chunk: unknown = plainRead(size);
        this.grant();
        return chunk;
      };
      return r;
    };
    const write = (chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void) => this.write(chunk, cb);
    const final = (cb: (err?: Error | null) => void) => this.finalOut(cb);
    const destroy = (err: Error | null, cb: (err?: Error | null) => void) => {
      this.onDestroyed();
      cb(err);
    };
    if (dirs.inbound && dirs.outbound) {
      this.stream = ackingRead(new Duplex({ read, write, final, destroy, readableHighWaterMark: READ_HIGH_WATER_BYTES, allowHalfOpen: true }));
    } else if (dirs.inbound) {
      this.stream = ackingRead(new Readable({ read, destroy, highWaterMark: READ_HIGH_WATER_BYTES }));
    } else {
      this.stream = new Writable({ write, final, destroy });
    }
  }

  get finished(): boolean {
    return this.inDone && this.outDone;
  }

  /** DATA from the agent. Throws AGENT_PROTOCOL when it is not ours to receive or exceeds the credit. */
  onData(payload: Buffer): void {
    if (this.inCredit === null || this.inDone) throw protocolError(`DATA on stream ${this.id}, which the agent may not write`, { streamId: this.id });
    if (payload.length > MAX_DATA_BYTES) throw protocolError(`DATA of ${payload.length} bytes on stream ${this.id} exceeds ${MAX_DATA_BYTES}`);
    if (payload.length > this.inCredit) {
      throw protocolError(`agent sent ${payload.length} bytes on stream ${this.id} with ${this.inCredit} bytes of credit`, { streamId: this.id });
    }
    this.inCredit -= payload.length;
    if (this.inDiscard) {
      // Nobody reads any more: keep the process going by granting at once.
      this.sendWindow(payload.length);
      return;
    }
    this.inUngranted += payload.length;
    (this.stream as Readable).push(Buffer.from(payload));
  }

  onWindow(payload: Buffer): void {
    if (payload.length !== 4) throw protocolError(`WINDOW on stream ${this.id} has ${payload.length} bytes, not 4`);
    if (this.outCredit === null) throw protocolError(`WINDOW on stream ${this.id}, which we do not write`);
    const n = payload.readUInt32BE(0);
    if (n === 0 || this.outCredit + n > MAX_CREDIT_BYTES) throw protocolError(`WINDOW of ${n} bytes on stream ${this.id} is out of range`);
    if (this.outDone) return;
    this.outCredit += n;
    const p = this.pendingWrite;
    if (p) {
      this.pendingWrite = null;
      this.write(p.chunk, p.cb);
    }
  }

  onClose(payload: Buffer): void {
    if (payload.length !== 0) throw protocolError(`CLOSE on stream ${this.id} carries a payload`);
    if (this.inCredit === null || this.inDone) throw protocolError(`CLOSE on stream ${this.id}, which the agent does not write`);
    this.inDone = true;
    if (!this.inDiscard) (this.stream as Readable).push(null);
    if (this.finished) this.onFinished(this);
  }

  /** The channel closed: the streams end (with err when someone listens). */
  onChannelClosed(err: Error): void {
    const p = this.pendingWrite;
    this.pendingWrite = null;
    this.inDone = true;
    this.outDone = true;
    if (p) p.cb(err);
    failQuietly(this.stream, err, this.dirs.inbound);
  }

  /**
   * 'caller' mode: the consumer has stored n more bytes it took from this
   * stream (also after CLOSE), so the agent may forget them and send n more.
   */
  acknowledge(n: number): void {
    if (this.ackMode !== 'caller' || this.inDiscard) return;
    const taken = this.inUngranted - (this.stream as Readable).readableLength;
    if (!Number.isInteger(n) || n < 0 || n > taken) throw new RangeError(`acknowledge(${n}) on stream ${this.id}, which has ${taken} bytes taken and not acknowledged`);
    if (n === 0 || !this.sink.open) return;
    this.inUngranted -= n;
    this.sendWindow(n);
  }

  /** Grants (acknowledges) what the consumer took: pushed bytes no longer in the Readable's buffer. Also after CLOSE. */
  private grant(): void {
    if (this.inUngranted === 0 || !this.sink.open) return;
    if (this.ackMode === 'caller' && !this.inDiscard) return;
    const buffered = this.inDiscard ? 0 : (this.stream as Readable).readableLength;
    const n = this.inUngranted - buffered;
    if (n <= 0) return;
    this.inUngranted -= n;
    this.sendWindow(n);
  }

  private sendWindow(n: number): void {
    this.inCredit! += n;
    if (this.sink.open) this.sink.send(FrameType.WINDOW, this.id, windowPayload(n));
  }

  private write(chunk: Buffer, cb: (err?: Error | null) => void): void {
    if (this.outDone || !this.sink.open) return cb(new Error(`stream ${this.id} is closed`));
    let off = 0;
    while (off < chunk.length && this.outCredit! > 0) {
      const n = Math.min(chunk.length - off, this.outCredit!, MAX_DATA_BYTES);
      this.sink.send(FrameType.DATA, this.id, chunk.subarray(off, off + n));
      this.outCredit! -= n;
      off += n;
    }
    if (off < chunk.length) this.pendingWrite = { chunk: chunk.subarray(off), cb };
    else cb();
  }

  private finalOut(cb: (err?: Error | null) => void): void {
    if (!this.outDone) {
      this.outDone = true;
      if (this.sink.open) this.sink.send(FrameType.CLOSE, this.id, Buffer.alloc(0));
      if (this.finished) this.onFinished(this);
    }
    cb();
  }

  private onDestroyed(): void {
    // The consumer gave up reading: drain the rest so the process is not stuck on a full pipe.
    if (this.dirs.inbound) {
      this.inDiscard = true;
      this.grant();
    }
    if (!this.outDone) {
      this.outDone = true;
      const p = this.pendingWrite;
      this.pendingWrite = null;
      if (p) p.cb(new Error(`stream ${this.id} destroyed`));
      if (this.sink.open) this.sink.send(FrameType.CLOSE, this.id, Buffer.alloc(0));
    }
    if (this.finished) this.onFinished(this);
  }
}
