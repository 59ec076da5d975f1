// Makes every gRPC client's requests acceptable to Node's HTTP/2 server.
//
// Kubernetes' CRI client up to 1.30 (kubelet, crictl) dials the socket path
// without a scheme, so grpc-go sends the path ("/run/frakti/frakti.sock") as
// the request's :authority. nghttp2, inside Node, resets any stream whose
// :authority has a character a URI authority may not have ('/'), or is
// empty, before grpc-js sees the call; Node has no switch for that check.
// Go servers (containerd, CRI-O) ignore the authority, as a unix socket has
// no host to name.
//
// So the bytes from the client pass through this filter, which follows the
// HTTP/2 framing (RFC 7540 4.1) and decodes every request header block
// (HPACK, RFC 7541) to keep the client encoder's table in step. A block whose
// :authority nghttp2 would take passes through untouched; from the first one
// it would not, every block of that connection is written again as plain
// literals with `:authority: localhost` (what cri-client sends from 1.31 on).
// Literals use no dynamic table, so the server's decoder stays consistent
// whatever was passed through before. Everything else (DATA, SETTINGS, ...)
// and the whole server-to-client direction pass through as they are.
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { logger } from '../lib/log.js';
import { encodeLiterals, HpackDecoder, HpackError, type HeaderField, type HpackLimits } from './hpack.js';

const log = logger('cri');

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_HEADER_BYTES = 9;
const TYPE_HEADERS = 0x1;
const TYPE_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
const PRIORITY_BYTES = 5;
/** Every HTTP/2 peer accepts frames this large (the SETTINGS_MAX_FRAME_SIZE floor). */
const MAX_WRITTEN_FRAME_BYTES = 16_384;
/** The authority written in place of one nghttp2 refuses. */
export const REPLACEMENT_AUTHORITY = 'localhost';

export const DEFAULT_HEADER_LIMITS: HpackLimits & { maxBlockBytes: number } = {
  // Node's server advertises 4096; a client asking for more is wrong, but its table must still fit.
  maxTableBytes: 65_536,
  maxHeaderListBytes: 256 * 1024,
  /** One header block as sent, all its frames together. */
  maxBlockBytes: 256 * 1024,
};

