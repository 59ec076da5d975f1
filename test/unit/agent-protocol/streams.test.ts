// The client's byte streams, exit events and answer checks against a
// scripted fake agent: flow control is honoured both ways, and a guest that
// breaks the rules (more than its credit, unknown streams, garbled events,
// values out of range) gets the channel closed with AGENT_PROTOCOL, never a
// crash or a hang.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentError, connectAgent, STREAM_WINDOW_BYTES, type AgentClient, type ProcessSpec } from '../../../src/agent-protocol/index.js';
import { encodeFrame, FrameType, MAX_DATA_BYTES } from '../../../src/agent-protocol/framing.js';
import { pack, startFakePeer, unpack, type FakePeer, type PeerConn } from '../../helpers/agent-fake-peer.js';

const SPEC: ProcessSpec = { args: ['cat'], env: [], cwd: '', uid: -1, gid: -1, additionalGids: [], terminal: false, stdin: true };

async function connected(t: { after: (fn: () => Promise<void> | void) => void }): Promise<{ client: AgentClient; conn: PeerConn; peer: FakePeer }> {
  const peer = await startFakePeer();
  t.after(() => peer.close());
  const pending = connectAgent({ kind: 'unix', path: peer.path }, { timeoutMs: 2000 });
  const conn = await peer.next();
  conn.sendSync(await conn.readHello());
  const client = await pending;
  t.after(() => client.close());
  return { client, conn, peer };
}

function frame(conn: PeerConn, type: FrameType, streamId: number, payload: Buffer): void {
  conn.write(encodeFrame({ type, streamId, flags: 0, payload }));
}

function closedWith(client: AgentClient): Promise<Error | undefined> {
  return once(client, 'close').then(([e]) => e as Error | undefined);
}

/** Starts an exec whose answer names streams 2 (stdout), 4 (stderr), 6 (stdin). */
async function execWithStreams(client: AgentClient, conn: PeerConn) {
  const p = client.exec('c1', 'e1', SPEC);
  const req = await conn.readFrame();
  assert.equal((unpack('Request', req.payload) as { call: string }).call, 'exec');
  conn.sendResponse(req.streamId, { started: { pid: 42, io: { stdoutStream: 2, stderrStream: 4, stdinStream: 6 } } });
  return p;
}

test('output flows within the window and credit comes back as it is read', async (t) => {
  const { client, conn } = await connected(t);
  const io = await execWithStreams(client, conn);
  // Data right behind the answer, in the same write: the stream must already exist.
  frame(conn, FrameType.DATA, 2, Buffer.alloc(MAX_DATA_BYTES, 'a'));
  frame(conn, FrameType.DATA, 4, Buffer.from('err'));
  frame(conn, FrameType.CLOSE, 4, Buffer.alloc(0));
  const chunks: Buffer[] = [];
  io.stdout.on('data', (c: Buffer) => chunks.push(c));
  const w = await conn.readFrame();
  assert.equal(w.type, FrameType.WINDOW);
  assert.equal(w.streamId, 2);
  assert.equal(w.payload.readUInt32BE(0), MAX_DATA_BYTES);
  frame(conn, FrameType.CLOSE, 2, Buffer.alloc(0));
  await once(io.stdout, 'end');
  assert.equal(Buffer.concat(chunks).length, MAX_DATA_BYTES);
  assert.equal(client.closed, false);
});

test('credit acknowledges only what was read, also after CLOSE', async (t) => {
  const { client, conn } = await connected(t);
  const io = await execWithStreams(client, conn);
  frame(conn, FrameType.DATA, 2, Buffer.alloc(1000, 'a'));
  frame(conn, FrameType.CLOSE, 2, Buffer.alloc(0));
  const stdout = io.stdout as import('node:stream').Readable;
  await once(stdout, 'readable');
  await sleep(20); // the CLOSE is in too
  assert.equal(stdout.read(400)?.length, 400);
  let w = await conn.readFrame();
  assert.deepEqual([w.type, w.streamId, w.payload.readUInt32BE(0)], [FrameType.WINDOW, 2, 400], 'the unread 600 bytes are not acknowledged');
  assert.equal(stdout.read()?.length, 600);
  w = await conn.readFrame();
  assert.deepEqual([w.type, w.streamId, w.payload.readUInt32BE(0)], [FrameType.WINDOW, 2, 600]);
});

test("with ack 'caller' only acknowledge() gives credit back, and never more than was read", async (t) => {
  const { client, conn } = await connected(t);
  const p = client.exec('c1', 'e1', SPEC, { ack: 'caller' });
  const req = await conn.readFrame();
  conn.sendResponse(req.streamId, { started: { pid: 42, io: { stdoutStream: 2, stderrStream: 4, stdinStream: 6 } } });
  const io = await p;
  frame(conn, FrameType.DATA, 2, Buffer.alloc(1000, 'a'));
  const stdout = io.stdout as import('node:stream').Readable;
  await once(stdout, 'readable');
  assert.equal(stdout.read()?.length, 1000);
  assert.throws(() => io.acknowledge('stdout', 1001), RangeError);
  io.acknowledge('stdout', 700);
  const w = await conn.readFrame();
  assert.deepEqual([w.type, w.streamId, w.payload.readUInt32BE(0)], [FrameType.WINDOW, 2, 700], 'reading alone acknowledged nothing');
  assert.throws(() => io.acknowledge('stdout', 301), RangeError);
  await assert.rejects(client.exec('c1', 'e2', SPEC, { ack: 'sometimes' as 'read' }), (e: unknown) => e instanceof AgentError && e.code === 'AGENT_OPTIONS');
});

