// The streaming server against an independent SPDY client (spdy-transport),
// with a scripted backend for the processes and a real TCP server behind
// the port forward. The same paths against a real pod VM are in
// test/integration/e2e/cri-pod.test.ts and, over WebSocket,
// test/integration/e2e/websocket-streaming.test.ts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { parseStreamAddress } from '../../../src/streaming/streaming-server.js';
import { statusJson } from '../../../src/streaming/remote-command.js';
import { SPDY3_DICTIONARY } from '../../../src/streaming/spdy-dictionary.js';
import { decodeHeaderBlock, encodeHeaderBlock, SpdyProtocolError } from '../../../src/streaming/spdy-frames.js';
import { StreamRequests } from '../../../src/streaming/stream-requests.js';
import { readAll, spdyConnect, upgradeRequest } from '../../helpers/spdy-client.js';
import { BIG_OUTPUT_BYTES, scriptedServer } from '../../helpers/streaming-backend.js';

const ctl = await scriptedServer();
const { server, seen } = ctl;
after(() => ctl.stop());
const execReq = ctl.execUrl;

test('the SPDY/3 dictionary is the one of the spec (1423 bytes, pinned digest)', () => {
  assert.equal(SPDY3_DICTIONARY.length, 1423);
  assert.equal(createHash('sha256').update(SPDY3_DICTIONARY).digest('hex'), '51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02');
});

test('header blocks round-trip; truncated or oversized ones are refused', () => {
  const block = encodeHeaderBlock([['streamType', 'stdout'], ['Port', '80']]);
  assert.deepEqual([...decodeHeaderBlock(block, 8)], [['streamtype', ['stdout']], ['port', ['80']]]);
  assert.throws(() => decodeHeaderBlock(block.subarray(0, block.length - 1), 8), SpdyProtocolError);
  assert.throws(() => decodeHeaderBlock(block, 1), /2 pairs, more than 1/);
  assert.throws(() => decodeHeaderBlock(Buffer.concat([block, Buffer.from([0])]), 8), /after the last pair/);
});

test('stream addresses must be IP:PORT', () => {
  assert.deepEqual(parseStreamAddress('[::1]:10010'), { host: '::1', port: 10010 });
  for (const bad of ['localhost:1', '127.0.0.1', '1.2.3.4:70000', ':80']) assert.throws(() => parseStreamAddress(bad), /IP:PORT/, bad);
});

test('a token works once and expires', () => {
  let now = 0;
  const r = new StreamRequests(1000, 2, () => now);
  const t = r.insert({ kind: 'portforward', podId: 'p', ports: [] });
  assert.equal(r.consume(t)?.kind, 'portforward');
  assert.equal(r.consume(t), undefined);
  const old = r.insert({ kind: 'portforward', podId: 'p', ports: [] });
  r.insert({ kind: 'portforward', podId: 'p', ports: [] });
  assert.throws(() => r.insert({ kind: 'portforward', podId: 'p', ports: [] }), /already waiting/);
  now = 1000;
  assert.equal(r.consume(old), undefined, 'expired');
  r.insert({ kind: 'portforward', podId: 'p', ports: [] }); // the expired ones made room
});

test('exec v4: stdin in, stdout and stderr out, the exit code in the status', async () => {
  ctl.exitCode = 3;
  const { client, protocol } = await spdyConnect(execReq(), ['v4.channel.k8s.io', 'v3.channel.k8s.io']);
  assert.equal(protocol, 'v4.channel.k8s.io');
  const error = await client.open({ streamType: 'error' });
  const stdin = await client.open({ streamType: 'stdin' });
  const stdout = await client.open({ streamType: 'stdout' });
  const stderr = await client.open({ streamType: 'stderr' });
  const [out, err, status] = [readAll(stdout), readAll(stderr), readAll(error)];
  // Past the 64 KiB window the client keeps, so our WINDOW_UPDATEs must flow.
  const input = 'hello spdy '.repeat(20_000);
  stdin.end(input);
  assert.equal(await out, input.toUpperCase());
  assert.equal(await err, 'bye\n');
  assert.deepEqual(JSON.parse(await status), JSON.parse(statusJson({ exitCode: 3 })));
  assert.equal(JSON.parse(await status).details.causes[0].message, '3');
  client.close();
});