/** nghttp2's rule for :authority (its VALID_AUTHORITY_CHARS), plus: not empty. */
const AUTHORITY_RE = /^[A-Za-z0-9\-._~!$&'()*+,;=:@[\]%]+$/;

export function authorityAccepted(value: string | undefined): boolean {
  return value !== undefined && AUTHORITY_RE.test(value);
}

export class H2FilterError extends Error {
  override readonly name = 'H2FilterError';
}

interface FrameHead {
  length: number;
  type: number;
  flags: number;
  stream: number;
}

function readFrameHead(b: Buffer): FrameHead {
  return { length: b.readUIntBE(0, 3), type: b[3]!, flags: b[4]!, stream: b.readUInt32BE(5) & 0x7fffffff };
}

function frameHead(length: number, type: number, flags: number, stream: number): Buffer {
  const b = Buffer.alloc(FRAME_HEADER_BYTES);
  b.writeUIntBE(length, 0, 3);
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(stream, 5);
  return b;
}

/** A request header block being collected: HEADERS, then CONTINUATIONs until END_HEADERS. */
interface PendingBlock {
  stream: number;
  /** The HEADERS frame's END_STREAM and its priority fields, kept when the block is rewritten. */
  endStream: boolean;
  priority: Buffer | undefined;
  fragments: Buffer[];
  fragmentBytes: number;
  /** The frames exactly as received, for passing the block through. */
  raw: Buffer[];
}

/**
 * The client-to-server byte filter. push() takes bytes as they arrive and
 * returns what to hand the server; it throws H2FilterError (or HpackError)
 * when the client breaks the protocol, after which the connection must end.
 */
export class AuthorityFilter {
  private prefaceSeen = 0;
  /** After a bad preface: not HTTP/2 as we know it; nghttp2 will refuse it, we only pass it on. */
  private opaque = false;
  private headBuf: Buffer[] = [];
  private headBytes = 0;
  private frame: FrameHead | undefined;
  private frameLeft = 0;
  /** The payload of the HEADERS or CONTINUATION frame being read. */
  private payload: Buffer[] = [];
  private block: PendingBlock | undefined;
  private rewriting = false;
  private readonly decoder: HpackDecoder;
  /** Blocks written again: for tests and the debug log. */
  rewritten = 0;

  constructor(private readonly limits = DEFAULT_HEADER_LIMITS) {
    this.decoder = new HpackDecoder(limits);
  }

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let at = 0;
    if (this.opaque) return [chunk];
    if (this.prefaceSeen < PREFACE.length) {
      const n = Math.min(PREFACE.length - this.prefaceSeen, chunk.length);
      if (!chunk.subarray(0, n).equals(PREFACE.subarray(this.prefaceSeen, this.prefaceSeen + n))) {
        this.opaque = true;
        return [chunk];
      }
      this.prefaceSeen += n;
      out.push(chunk.subarray(0, n));
      at = n;
    }
    while (at < chunk.length) {
      if (!this.frame) {
        const n = Math.min(FRAME_HEADER_BYTES - this.headBytes, chunk.length - at);
        this.headBuf.push(chunk.subarray(at, at + n));
        this.headBytes += n;
        at += n;
        if (this.headBytes < FRAME_HEADER_BYTES) break;
        const head = Buffer.concat(this.headBuf);
        this.headBuf = [];
        this.headBytes = 0;
        this.startFrame(readFrameHead(head), head, out);
        continue;
      }
      const n = Math.min(this.frameLeft, chunk.length - at);
      const part = chunk.subarray(at, at + n);
      at += n;
      this.frameLeft -= n;
      if (this.isHeaderFrame()) this.payload.push(part);
      else out.push(part);
      if (this.frameLeft === 0) this.endFrame(out);
    }
    return out;
  }

  private isHeaderFrame(): boolean {
    return this.frame!.type === TYPE_HEADERS || this.frame!.type === TYPE_CONTINUATION;
  }

  private startFrame(f: FrameHead, head: Buffer, out: Buffer[]): void {
    if (this.block && (f.type !== TYPE_CONTINUATION || f.stream !== this.block.stream)) {
      throw new H2FilterError(`frame of type ${f.type} inside the header block of stream ${this.block.stream}`);
    }
    if (f.type === TYPE_CONTINUATION && !this.block) throw new H2FilterError('CONTINUATION without HEADERS');
    this.frame = f;
    this.frameLeft = f.length;
    if (this.isHeaderFrame()) {
      const have = this.block ? this.block.fragmentBytes : 0;
      if (have + f.length > this.limits.maxBlockBytes) throw new H2FilterError(`header block larger than ${this.limits.maxBlockBytes} bytes`);
      this.payload = [head];
    } else {
      out.push(head);
    }
    if (this.frameLeft === 0) this.endFrame(out);
  }

  private endFrame(out: Buffer[]): void {
    const f = this.frame!;
    this.frame = undefined;
    if (!(f.type === TYPE_HEADERS || f.type === TYPE_CONTINUATION)) return;
    const raw = Buffer.concat(this.payload);
    this.payload = [];
    const body = raw.subarray(FRAME_HEADER_BYTES);
    if (f.type === TYPE_HEADERS) {
      const { fragment, priority } = headersFragment(f, body);
      this.block = { stream: f.stream, endStream: (f.flags & FLAG_END_STREAM) !== 0, priority, fragments: [fragment], fragmentBytes: fragment.length, raw: [raw] };
    } else {
      const b = this.block!;
      b.fragments.push(body);
      b.fragmentBytes += body.length;
      b.raw.push(raw);
    }
    if (f.flags & FLAG_END_HEADERS) {
      const b = this.block!;
      this.block = undefined;
      out.push(...this.finishBlock(b));
    }
  }

  private finishBlock(b: PendingBlock): Buffer[] {
    const fields = this.decoder.decode(Buffer.concat(b.fragments));
    const isRequest = fields.some((h) => h.name === ':method');
    if (isRequest && !this.rewriting && !authorityAccepted(fields.find((h) => h.name === ':authority')?.value)) {
      this.rewriting = true;
      log.debug('client sends an authority HTTP/2 refuses; its request headers are rewritten', { authority: fields.find((h) => h.name === ':authority')?.value ?? null });
    }
    if (!this.rewriting) return b.raw;
    this.rewritten++;
    return headerFrames(b, isRequest ? withAuthority(fields) : fields);
  }
}