test('stdin waits for credit and ends with CLOSE', async (t) => {
  const { client, conn } = await connected(t);
  const io = await execWithStreams(client, conn);
  const big = Buffer.alloc(STREAM_WINDOW_BYTES + 1000, 'z');
  let done = false;
  io.stdin!.write(big, () => (done = true));
  io.stdin!.end();
  let got = 0;
  while (got < STREAM_WINDOW_BYTES) {
    const f = await conn.readFrame();
    assert.equal(f.type, FrameType.DATA);
    assert.equal(f.streamId, 6);
    got += f.payload.length;
  }
  assert.equal(got, STREAM_WINDOW_BYTES, 'no more than the window before credit');
  await sleep(50);
  assert.equal(done, false);
  const credit = Buffer.alloc(4);
  credit.writeUInt32BE(5000, 0);
  frame(conn, FrameType.WINDOW, 6, credit);
  const rest = await conn.readFrame();
  assert.equal(rest.type, FrameType.DATA);
  assert.equal(rest.payload.length, 1000);
  const close = await conn.readFrame();
  assert.equal(close.type, FrameType.CLOSE);
  assert.equal(close.streamId, 6);
});

test('wait resolves from an exit event, and from the answer when already exited', async (t) => {
  const { client, conn } = await connected(t);
  const w = client.wait('c1', 'e1');
  const req = await conn.readFrame();
  conn.sendResponse(req.streamId, { wait: { exited: false } });
  await sleep(20);
  frame(conn, FrameType.EVENT, 0, pack('Event', { exit: { containerId: 'c1', execId: 'e1', status: { exitCode: 137, signal: 'SIGKILL', exitedAtNs: '1700000000000000000' } } }));
  const st = await w;
  assert.equal(st.exitCode, 137);
  assert.equal(st.signal, 'SIGKILL');
  assert.equal(st.exitedAt.getTime(), 1700000000000);

  const w2 = client.wait('c1', '');
  const req2 = await conn.readFrame();
  conn.sendResponse(req2.streamId, { wait: { exited: true, status: { exitCode: 0, exitedAtNs: '1' } } });
  assert.equal((await w2).exitCode, 0);

  const oom = once(client, 'oom');
  frame(conn, FrameType.EVENT, 0, pack('Event', { oom: { containerId: 'c1' } }));
  assert.deepEqual(await oom, ['c1']);
});

test('wait rejects with AGENT_CLOSED when the channel closes', async (t) => {
  const { client, conn } = await connected(t);
  const w = client.wait('c1', 'e1');
  const req = await conn.readFrame();
  conn.sendResponse(req.streamId, { wait: { exited: false } });
  await sleep(20);
  conn.sock.destroy();
  await assert.rejects(w, (e: unknown) => e instanceof AgentError && e.code === 'AGENT_CLOSED');
});

const violations: [string, (conn: PeerConn) => void, RegExp][] = [
  ['DATA beyond the credit', (c) => {
    for (let sent = 0; sent <= STREAM_WINDOW_BYTES; sent += MAX_DATA_BYTES) frame(c, FrameType.DATA, 2, Buffer.alloc(MAX_DATA_BYTES));
  }, /credit/],
  ['DATA larger than a DATA frame may be', (c) => frame(c, FrameType.DATA, 2, Buffer.alloc(MAX_DATA_BYTES + 1)), /exceeds/],
  ['DATA on a stream never named', (c) => frame(c, FrameType.DATA, 200, Buffer.from('x')), /unknown stream/],
  ['DATA on an odd stream', (c) => frame(c, FrameType.DATA, 3, Buffer.from('x')), /call stream/],
  ['DATA on the stdin stream', (c) => frame(c, FrameType.DATA, 6, Buffer.from('x')), /may not write/],
  ['a WINDOW that is not 4 bytes', (c) => frame(c, FrameType.WINDOW, 6, Buffer.from('xx')), /not 4/],
  ['a garbled event', (c) => frame(c, FrameType.EVENT, 0, Buffer.from([0xff, 0xff, 0xff])), /undecodable event/],
  ['an exit event with a bad container id', (c) => frame(c, FrameType.EVENT, 0, pack('Event', { exit: { containerId: '../x', execId: '', status: { exitCode: 1, exitedAtNs: '1' } } })), /container id/],
  ['an exit code out of range', (c) => frame(c, FrameType.EVENT, 0, pack('Event', { exit: { containerId: 'c1', execId: '', status: { exitCode: 100000, exitedAtNs: '1' } } })), /out of range/],
];

