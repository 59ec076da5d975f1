// SPDY/3 framing, as Kubernetes' streaming clients speak it (the upgrade
// token says SPDY/3.1; the frames carry version 3). Every frame starts with
// 8 bytes:
//   control: 1 | version (15) | type (16) | flags (8) | length (24)
//   data:    0 | stream id (31)           | flags (8) | length (24)
// Header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are
//   u32 pairs, then per pair u32 name length, name, u32 value length, value
// compressed with one zlib stream per direction (spdy-header-zlib.ts).

export const SPDY_VERSION = 3;
export const FRAME_HEADER_BYTES = 8;
export const FLAG_FIN = 0x01;
/** SETTINGS id of the peer's initial stream window (SPDY/3 flow control). */
export const SETTINGS_INITIAL_WINDOW_SIZE = 7;
/** The window every stream and the session start with until SETTINGS says otherwise. */
export const DEFAULT_WINDOW_BYTES = 64 * 1024;

export const ControlType = {
  SYN_STREAM: 1,
  SYN_REPLY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  HEADERS: 8,
  WINDOW_UPDATE: 9,
} as const;

export const RstStatus = {
  PROTOCOL_ERROR: 1,
  INVALID_STREAM: 2,
  REFUSED_STREAM: 3,
  CANCEL: 5,
  INTERNAL_ERROR: 6,
  STREAM_ALREADY_CLOSED: 9,
  FRAME_TOO_LARGE: 11,
} as const;

export const GoawayStatus = { OK: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2 } as const;

export type Frame =
  | { kind: 'data'; streamId: number; flags: number; data: Buffer }
  | { kind: 'control'; version: number; type: number; flags: number; payload: Buffer };

export class SpdyProtocolError extends Error {}

/**
 * The first whole frame in `buf`, or undefined when more bytes are needed.
 * A frame longer than maxPayload is refused before its bytes arrive.
 */
export function readFrame(buf: Buffer, maxPayload: number): { frame: Frame; size: number } | undefined {
  if (buf.length < FRAME_HEADER_BYTES) return undefined;
  const first = buf.readUInt32BE(0);
  const flags = buf[4]!;
  const length = buf.readUIntBE(5, 3);
  if (length > maxPayload) throw new SpdyProtocolError(`frame of ${length} bytes is over the limit of ${maxPayload}`);
  const size = FRAME_HEADER_BYTES + length;
  if (buf.length < size) return undefined;
  const payload = buf.subarray(FRAME_HEADER_BYTES, size);
  if (first & 0x80000000) {
    return { frame: { kind: 'control', version: (first >>> 16) & 0x7fff, type: first & 0xffff, flags, payload }, size };
  }
  return { frame: { kind: 'data', streamId: first & 0x7fffffff, flags, data: payload }, size };
}

function header(first: number, flags: number, length: number): Buffer {
  const h = Buffer.alloc(FRAME_HEADER_BYTES);
  h.writeUInt32BE(first >>> 0, 0);
  h[4] = flags;
  h.writeUIntBE(length, 5, 3);
  return h;
}

export function controlFrame(type: number, flags: number, payload: Buffer): Buffer {
  return Buffer.concat([header((0x8000 | SPDY_VERSION) * 0x10000 + type, flags, payload.length), payload]);
}

export function dataFrame(streamId: number, flags: number, data: Buffer): Buffer[] {
  return [header(streamId & 0x7fffffff, flags, data.length), data];
}

export function u32s(...values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeUInt32BE(v >>> 0, i * 4));
  return b;
}

export function rstStream(streamId: number, status: number): Buffer {
  return controlFrame(ControlType.RST_STREAM, 0, u32s(streamId & 0x7fffffff, status));
}

export function goaway(lastGoodStreamId: number, status: number): Buffer {
  return controlFrame(ControlType.GOAWAY, 0, u32s(lastGoodStreamId & 0x7fffffff, status));
}

export function windowUpdate(streamId: number, delta: number): Buffer {
  return controlFrame(ControlType.WINDOW_UPDATE, 0, u32s(streamId & 0x7fffffff, delta & 0x7fffffff));
}

/** An uncompressed header block; names are lower-case on the wire. */
export function encodeHeaderBlock(headers: Array<[string, string]>): Buffer {
  const parts: Buffer[] = [u32s(headers.length)];
  for (const [name, value] of headers) {
    const n = Buffer.from(name.toLowerCase(), 'utf8');
    const v = Buffer.from(value, 'utf8');
    parts.push(u32s(n.length), n, u32s(v.length), v);
  }
  return Buffer.concat(parts);
}

/** Decodes a header block; a name's several values (NUL-separated on the wire) become one list. */
export function decodeHeaderBlock(block: Buffer, maxPairs: number): Map<string, string[]> {
  const fail = (what: string): never => {
    throw new SpdyProtocolError(`bad header block: ${what}`);
  };
  if (block.length < 4) fail('shorter than its count');
  const count = block.readUInt32BE(0);
  if (count > maxPairs) fail(`${count} pairs, more than ${maxPairs}`);
  const out = new Map<string, string[]>();
  let at = 4;
  const field = (what: string): string => {
    if (at + 4 > block.length) fail(`${what} length past the end`);
    const len = block.readUInt32BE(at);
    at += 4;
    if (at + len > block.length) fail(`${what} past the end`);
    const s = block.toString('utf8', at, at + len);
    at += len;
    return s;
  };
  for (let i = 0; i < count; i++) {
    const name = field('name');
    if (name.length === 0) fail('empty name');
    const values = field('value').split('\0');
    out.set(name.toLowerCase(), [...(out.get(name.toLowerCase()) ?? []), ...values]);
  }
  if (at !== block.length) fail(`${block.length - at} bytes after the last pair`);
  return out;
}
