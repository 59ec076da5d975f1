import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { AgentError } from '../../../src/agent-protocol/errors.js';
import {
  AGENT_MAGIC,
  AGENT_VSOCK_PORT,
  encodeFrame,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameType,
  HOST_MAGIC,
  MAGIC_BYTES,
  MAX_FRAME_PAYLOAD_BYTES,
  MAX_SYNC_DISCARD_BYTES,
  NONCE_BYTES,
  PROTOCOL_VERSION,
  SyncScanner,
} from '../../../src/agent-protocol/framing.js';
import { protoEnum } from '../../../src/agent-protocol/messages.js';

function header(len: number, stream: number, type: number, flags = 0, reserved = 0): Buffer {
  const h = Buffer.alloc(FRAME_HEADER_BYTES);
  h.writeUInt32BE(len, 0);
  h.writeUInt32BE(stream, 4);
  h.writeUInt8(type, 8);
  h.writeUInt8(flags, 9);
  h.writeUInt16BE(reserved, 10);
  return h;
}

function isProtocolError(err: unknown): boolean {
  return err instanceof AgentError && err.code === 'AGENT_PROTOCOL';
}

test('constants match agent.proto', () => {
  const limits = protoEnum('Limits');
  assert.equal(limits.PROTOCOL_VERSION, PROTOCOL_VERSION);
  assert.equal(limits.FRAME_HEADER_BYTES, FRAME_HEADER_BYTES);
  assert.equal(limits.MAX_FRAME_PAYLOAD_BYTES, MAX_FRAME_PAYLOAD_BYTES);
  assert.equal(limits.NONCE_BYTES, NONCE_BYTES);
  assert.equal(limits.MAGIC_BYTES, MAGIC_BYTES);
  assert.equal(limits.MAX_SYNC_DISCARD_BYTES, MAX_SYNC_DISCARD_BYTES);
  assert.equal(limits.VSOCK_PORT, AGENT_VSOCK_PORT);
  const types = protoEnum('FrameType');
  for (const [name, value] of Object.entries(types)) {
    if (value === 0) continue;
    assert.equal(FrameType[name.replace('FRAME_TYPE_', '') as keyof typeof FrameType], value, name);
  }
  assert.equal(HOST_MAGIC.length, MAGIC_BYTES);
  assert.equal(AGENT_MAGIC[0], 0xff, 'a magic must start with a byte no valid header starts with');
});

test('a frame survives encoding and decoding, byte by byte', () => {
  const payload = randomBytes(1000);
  const bytes = encodeFrame({ type: FrameType.RESPONSE, streamId: 7, flags: 0, payload });
  assert.equal(bytes.length, FRAME_HEADER_BYTES + 1000);
  assert.deepEqual(bytes.subarray(0, FRAME_HEADER_BYTES), header(1000, 7, FrameType.RESPONSE));
  const d = new FrameDecoder();
  const frames = [];
  for (let i = 0; i < bytes.length; i++) frames.push(...d.push(bytes.subarray(i, i + 1)));
  assert.equal(frames.length, 1);
  assert.equal(frames[0]!.streamId, 7);
  assert.equal(frames[0]!.type, FrameType.RESPONSE);
  assert.ok(frames[0]!.payload.equals(payload));
  assert.equal(d.bufferedBytes, 0);
});

test('several frames in one chunk, and an empty payload', () => {
  const a = encodeFrame({ type: FrameType.HELLO, streamId: 0, flags: 0, payload: Buffer.alloc(0) });
  const b = encodeFrame({ type: FrameType.RESPONSE, streamId: 3, flags: 0, payload: Buffer.from('xyz') });
  const frames = new FrameDecoder().push(Buffer.concat([a, b, b.subarray(0, 5)]));
  assert.deepEqual(
    frames.map((f) => [f.type, f.streamId, f.payload.toString()]),
    [
      [FrameType.HELLO, 0, ''],
      [FrameType.RESPONSE, 3, 'xyz'],
    ],
  );
});

test('a frame of exactly the maximum size is accepted', () => {
  const payload = Buffer.alloc(MAX_FRAME_PAYLOAD_BYTES, 1);
  const frames = new FrameDecoder().push(encodeFrame({ type: FrameType.RESPONSE, streamId: 1, flags: 0, payload }));
  assert.equal(frames[0]!.payload.length, MAX_FRAME_PAYLOAD_BYTES);
});

test('an oversized length is refused from the header alone, before any payload is buffered', () => {
  const d = new FrameDecoder();
  assert.throws(() => d.push(header(MAX_FRAME_PAYLOAD_BYTES + 1, 1, FrameType.RESPONSE)), isProtocolError);
  assert.equal(d.bufferedBytes, 0);
  assert.throws(() => d.push(Buffer.alloc(1)), isProtocolError, 'the decoder stays failed');
  assert.throws(() => encodeFrame({ type: FrameType.REQUEST, streamId: 1, flags: 0, payload: Buffer.alloc(MAX_FRAME_PAYLOAD_BYTES + 1) }), RangeError);
});

test('non-zero reserved field, unknown flags, unknown type and garbage are protocol errors', () => {
  assert.throws(() => new FrameDecoder().push(header(0, 1, FrameType.RESPONSE, 0, 1)), /reserved/);
  assert.throws(() => new FrameDecoder().push(header(0, 1, FrameType.RESPONSE, 4)), /flags/);
  assert.throws(() => new FrameDecoder().push(header(0, 1, 0)), /unknown frame type 0/);
  assert.throws(() => new FrameDecoder().push(header(0, 1, 200)), /unknown frame type 200/);
  assert.throws(() => new FrameDecoder().push(Buffer.from('GET / HTTP/1.1\r\n\r\n')), isProtocolError);
});

test('the sync scanner skips stale bytes and finds a marker split across chunks', () => {
  const nonce = randomBytes(NONCE_BYTES);
  const stale = Buffer.concat([randomBytes(5000), AGENT_MAGIC, randomBytes(NONCE_BYTES), randomBytes(100)]);
  const marker = Buffer.concat([AGENT_MAGIC, nonce]);
  const after = Buffer.from('frames');
  const all = Buffer.concat([stale, marker, after]);
  const s = new SyncScanner(nonce);
  let rest: Buffer | null = null;
  let i = 0;
  for (; i < all.length && rest === null; i += 7) rest = s.push(all.subarray(i, i + 7));
  assert.ok(rest !== null, 'marker found');
  assert.equal(s.discardedBytes, stale.length);
  // What follows the marker is handed back, nothing of it lost.
  assert.equal(Buffer.concat([rest, all.subarray(i)]).toString(), 'frames');
});

test('the sync scanner gives up after its discard bound', () => {
  const s = new SyncScanner(randomBytes(NONCE_BYTES), 4096);
  assert.equal(s.push(Buffer.alloc(4000)), null);
  assert.throws(() => s.push(Buffer.alloc(4000)), /no session marker/);
});
