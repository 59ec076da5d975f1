// Framing of the agent protocol (host side). agent.proto holds the schema and
// the same description; the guest agent (initrd/agent/session.c) enforces the
// same rules on its side.
//
// Frame: a 12-byte big-endian header, then the payload.
//   offset 0  u32  payload length (<= MAX_FRAME_PAYLOAD_BYTES = 1 MiB)
//   offset 4  u32  stream id (0 = the session: HELLO, GOAWAY; host-opened
//                  streams odd, agent-opened streams even)
//   offset 8  u8   type (FrameType)
//   offset 9  u8   flags (none defined yet: must be 0)
//   offset 10 u16  reserved (must be 0)
// Anything else is a protocol error: the host closes the channel with an
// error; the agent answers GOAWAY and drops that connection, then keeps
// serving.
//
// Session handshake, on every connection (virtio-serial delivers guest output
// queued during one host connection to the next, so the host never sees a
// clean start):
//   host  -> agent: HOST_MAGIC, then HELLO {protocol_version, 16-byte nonce}
//   agent -> host:  AGENT_MAGIC, the same nonce, HELLO {protocol_version,
//                   agent_version}, then frames.
// The host discards everything before AGENT_MAGIC + its nonce, at most
// MAX_SYNC_DISCARD_BYTES (16 MiB), so stale bytes of an earlier session are
// never parsed as frames. Both magics start with 0xff: no valid header can
// (its length would exceed the maximum), so the agent recognises a new
// session where it expected a frame header.
import { protocolError } from './errors.js';

export const PROTOCOL_VERSION = 1;
export const FRAME_HEADER_BYTES = 12;
export const MAX_FRAME_PAYLOAD_BYTES = 1024 * 1024;
export const NONCE_BYTES = 16;
export const MAGIC_BYTES = 8;
export const MAX_SYNC_DISCARD_BYTES = 16 * 1024 * 1024;
export const AGENT_VSOCK_PORT = 1024;
/** Largest DATA payload either side sends. */
export const MAX_DATA_BYTES = 64 * 1024;
/** Initial credit of each direction of a byte stream. */
export const STREAM_WINDOW_BYTES = 256 * 1024;
/** Output the agent holds per stream until the host acknowledges it (WINDOW). */
export const STREAM_BUFFER_BYTES = 512 * 1024;
/** The virtio-serial port name the agent looks for under /sys/class/virtio-ports. */
export const AGENT_SERIAL_PORT_NAME = 'org.frakti.agent.0';

/** Sent by the host before its HELLO: "\xffFRKTHST". */
export const HOST_MAGIC = Buffer.from([0xff, 0x46, 0x52, 0x4b, 0x54, 0x48, 0x53, 0x54]);
/** Sent by the agent before the echoed nonce: "\xffFRKTAGT". */
export const AGENT_MAGIC = Buffer.from([0xff, 0x46, 0x52, 0x4b, 0x54, 0x41, 0x47, 0x54]);

export enum FrameType {
  HELLO = 1,
  REQUEST = 2,
  RESPONSE = 3,
  DATA = 4,
  WINDOW = 5,
  CLOSE = 6,
  EVENT = 7,
  GOAWAY = 8,
}

const MAX_FRAME_TYPE = FrameType.GOAWAY;
const MAX_STREAM_ID = 0xffffffff;

export interface Frame {
  type: FrameType;
  streamId: number;
  flags: number;
  payload: Buffer;
}

