// The real guest agent binary, run on the host with --listen-unix, against
// the real TypeScript client and against a raw socket that breaks the rules.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createConnection, type Socket } from 'node:net';
import { test } from 'node:test';
import { AgentClient, AgentError, connectAgent, MAX_FRAME_PAYLOAD_BYTES } from '../../../src/agent-protocol/index.js';
import { AGENT_MAGIC, encodeFrame, FrameType, HOST_MAGIC, PROTOCOL_VERSION, type Frame } from '../../../src/agent-protocol/framing.js';
import { openRelay } from '../../../src/agent-protocol/transport.js';
import { execa } from 'execa';
import { AGENT_BIN, startAgentProcess, type AgentProcess } from '../../helpers/agent-process.js';
import { pack, unpack } from '../../helpers/agent-fake-peer.js';

async function agent(t: { after: (fn: () => Promise<void>) => void }): Promise<AgentProcess> {
  const a = await startAgentProcess();
  t.after(() => a.stop());
  return a;
}

/** A hand-driven host side: raw bytes in, frames out. */
class RawHost {
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  ended = false;

  constructor(readonly sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiters.splice(0).forEach((w) => w());
    });
    sock.on('close', () => {
      this.ended = true;
      this.waiters.splice(0).forEach((w) => w());
    });
    sock.on('error', () => {});
  }

  static async open(path: string): Promise<RawHost> {
    const sock = createConnection({ path });
    await once(sock, 'connect');
    return new RawHost(sock);
  }

  async bytes(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      if (this.ended) throw new Error(`connection closed with ${this.buf.length} of ${n} bytes`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  async frame(): Promise<Frame> {
    const h = await this.bytes(12);
    return { type: h.readUInt8(8), streamId: h.readUInt32BE(4), flags: h.readUInt8(9), payload: Buffer.from(await this.bytes(h.readUInt32BE(0))) };
  }

  async handshake(): Promise<void> {
    const nonce = randomBytes(16);
    this.sock.write(Buffer.concat([HOST_MAGIC, encodeFrame({ type: FrameType.HELLO, streamId: 0, flags: 0, payload: pack('Hello', { protocolVersion: PROTOCOL_VERSION, nonce }) })]));
    assert.deepEqual(await this.bytes(8), AGENT_MAGIC);
    assert.deepEqual(await this.bytes(16), nonce);
    const hello = await this.frame();
    assert.equal(hello.type, FrameType.HELLO);
    assert.equal(unpack('Hello', hello.payload).protocolVersion, PROTOCOL_VERSION);
  }

  async closed(): Promise<void> {
    while (!this.ended) await new Promise<void>((r) => this.waiters.push(r));
  }
}

test('version and ping from the real agent', async (t) => {
  const a = await agent(t);
  const c = await connectAgent({ kind: 'unix', path: a.path });
  t.after(() => c.close());
  const v = await c.version();
  assert.equal(v.protocolVersion, PROTOCOL_VERSION);
  assert.match(v.agentVersion, /^\d+\.\d+\.\d+/);
  const { release } = await import('node:os');
  assert.equal(v.kernelRelease, release(), 'on the host the agent reports the host kernel');
  await c.ping();
  const data = randomBytes(MAX_FRAME_PAYLOAD_BYTES - 64);
  assert.ok((await c.echo(data)).equals(data), 'a near-maximum frame goes both ways intact');
  await assert.rejects(c.echo(Buffer.alloc(MAX_FRAME_PAYLOAD_BYTES)), (e: unknown) => e instanceof AgentError && e.code === 'AGENT_OPTIONS');
  await c.ping(); // a refused oversized call leaves the channel open
  const many = await Promise.all(Array.from({ length: 50 }, () => c.version()));
  assert.equal(many.length, 50);
});

test('an oversized frame from the host is refused with GOAWAY, and the agent keeps serving', async (t) => {
  const a = await agent(t);
  const raw = await RawHost.open(a.path);
  t.after(() => raw.sock.destroy());
  await raw.handshake();
  const h = Buffer.alloc(12);
  h.writeUInt32BE(MAX_FRAME_PAYLOAD_BYTES + 1, 0);
  h.writeUInt32BE(1, 4);
  h.writeUInt8(FrameType.REQUEST, 8);
  raw.sock.write(h);
  const goaway = await raw.frame();
  assert.equal(goaway.type, FrameType.GOAWAY);
  assert.match(String(unpack('Error', goaway.payload).message), /exceeds/);
  await raw.closed();

  const c = await connectAgent({ kind: 'unix', path: a.path });
  t.after(() => c.close());
  await c.ping();
  assert.equal(a.child.exitCode, null);
});

test('malformed frames and requests: each refused, the agent survives', async (t) => {
  const a = await agent(t);
  const cases: [string, Buffer][] = [
    ['reserved field', (() => { const f = encodeFrame({ type: FrameType.REQUEST, streamId: 1, flags: 0, payload: Buffer.alloc(0) }); f.writeUInt16BE(9, 10); return f; })()],
    ['unknown type', (() => { const f = encodeFrame({ type: FrameType.REQUEST, streamId: 1, flags: 0, payload: Buffer.alloc(0) }); f.writeUInt8(77, 8); return f; })()],
    ['even stream id', encodeFrame({ type: FrameType.REQUEST, streamId: 2, flags: 0, payload: pack('Request', { ping: {} }) })],
    ['a response from the host', encodeFrame({ type: FrameType.RESPONSE, streamId: 1, flags: 0, payload: Buffer.alloc(0) })],
  ];
  for (const [what, bytes] of cases) {
    const raw = await RawHost.open(a.path);
    await raw.handshake();
    raw.sock.write(bytes);
    const f = await raw.frame();
    assert.equal(f.type, FrameType.GOAWAY, what);
    await raw.closed();
  }
  // Undecodable payload and an unknown call get error answers; the session stays.
  const raw = await RawHost.open(a.path);
  t.after(() => raw.sock.destroy());
  await raw.handshake();
  raw.sock.write(encodeFrame({ type: FrameType.REQUEST, streamId: 1, flags: 0, payload: Buffer.from([0xff, 0xff, 0xff]) }));
  const bad = unpack('Response', (await raw.frame()).payload) as { error: { errnum: number } };
  assert.equal(bad.error.errnum, 74 /* EBADMSG */);
  // Field 99 is a call this agent does not know (a newer host).
  raw.sock.write(encodeFrame({ type: FrameType.REQUEST, streamId: 3, flags: 0, payload: Buffer.from([0x9a, 0x06, 0x00]) }));
  const unknown = await raw.frame();
  assert.equal(unknown.streamId, 3);
  assert.equal((unpack('Response', unknown.payload) as { error: { errnum: number } }).error.errnum, 38 /* ENOSYS */);
  raw.sock.write(encodeFrame({ type: FrameType.REQUEST, streamId: 5, flags: 0, payload: pack('Request', { ping: { data: Buffer.from('hi') } }) }));
  const pong = await raw.frame();
  assert.equal(String((unpack('Response', pong.payload) as { ping: { data: Buffer } }).ping.data), 'hi');
  assert.equal(a.child.exitCode, null);
});

test('garbage before the magic is skipped; a second HELLO starts a new session', async (t) => {
  const a = await agent(t);
  const raw = await RawHost.open(a.path);
  t.after(() => raw.sock.destroy());
  raw.sock.write(randomBytes(3000).map((b) => (b === 0xff ? 0 : b)));
  await raw.handshake();
  await raw.handshake();
  raw.sock.write(encodeFrame({ type: FrameType.REQUEST, streamId: 1, flags: 0, payload: pack('Request', { version: {} }) }));
  assert.equal((await raw.frame()).type, FrameType.RESPONSE);
});

test('reconnect works, and a new connection replaces the old one', async (t) => {
  const a = await agent(t);
  for (let i = 0; i < 3; i++) {
    const c = await connectAgent({ kind: 'unix', path: a.path });
    await c.ping();
    c.close();
  }
  const first = await connectAgent({ kind: 'unix', path: a.path });
  const firstClosed = new Promise<Error | undefined>((r) => first.once('close', r));
  const second = await connectAgent({ kind: 'unix', path: a.path });
  t.after(() => second.close());
  const why = await firstClosed;
  assert.ok(why instanceof AgentError && /replaced by a newer connection/.test(why.message), String(why));
  await second.ping();
});

test('shutdown is acknowledged, then the agent (not PID 1) exits', async (t) => {
  const a = await agent(t);
  const c = await connectAgent({ kind: 'unix', path: a.path });
  t.after(() => c.close());
  await c.shutdown();
  assert.equal(await a.exited(), 0);
});

test('the vsock relay carries the protocol (test-only --unix mode)', async (t) => {
  const a = await agent(t);
  const stream = openRelay(['--unix', a.path], `relay:${a.path}`);
  const c = new AgentClient(stream, `relay:${a.path}`);
  t.after(() => c.close());
  await c.start(5000);
  assert.equal((await c.version()).protocolVersion, PROTOCOL_VERSION);
  const data = randomBytes(512 * 1024);
  assert.ok((await c.echo(data)).equals(data));
  await c.shutdown();
  await new Promise<void>((r) => (c.closed ? r() : c.once('close', () => r())));
  assert.equal(await a.exited(), 0);
});

test('the relay fails with one line and a non-zero code when it cannot connect', async (t) => {
  const stream = openRelay(['--unix', '/nonexistent/agent.sock'], 'relay:nowhere');
  const c = new AgentClient(stream, 'relay:nowhere');
  t.after(() => c.close());
  await assert.rejects(c.start(5000), (e: unknown) => e instanceof AgentError && /connect --unix:\/nonexistent\/agent.sock: No such file/.test(e.message));
});

test('the spare mode takes only the cgroup name the agent makes: anything else exits 2 with one line, before any cgroup is touched', async () => {
  for (const bad of ['../x', '_spare-', '_spare-1/..', '_spare-1x', 'frakti', `_spare-${'9'.repeat(40)}`]) {
    const r = await execa(AGENT_BIN, ['--spare', bad], { reject: false, timeout: 10_000 });
    assert.equal(r.exitCode, 2, `--spare ${bad}`);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /is not a spare's cgroup/);
  }
});
