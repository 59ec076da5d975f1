// QmpClient against a fake QMP peer: each misbehaviour ends in a clean error,
// never a hang or an unbounded buffer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QmpClient } from '../../../src/vmm/qmp-client.js';

const GREETING = JSON.stringify({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: '' }, capabilities: [] } });

type Handler = (sock: Socket, msg: { execute: string; id: string; arguments?: unknown }) => void;

/** A fake QEMU: greets, accepts qmp_capabilities, hands other commands to `onCommand`. */
async function fakePeer(t: { after(fn: () => unknown): void }, onCommand: Handler, opts: { greeting?: string } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-qmp-'));
  const path = join(dir, 'qmp.sock');
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.write((opts.greeting ?? GREETING) + '\n');
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if (msg.execute === 'qmp_capabilities') sock.write(JSON.stringify({ return: {}, id: msg.id }) + '\n');
        else onCommand(sock, msg);
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  });
  return path;
}

test('commands are matched to replies by id, events delivered in between', async (t) => {
  const path = await fakePeer(t, (sock, msg) => {
    if (msg.execute === 'slow') {
      setTimeout(() => sock.write(JSON.stringify({ return: 'slow-done', id: msg.id }) + '\n'), 50);
    } else {
      sock.write(JSON.stringify({ event: 'RESUME', timestamp: { seconds: 1, microseconds: 2 } }) + '\n');
      sock.write(JSON.stringify({ return: { status: 'running' }, id: msg.id }) + '\n');
    }
  });
  const qmp = await QmpClient.connect(path);
  t.after(() => qmp.close());
  assert.equal(qmp.greeting?.version.qemu.major, 7);
  const events: string[] = [];
  qmp.on('event', (e) => events.push(e.event));
  const slow = qmp.execute('slow');
  const fast = await qmp.execute('query-status');
  assert.deepEqual(fast, { status: 'running' });
  assert.equal(await slow, 'slow-done');
  assert.deepEqual(events, ['RESUME']);
});

test('an error reply raises its class and description', async (t) => {
  const path = await fakePeer(t, (sock, msg) => {
    sock.write(JSON.stringify({ error: { class: 'CommandNotFound', desc: `The command ${msg.execute} has not been found` }, id: msg.id }) + '\n');
  });
  const qmp = await QmpClient.connect(path);
  t.after(() => qmp.close());
  await assert.rejects(qmp.execute('nope'), (err: Error & { code?: string; errorClass?: string }) => {
    assert.equal(err.code, 'QMP_COMMAND');
    assert.equal(err.errorClass, 'CommandNotFound');
    assert.match(err.message, /nope.*has not been found/);
    return true;
  });
  // The connection stays usable after an error reply.
  await assert.rejects(qmp.execute('again'), /CommandNotFound/);
});

test('the peer hanging up mid-command fails the command and closes', async (t) => {
  const path = await fakePeer(t, (sock) => sock.destroy());
  const qmp = await QmpClient.connect(path);
  const closed = new Promise<Error | undefined>((r) => qmp.on('close', r));
  await assert.rejects(qmp.execute('query-status'), (err: Error & { code?: string }) => err.code === 'QMP_CLOSED');
  assert.ok(await closed);
  await assert.rejects(qmp.execute('query-status'), (err: Error & { code?: string }) => err.code === 'QMP_CLOSED');
});

test('a line of garbage is a protocol error', async (t) => {
  const path = await fakePeer(t, (sock) => sock.write('this is not json\n'));
  const qmp = await QmpClient.connect(path);
  await assert.rejects(qmp.execute('query-status'), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'QMP_PROTOCOL');
    assert.match(err.message, /not JSON/);
    return true;
  });
});

test('a line over the limit is refused without buffering it whole', async (t) => {
  const path = await fakePeer(t, (sock) => {
    // 4 MiB without a newline, in pieces, never terminated.
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    for (let i = 0; i < 64; i++) sock.write(chunk);
  });
  const qmp = await QmpClient.connect(path, { maxLineBytes: 1024 * 1024 });
  await assert.rejects(qmp.execute('query-status'), /longer than 1048576 bytes/);
});

test('a bad greeting is refused', async (t) => {
  const path = await fakePeer(t, () => {}, { greeting: JSON.stringify({ hello: 1 }) });
  await assert.rejects(QmpClient.connect(path), /not a QMP greeting/);
});

test('a peer that never answers times out the command', async (t) => {
  const path = await fakePeer(t, () => {});
  const qmp = await QmpClient.connect(path);
  t.after(() => qmp.close());
  await assert.rejects(qmp.execute('query-status', undefined, { timeoutMs: 100 }), (err: Error & { code?: string }) => err.code === 'QMP_TIMEOUT');
});

test('a peer that never greets times out the connect', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-qmp-'));
  const path = join(dir, 'qmp.sock');
  const sockets: Socket[] = [];
  const server = createServer((s) => sockets.push(s));
  await new Promise<void>((r) => server.listen(path, r));
  t.after(async () => {
    sockets.forEach((s) => s.destroy());
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  });
  await assert.rejects(QmpClient.connect(path, { timeoutMs: 150 }), (err: Error & { code?: string }) => err.code === 'QMP_TIMEOUT');
});

test('connecting to a missing socket fails cleanly', async () => {
  await assert.rejects(QmpClient.connect('/nonexistent/qmp.sock', { timeoutMs: 500 }), (err: Error & { code?: string }) => err.code === 'QMP_CLOSED');
});