for (const [what, send, message] of violations) {
  test(`a guest sending ${what} gets the channel closed`, async (t) => {
    const { client, conn } = await connected(t);
    const io = await execWithStreams(client, conn);
    io.stdout.on('error', () => {});
    const closed = closedWith(client);
    send(conn);
    const err = await closed;
    assert.ok(err instanceof AgentError && err.code === 'AGENT_PROTOCOL', String(err));
    assert.match(err.message, message);
    assert.equal(client.closed, true);
    await assert.rejects(client.guestStats(), (e: unknown) => e instanceof AgentError);
  });
}

test('an answer naming a stream twice or out-of-range values closes the channel', async (t) => {
  const { client, conn } = await connected(t);
  const p = client.exec('c1', 'e1', SPEC);
  const req = await conn.readFrame();
  conn.sendResponse(req.streamId, { started: { pid: 42, io: { stdoutStream: 2, stderrStream: 2 } } });
  await assert.rejects(p, (e: unknown) => e instanceof AgentError && e.code === 'AGENT_PROTOCOL');
  assert.equal(client.closed, true);

  const second = await connected(t);
  const s = second.client.containerStats('c1');
  const r2 = await second.conn.readFrame();
  second.conn.sendResponse(r2.streamId, { containerStats: { cpuUsageNs: '5', memoryUsageBytes: '18446744073709551615', timestampNs: '1' } });
  await assert.rejects(s, (e: unknown) => e instanceof AgentError && e.code === 'AGENT_PROTOCOL' && /out of range/.test(e.message));
});

test('bad arguments are refused before anything is sent', async (t) => {
  const { client } = await connected(t);
  const bad = (e: unknown) => e instanceof AgentError && e.code === 'AGENT_OPTIONS';
  await assert.rejects(client.exec('../etc', 'e1', SPEC), bad);
  await assert.rejects(client.exec('c1', 'bad id!', SPEC), bad);
  await assert.rejects(client.exec('c1', 'e1', { ...SPEC, args: [] }), bad);
  await assert.rejects(client.signal('c1', '', 'TERM'), bad);
  await assert.rejects(client.portForward(70000), bad);
  await assert.rejects(client.resizeTty('c1', '', 0, 80), bad);
  await assert.rejects(client.configureNetwork({ interfaces: [{ mac: 'zz', mtu: 1500, addresses: [] }], routes: [] }), bad);
  await assert.rejects(client.configureNetwork({ interfaces: [{ mac: '02:00:00:00:00:01', setMac: '02:00:00:00:00', mtu: 1500, addresses: [] }], routes: [] }), bad);
});

test('a late answer to a timed-out exec: its streams are drained, not a protocol error', async (t) => {
  const { client, conn } = await connected(t);
  const p = client.exec('c1', 'e1', SPEC, { timeoutMs: 30 });
  const req = await conn.readFrame();
  await assert.rejects(p, (e: unknown) => e instanceof AgentError && e.code === 'AGENT_TIMEOUT');
  conn.sendResponse(req.streamId, { started: { pid: 42, io: { stdoutStream: 2, stderrStream: 4, stdinStream: 6 } } });
  frame(conn, FrameType.DATA, 2, Buffer.from('lost output'));
  const seen: [number, number][] = [];
  while (seen.length < 2) {
    const f = await conn.readFrame();
    seen.push([f.type, f.streamId]);
  }
  assert.deepEqual(seen.sort(), [[FrameType.WINDOW, 2], [FrameType.CLOSE, 6]].sort(), 'stdin closed, stdout credit handed back');
  assert.equal(client.closed, false);
});

test('stream constants match agent.proto', async () => {
  const { protoEnum } = await import('../../../src/agent-protocol/messages.js');
  const { MAX_DATA_BYTES: data, STREAM_BUFFER_BYTES, STREAM_WINDOW_BYTES: win } = await import('../../../src/agent-protocol/framing.js');
  const limits = protoEnum('Limits');
  assert.equal(limits.MAX_DATA_BYTES, data);
  assert.equal(limits.STREAM_WINDOW_BYTES, win);
  assert.equal(limits.STREAM_BUFFER_BYTES, STREAM_BUFFER_BYTES);
});

test('a stdin fed only by pipe() fails quietly when the channel closes: no uncaught error, the pipe stops', async (t) => {
  const { client, conn } = await connected(t);
  const io = await execWithStreams(client, conn);
  const { PassThrough } = await import('node:stream');
  const source = new PassThrough();
  source.pipe(io.stdin!); // pipe()'s listener is the only one on stdin
  const uncaught: unknown[] = [];
  const onUncaught = (e: unknown) => uncaught.push(e);
  process.on('uncaughtException', onUncaught);
  t.after(() => process.off('uncaughtException', onUncaught));
  const closed = closedWith(client);
  conn.sock.destroy();
  await closed;
  source.write('typed after the VM went away\n');
  await sleep(50);
  assert.deepEqual(uncaught, []);
  assert.ok((io.stdin as unknown as { destroyed: boolean }).destroyed);
});