test('exec output of megabytes arrives whole, and success is a Success status', async () => {
  ctl.exitCode = 0;
  const { client } = await spdyConnect(execReq({ cmd: ['big'], stdin: false }), ['v4.channel.k8s.io']);
  const error = await client.open({ streamType: 'error' });
  const stdout = await client.open({ streamType: 'stdout' });
  const stderr = await client.open({ streamType: 'stderr' });
  const [out, err, status] = await Promise.all([readAll(stdout), readAll(stderr), readAll(error)]);
  assert.equal(out.length, BIG_OUTPUT_BYTES);
  assert.equal(err, 'bye\n');
  assert.equal(JSON.parse(status).status, 'Success');
});

test('exec with a terminal takes resize events; v2 reports failures as text', async () => {
  ctl.exitCode = 0;
  seen.resizes = [];
  const { client } = await spdyConnect(execReq({ tty: true, stderr: false }), ['v4.channel.k8s.io']);
  const error = await client.open({ streamType: 'error' });
  const stdin = await client.open({ streamType: 'stdin' });
  const stdout = await client.open({ streamType: 'stdout' });
  const resize = await client.open({ streamType: 'resize' });
  resize.write('{"Width":120,"Height":40}\n{"Width":80,');
  resize.write('"Height":24}\n');
  const out = readAll(stdout);
  await new Promise((r) => setTimeout(r, 200));
  stdin.end('x');
  assert.equal(await out, 'X');
  await readAll(error);
  assert.deepEqual(seen.resizes, [[120, 40], [80, 24]]);

  const v2 = await spdyConnect(execReq({ cmd: ['fail'], stdin: false, stderr: false }), ['v2.channel.k8s.io']);
  assert.equal(v2.protocol, 'v2.channel.k8s.io');
  const e2 = await v2.client.open({ streamType: 'error' });
  await v2.client.open({ streamType: 'stdout' });
  assert.equal(await readAll(e2), 'no such container');
});

