import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { AgentCallError, AgentError, connectAgent, waitForAgent, type AgentClient } from '../../../src/agent-protocol/index.js';
import { AGENT_MAGIC, encodeFrame, FrameType, MAX_FRAME_PAYLOAD_BYTES } from '../../../src/agent-protocol/framing.js';
import { pack, startFakePeer, unpack, type FakePeer, type PeerConn } from '../../helpers/agent-fake-peer.js';

function code(c: string) {
  return (err: unknown) => err instanceof AgentError && err.code === c;
}

async function withPeer(t: { after: (fn: () => Promise<void>) => void }): Promise<FakePeer> {
  const peer = await startFakePeer();
  t.after(() => peer.close());
  return peer;
}

/** Connects a client and completes the handshake on the fake side. */
async function connected(peer: FakePeer, t: { after: (fn: () => void) => void }): Promise<{ client: AgentClient; conn: PeerConn }> {
  const pending = connectAgent({ kind: 'unix', path: peer.path }, { timeoutMs: 2000 });
  const conn = await peer.next();
  conn.sendSync(await conn.readHello());
  const client = await pending;
  t.after(() => client.close());
  return { client, conn };
}

test('handshake skips stale output of an earlier session, then calls work', async (t) => {
  const peer = await withPeer(t);
  const pending = connectAgent({ kind: 'unix', path: peer.path }, { timeoutMs: 2000 });
  const conn = await peer.next();
  const nonce = await conn.readHello();
  // A whole old session: its marker (another nonce), a HELLO and a response, plus half a frame.
  const stale = Buffer.concat([
    AGENT_MAGIC,
    randomBytes(16),
    encodeFrame({ type: FrameType.RESPONSE, streamId: 1, flags: 0, payload: pack('Response', { ping: {} }) }),
    Buffer.from([0, 0, 0, 9, 0]),
  ]);
  conn.sendSync(nonce, { before: stale });
  const client = await pending;
  t.after(() => client.close());
  assert.equal(client.agentVersion, 'fake-1');

  const call = client.version();
  const req = await conn.readFrame();
  assert.equal(req.type, FrameType.REQUEST);
  assert.equal(req.streamId % 2, 1, 'host streams are odd');
  assert.equal((unpack('Request', req.payload) as { call: string }).call, 'version');
  conn.sendResponse(req.streamId, { version: { agentVersion: 'fake-1', protocolVersion: 1, kernelRelease: '6.1.0' } });
  assert.deepEqual(await call, { agentVersion: 'fake-1', protocolVersion: 1, kernelRelease: '6.1.0' });
});

test('handshake timeout when the peer never answers', async (t) => {
  const peer = await withPeer(t);
  const started = Date.now();
  await assert.rejects(connectAgent({ kind: 'unix', path: peer.path }, { timeoutMs: 200 }), code('AGENT_TIMEOUT'));
  assert.ok(Date.now() - started < 1500);
});

test('a peer that answers with a wrong protocol version is refused', async (t) => {
  const peer = await withPeer(t);
  const pending = connectAgent({ kind: 'unix', path: peer.path }, { timeoutMs: 2000 });
  const conn = await peer.next();
  conn.sendSync(await conn.readHello(), { protocolVersion: 99 });
  await assert.rejects(pending, /protocol version 99/);
});

test('a peer that sends endless garbage before the marker is cut off at the discard bound', async (t) => {
  const peer = await withPeer(t);
  const pending = connectAgent({ kind: 'unix', path: peer.path }, { timeoutMs: 20_000 });
  const conn = await peer.next();
  await conn.readHello();
  const junk = Buffer.alloc(1 << 20, 0x41);
  for (let i = 0; i < 17 && !conn.closed; i++) conn.write(junk);
  await assert.rejects(pending, code('AGENT_PROTOCOL'));
});

test('a garbled frame closes the channel and fails the pending call', async (t) => {
  const peer = await withPeer(t);
  const { client, conn } = await connected(peer, t);
  const closed = new Promise<Error | undefined>((r) => client.once('close', r));
  const call = client.ping();
  await conn.readFrame();
  conn.write(Buffer.from('\x00\x00\x00\x02garbage-here'));
  await assert.rejects(call, code('AGENT_CLOSED'));
  const err = await closed;
  assert.ok(err instanceof AgentError && err.code === 'AGENT_PROTOCOL', String(err));
  assert.equal(client.closed, true);
  await assert.rejects(client.ping(), code('AGENT_PROTOCOL'), 'later calls fail with the reason');
});

test('an oversized length closes the channel without waiting for the payload', async (t) => {
  const peer = await withPeer(t);
  const { client, conn } = await connected(peer, t);
  const call = client.ping();
  const req = await conn.readFrame();
  const h = Buffer.alloc(12);
  h.writeUInt32BE(MAX_FRAME_PAYLOAD_BYTES + 1, 0);
  h.writeUInt32BE(req.streamId, 4);
  h.writeUInt8(FrameType.RESPONSE, 8);
  conn.write(h);
  await assert.rejects(call, (err: unknown) => err instanceof AgentError && /exceeds/.test(err.message));
});