/** Strips a HEADERS frame's padding and priority fields (RFC 7540 6.2). */
function headersFragment(f: FrameHead, body: Buffer): { fragment: Buffer; priority: Buffer | undefined } {
  let start = 0;
  let end = body.length;
  if (f.flags & FLAG_PADDED) {
    if (body.length < 1) throw new H2FilterError('padded HEADERS frame without its pad length');
    end -= body[0]!;
    start = 1;
  }
  let priority: Buffer | undefined;
  if (f.flags & FLAG_PRIORITY) {
    priority = body.subarray(start, start + PRIORITY_BYTES);
    start += PRIORITY_BYTES;
  }
  if (end < start) throw new H2FilterError('HEADERS frame padding longer than its payload');
  return { fragment: body.subarray(start, end), priority };
}

/** The fields with an authority nghttp2 takes, placed among the pseudo-headers. */
function withAuthority(fields: HeaderField[]): HeaderField[] {
  const rest = fields.filter((h) => h.name !== ':authority');
  const pseudo = rest.filter((h) => h.name.startsWith(':'));
  const regular = rest.filter((h) => !h.name.startsWith(':'));
  return [...pseudo, { name: ':authority', value: REPLACEMENT_AUTHORITY, sensitive: false }, ...regular];
}

/** HEADERS (+ CONTINUATION) frames carrying `fields` as literals, with the original's END_STREAM and priority. */
function headerFrames(b: PendingBlock, fields: HeaderField[]): Buffer[] {
  const block = encodeLiterals(fields);
  const frames: Buffer[] = [];
  const firstRoom = MAX_WRITTEN_FRAME_BYTES - (b.priority ? PRIORITY_BYTES : 0);
  let at = 0;
  let first = true;
  do {
    const room = first ? firstRoom : MAX_WRITTEN_FRAME_BYTES;
    const part = block.subarray(at, at + room);
    at += part.length;
    const last = at >= block.length;
    const flags = (last ? FLAG_END_HEADERS : 0) | (first && b.endStream ? FLAG_END_STREAM : 0) | (first && b.priority ? FLAG_PRIORITY : 0);
    const prio = first && b.priority ? b.priority : Buffer.alloc(0);
    frames.push(frameHead(prio.length + part.length, first ? TYPE_HEADERS : TYPE_CONTINUATION, flags, b.stream), prio, part);
    first = false;
  } while (at < block.length);
  return frames;
}

/**
 * Wraps an accepted connection so that what the client sends goes through
 * an AuthorityFilter on its way to the HTTP/2 server; the server's bytes go
 * to the client as they are. Backpressure holds both ways; either side
 * closing closes the other. A client that breaks HTTP/2 is disconnected.
 */
export function filterAuthority(socket: Socket, limits = DEFAULT_HEADER_LIMITS): Duplex {
  const filter = new AuthorityFilter(limits);
  const wrapped = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      if (socket.write(chunk)) cb();
      else socket.once('drain', () => cb());
    },
    final(cb) {
      socket.end();
      cb();
    },
    destroy(err, cb) {
      socket.destroy();
      cb(err);
    },
  });
  socket.on('data', (chunk: Buffer) => {
    let out: Buffer[];
    try {
      out = filter.push(chunk);
    } catch (err) {
      // A client that broke HTTP/2 is disconnected; so is one that hit a bug of
      // ours here (said louder), which must not take the daemon down with it.
      if (err instanceof H2FilterError || err instanceof HpackError) log.warn('client broke HTTP/2; disconnected', { error: err.message });
      else log.error('HTTP/2 filter failed; client disconnected', { error: String(err), stack: err instanceof Error ? err.stack : undefined });
      socket.destroy();
      return;
    }
    let more = true;
    for (const b of out) if (b.length) more = wrapped.push(b);
    if (!more) socket.pause();
  });
  socket.on('end', () => wrapped.push(null));
  socket.on('close', () => wrapped.destroy());
  // The session sees the close; the error itself is the client's business.
  socket.on('error', (err) => log.debug('client connection error', { error: err.message }));
  return wrapped;
}