test('a client that goes away kills its exec', async () => {
  seen.killed = false;
  const { client } = await spdyConnect(execReq(), ['v4.channel.k8s.io']);
  for (const t of ['error', 'stdin', 'stdout', 'stderr']) await client.open({ streamType: t });
  client.close();
  for (let i = 0; i < 50 && !seen.killed; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(seen.killed, true);
});

test('a client that goes away while its process is starting still gets it killed', async () => {
  seen.killed = false;
  const { client } = await spdyConnect(execReq({ cmd: ['slow'] }), ['v4.channel.k8s.io']);
  for (const t of ['error', 'stdin', 'stdout', 'stderr']) await client.open({ streamType: t });
  client.close();
  for (let i = 0; i < 50 && !seen.killed; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(seen.killed, true);
});

test('bad upgrades get clear HTTP errors', async () => {
  const spdy: Array<[string, string]> = [['Connection', 'Upgrade'], ['Upgrade', 'SPDY/3.1']];
  const noProto = await upgradeRequest(execReq(), spdy);
  assert.equal(noProto.status, 400);
  assert.match(noProto.body, /x-stream-protocol-version is required/);
  const wrong = await upgradeRequest(execReq(), [...spdy, ['X-Stream-Protocol-Version', 'v9.channel.k8s.io']]);
  assert.equal(wrong.status, 403);
  assert.ok(wrong.headers['x-accepted-stream-protocol-versions']?.includes('v4.channel.k8s.io'));
  const h2c = await upgradeRequest(execReq(), [['Connection', 'Upgrade'], ['Upgrade', 'h2c'], ['X-Stream-Protocol-Version', 'v4.channel.k8s.io']]);
  assert.equal(h2c.status, 400);
  assert.match(h2c.body, /cannot upgrade to 'h2c'; use SPDY\/3\.1 or websocket/);
  // A WebSocket handshake that is not one (a POST, no key) is refused by the WebSocket library.
  const ws = await upgradeRequest(execReq(), [['Connection', 'Upgrade'], ['Upgrade', 'websocket'], ['X-Stream-Protocol-Version', 'v4.channel.k8s.io']]);
  assert.equal(ws.status, 405);
  // Each of those used its token up.
  const url = execReq();
  await upgradeRequest(url, spdy);
  const again = await upgradeRequest(url, [...spdy, ['X-Stream-Protocol-Version', 'v4.channel.k8s.io']]);
  assert.equal(again.status, 404);
  assert.match(again.body, /unknown or expired exec token/);
  const plain = await fetch(execReq());
  assert.equal(plain.status, 400);
});

test('a client that never opens its streams is cut after the creation timeout', async () => {
  const { client } = await spdyConnect(execReq(), ['v4.channel.k8s.io']);
  await client.open({ streamType: 'error' });
  const t0 = Date.now();
  await client.closed;
  assert.ok(Date.now() - t0 >= 1500, 'closed too early');
});

test('port forward: two connections at once to a real TCP server, a refused port told on the error stream', async () => {
  const url = server.urlFor({ kind: 'portforward', podId: 'p1', ports: [8080] });
  const { client, protocol } = await spdyConnect(url, ['portforward.k8s.io']);
  assert.equal(protocol, 'portforward.k8s.io');
  const one = async (req: string, port: string) => {
    const error = await client.open({ streamType: 'error', port, requestID: req });
    const data = await client.open({ streamType: 'data', port, requestID: req });
    return { error, data };
  };
  const a = await one('0', '8080');
  const b = await one('1', '8080');
  const aOut = readAll(a.data);
  const bOut = readAll(b.data);
  const payload = Buffer.alloc(300_000, 'p').toString();
  a.data.end(payload);
  b.data.end('second');
  assert.equal(await aOut, payload);
  assert.equal(await bOut, 'second');
  assert.equal(await readAll(a.error), '');

  const bad = await one('2', '9');
  const msg = JSON.parse(await readAll(bad.error));
  assert.match(msg.message, /error forwarding port 9 to pod p1: .*connection refused on port 9/);
  client.close();
});

test('a frame the server cannot take ends the connection with GOAWAY PROTOCOL_ERROR', async () => {
  const r = await upgradeRequest(execReq(), [['Connection', 'Upgrade'], ['Upgrade', 'SPDY/3.1'], ['X-Stream-Protocol-Version', 'v4.channel.k8s.io']]);
  assert.equal(r.status, 101);
  const got: Buffer[] = [...(r.rest.length ? [r.rest] : [])];
  r.socket.on('data', (b: Buffer) => got.push(b));
  r.socket.resume();
  const closed = new Promise((resolve) => r.socket.once('close', resolve));
  // A SYN_STREAM of SPDY version 2.
  r.socket.write(Buffer.from([0x80, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0a, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
  await closed;
  const all = Buffer.concat(got);
  // GOAWAY: control, version 3, type 7, length 8, last good stream 0, status 1.
  assert.deepEqual([...all.subarray(-16)], [0x80, 0x03, 0x00, 0x07, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
});

test('random control frames never take the server down', async () => {
  // A deterministic generator: the same frames on every run.
  let seed = 42;
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  for (let round = 0; round < 40; round++) {
    const r = await upgradeRequest(execReq(), [['Connection', 'Upgrade'], ['Upgrade', 'SPDY/3.1'], ['X-Stream-Protocol-Version', 'v4.channel.k8s.io']]);
    assert.equal(r.status, 101);
    r.socket.resume();
    const closed = new Promise((resolve) => r.socket.once('close', resolve));
    for (let f = 0; f < 5; f++) {
      const payload = Buffer.from(Array.from({ length: rand(40) }, () => rand(256)));
      const head = Buffer.from([0x80, 0x03, 0x00, 1 + rand(10), rand(2), 0, 0, payload.length]);
      r.socket.write(Buffer.concat([head, payload]));
    }
    r.socket.end();
    await closed;
  }
  // Still serving.
  ctl.exitCode = 0;
  const { client } = await spdyConnect(execReq({ stdin: false }), ['v4.channel.k8s.io']);
  const [error] = await Promise.all(['error', 'stdout', 'stderr'].map((t) => client.open({ streamType: t })));
  assert.equal(JSON.parse(await readAll(error!)).status, 'Success');
  client.close();
});

test('a malformed request target is answered 404 and the server keeps serving', async () => {
  const { port } = new URL(server.baseUrl);
  const ask = async (upgrade: boolean) => {
    const sock = connect({ host: '127.0.0.1', port: Number(port) });
    const upgradeHeaders = upgrade ? 'Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n' : '';
    sock.write(`GET //[ HTTP/1.1\r\nHost: x\r\n${upgradeHeaders}\r\n`);
    const answer = await new Promise<string>((resolve) => {
      let text = '';
      sock.on('data', (b: Buffer) => (text += b.toString()));
      sock.on('close', () => resolve(text));
      sock.on('error', () => resolve(text));
    });
    sock.destroy();
    return answer;
  };
  assert.match(await ask(false), /^HTTP\/1\.1 404 /);
  assert.match(await ask(true), /^HTTP\/1\.1 404 /);
  ctl.exitCode = 0;
  const { client } = await spdyConnect(execReq({ stdin: false }), ['v4.channel.k8s.io']);
  const [error] = await Promise.all(['error', 'stdout', 'stderr'].map((t) => client.open({ streamType: t })));
  assert.equal(JSON.parse(await readAll(error!)).status, 'Success');
  client.close();
});