test('a non-zero reserved field is a protocol error', async (t) => {
  const peer = await withPeer(t);
  const { client, conn } = await connected(peer, t);
  const closed = new Promise<Error | undefined>((r) => client.once('close', r));
  const frame = encodeFrame({ type: FrameType.RESPONSE, streamId: 1, flags: 0, payload: Buffer.alloc(0) });
  frame.writeUInt16BE(1, 10);
  conn.write(frame);
  assert.match(String(await closed), /reserved/);
});

test('a response for a stream id never used is a protocol error', async (t) => {
  const peer = await withPeer(t);
  const { client, conn } = await connected(peer, t);
  const closed = new Promise<Error | undefined>((r) => client.once('close', r));
  conn.sendResponse(41, { ping: {} });
  assert.match(String(await closed), /unknown stream 41/);
});

test('an undecodable or empty response is a protocol error', async (t) => {
  const peer = await withPeer(t);
  const { client, conn } = await connected(peer, t);
  const call = client.ping();
  const req = await conn.readFrame();
  conn.write(encodeFrame({ type: FrameType.RESPONSE, streamId: req.streamId, flags: 0, payload: Buffer.alloc(0) }));
  await assert.rejects(call, code('AGENT_CLOSED'));
  assert.equal(client.closed, true);
});

test('the peer closing mid-call fails the call with AGENT_CLOSED', async (t) => {
  const peer = await withPeer(t);
  const { client, conn } = await connected(peer, t);
  const calls = [client.ping(), client.version()];
  await conn.readFrame();
  conn.sock.destroy();
  for (const c of calls) await assert.rejects(c, code('AGENT_CLOSED'));
});

test('an error result becomes AgentCallError with errno and message', async (t) => {
  const peer = await withPeer(t);
  const { client, conn } = await connected(peer, t);
  const call = client.ping();
  const req = await conn.readFrame();
  conn.sendResponse(req.streamId, { error: { errnum: 38, message: 'unknown call' } });
  await assert.rejects(call, (err: unknown) => err instanceof AgentCallError && err.errnum === 38 && /unknown call/.test(err.message));
  assert.equal(client.closed, false, 'an error answer keeps the channel open');
});

test('a call times out; its late answer is dropped and the channel stays usable', async (t) => {
  const peer = await withPeer(t);
  const { client, conn } = await connected(peer, t);
  const slow = client.ping({ timeoutMs: 50 });
  const req = await conn.readFrame();
  await assert.rejects(slow, code('AGENT_TIMEOUT'));
  conn.sendResponse(req.streamId, { ping: {} });
  const next = client.ping();
  const req2 = await conn.readFrame();
  assert.notEqual(req2.streamId, req.streamId);
  conn.sendResponse(req2.streamId, { ping: {} });
  await next;
  assert.equal(client.closed, false);
});

test('GOAWAY from the agent closes the channel with its reason', async (t) => {
  const peer = await withPeer(t);
  const { client, conn } = await connected(peer, t);
  const closed = new Promise<Error | undefined>((r) => client.once('close', r));
  conn.write(encodeFrame({ type: FrameType.GOAWAY, streamId: 0, flags: 0, payload: pack('Error', { errnum: 71, message: 'bad frame' }) }));
  assert.match(String(await closed), /dropped the session: bad frame/);
});

test('waitForAgent retries until the socket appears, and gives up at its timeout', async (t) => {
  await assert.rejects(
    waitForAgent({ kind: 'unix', path: '/nonexistent/frakti-agent.sock' }, { timeoutMs: 150, intervalMs: 20 }),
    (err: unknown) => err instanceof AgentError && err.code === 'AGENT_TIMEOUT' && /attempts/.test(err.message),
  );
  const peer = await withPeer(t);
  const waiting = waitForAgent({ kind: 'unix', path: peer.path }, { timeoutMs: 3000 });
  const conn = await peer.next();
  conn.sendSync(await conn.readHello());
  (await waiting).close();
});

test('options and targets are validated', async () => {
  await assert.rejects(connectAgent({ kind: 'unix', path: '' }), code('AGENT_OPTIONS'));
  await assert.rejects(connectAgent({ kind: 'unix', path: '/x'.repeat(60) }), code('AGENT_OPTIONS'));
  await assert.rejects(connectAgent({ kind: 'vsock', cid: 2, port: 1024 }), code('AGENT_OPTIONS'));
  await assert.rejects(connectAgent({ kind: 'vsock', cid: 3, port: -1 }), code('AGENT_OPTIONS'));
  await assert.rejects(connectAgent({ kind: 'unix', path: '/x' }, { timeoutMs: 0 }), code('AGENT_OPTIONS'));
  await assert.rejects(connectAgent({ kind: 'unix', path: '/x' }, { bogus: 1 } as never), /unknown option bogus/);
});