/** Encodes one frame; throws on a payload over the limit or an invalid field (a bug of ours). */
export function encodeFrame(frame: Frame): Buffer {
  const { type, streamId, flags, payload } = frame;
  if (payload.length > MAX_FRAME_PAYLOAD_BYTES) {
    throw new RangeError(`frame payload of ${payload.length} bytes exceeds ${MAX_FRAME_PAYLOAD_BYTES}`);
  }
  if (!Number.isInteger(streamId) || streamId < 0 || streamId > MAX_STREAM_ID) throw new RangeError(`invalid stream id ${streamId}`);
  if (!Number.isInteger(type) || type < 1 || type > MAX_FRAME_TYPE) throw new RangeError(`invalid frame type ${type}`);
  if (flags !== 0) throw new RangeError(`invalid frame flags ${flags}`);
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.writeUInt32BE(streamId, 4);
  out.writeUInt8(type, 8);
  out.writeUInt8(flags, 9);
  out.writeUInt16BE(0, 10);
  payload.copy(out, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Incremental frame decoder. Holds at most one frame's worth of bytes beyond
 * what it has returned; throws AGENT_PROTOCOL on an oversized length, a
 * non-zero reserved field or flags, or an unknown type. After a throw the
 * decoder is unusable (the channel must be closed).
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed = false;

  /** Bytes held, waiting for the rest of a frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): Frame[] {
    if (this.failed) throw protocolError('decoder used after an error');
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const frames: Frame[] = [];
    for (;;) {
      if (this.buffered < FRAME_HEADER_BYTES) break;
      const header = this.peek(FRAME_HEADER_BYTES);
      let length: number;
      try {
        length = validateHeader(header);
      } catch (err) {
        this.failed = true;
        this.chunks = [];
        this.buffered = 0;
        throw err;
      }
      const total = FRAME_HEADER_BYTES + length;
      if (this.buffered < total) break;
      const bytes = this.take(total);
      frames.push({
        type: header.readUInt8(8) as FrameType,
        streamId: header.readUInt32BE(4),
        flags: header.readUInt8(9),
        payload: bytes.subarray(FRAME_HEADER_BYTES),
      });
    }
    return frames;
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined.subarray(0, n);
  }

  private take(n: number): Buffer {
    let joined = this.chunks[0]!;
    if (joined.length < n) {
      joined = Buffer.concat(this.chunks);
      this.chunks = [joined];
    }
    const out = joined.subarray(0, n);
    const rest = joined.subarray(n);
    if (rest.length > 0) this.chunks[0] = rest;
    else this.chunks.shift();
    this.buffered -= n;
    return out;
  }
}

/** Checks a 12-byte header; returns its payload length. */
export function validateHeader(header: Buffer): number {
  const length = header.readUInt32BE(0);
  const type = header.readUInt8(8);
  const flags = header.readUInt8(9);
  const reserved = header.readUInt16BE(10);
  if (length > MAX_FRAME_PAYLOAD_BYTES) {
    throw protocolError(`frame length ${length} exceeds the ${MAX_FRAME_PAYLOAD_BYTES}-byte limit`, { length });
  }
  if (reserved !== 0) throw protocolError(`frame reserved field is ${reserved}, not 0`, { reserved });
  if (flags !== 0) throw protocolError(`frame flags are ${flags}, none is defined`, { flags });
  if (type < 1 || type > MAX_FRAME_TYPE) throw protocolError(`unknown frame type ${type}`, { type });
  return length;
}

/**
 * Finds AGENT_MAGIC + nonce in the bytes the agent sends at the start of a
 * session, discarding what comes before (stale output of an earlier
 * session). Keeps only a marker's length of tail between pushes; throws
 * AGENT_PROTOCOL once more than `maxDiscardBytes` were discarded.
 */
export class SyncScanner {
  private readonly marker: Buffer;
  private tail: Buffer = Buffer.alloc(0);
  private discarded = 0;

  constructor(nonce: Buffer, private readonly maxDiscardBytes = MAX_SYNC_DISCARD_BYTES) {
    if (nonce.length !== NONCE_BYTES) throw new RangeError(`nonce must be ${NONCE_BYTES} bytes`);
    this.marker = Buffer.concat([AGENT_MAGIC, nonce]);
  }

  get discardedBytes(): number {
    return this.discarded;
  }

  /** Returns the bytes after the marker once it is found, else null. */
  push(chunk: Buffer): Buffer | null {
    const data = this.tail.length ? Buffer.concat([this.tail, chunk]) : chunk;
    const at = data.indexOf(this.marker);
    if (at >= 0) {
      this.discarded += at;
      this.tail = Buffer.alloc(0);
      return data.subarray(at + this.marker.length);
    }
    const keep = Math.min(data.length, this.marker.length - 1);
    this.discarded += data.length - keep;
    this.tail = Buffer.from(data.subarray(data.length - keep));
    if (this.discarded > this.maxDiscardBytes) {
      throw protocolError(`no session marker in the first ${this.discarded} bytes from the agent`, { discarded: this.discarded });
    }
    return null;
  }
}
