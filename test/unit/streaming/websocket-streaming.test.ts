// The streaming server's WebSocket side: exec, attach and port forward
// through @kubernetes/client-node's Exec, Attach and PortForward (a client
// nobody here wrote), and the framing itself (base64, negotiation, bounds)
// through a bare `ws` client, against a scripted backend. The same against
// a real pod VM is test/integration/e2e/websocket-streaming.test.ts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import type { WebSocket } from 'ws';
import { ResizeDecoder, parseResizeEvent } from '../../../src/streaming/resize-events.js';
import { Attach, PortForward, channelClient as wsConnect, closed, collect, exitCodeOf, k8sExec, kubeConfigFor, onChannel, terminalOutput, toStreamingUrl } from '../../helpers/k8s-websocket.js';
import { BIG_OUTPUT_BYTES, scriptedServer } from '../../helpers/streaming-backend.js';

const ctl = await scriptedServer();
const { server, seen } = ctl;
after(() => ctl.stop());
const execReq = ctl.execUrl;

test('resize events: split anywhere, either case of names, bad ones skipped, over-long ones refused', () => {
  const d = new ResizeDecoder();
  assert.deepEqual(d.push('{"Width":120,"Height":40}\n{"wid'), ['{"Width":120,"Height":40}']);
  assert.deepEqual(d.push('th":80,"height":24}{"width":"}{","height":1}'), ['{"width":80,"height":24}', '{"width":"}{","height":1}']);
  assert.deepEqual(parseResizeEvent('{"width":80,"height":24}'), { cols: 80, rows: 24 });
  assert.deepEqual(parseResizeEvent('{"Width":120,"Height":40}'), { cols: 120, rows: 40 });
  assert.match(String(parseResizeEvent('{"width":"}{","height":1}')), /integers/);
  assert.match(String(parseResizeEvent('{"width":70000,"height":1}')), /integers/);
  assert.throws(() => d.push('{"width":' + ' '.repeat(5000)), /longer than 4096/);
  // Complete in one piece, and still too long.
  assert.throws(() => new ResizeDecoder().push('{"width":1,"height":1,"x":"' + 'a'.repeat(5000) + '"}'), /longer than 4096/);
});

test('a flood of resize events costs one pending size: the last one is applied, and the session goes on', async () => {
  ctl.exitCode = 0;
  seen.resizes = [];
  const { ws, got } = await wsConnect(execReq({ tty: true, stderr: false }), ['v5.channel.k8s.io']);
  const flood = Array.from({ length: 2000 }, (_, i) => JSON.stringify({ Width: i + 1, Height: 7 })).join('') + '{"Width":"x"}';
  ws.send(Buffer.concat([Buffer.from([4]), Buffer.from(flood)]));
  ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('still here')]));
  for (let i = 0; i < 200 && !onChannel(got, 1).includes('STILL HERE'); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(onChannel(got, 1).includes('STILL HERE'), 'stdin still flows after the flood');
  assert.deepEqual(seen.resizes, [[2000, 7]]);
  ws.close();
});

test('exec through client-node (v5): stdin in and its end by the close signal, stdout and stderr out, the exit code in the status', async () => {
  ctl.exitCode = 3;
  const input = 'hello websocket '.repeat(20_000);
  const r = await k8sExec(execReq(), ['sh'], { stdin: input });
  assert.match(r.asked[0]!, /^\/api\/v1\/namespaces\/default\/pods\/pod\/exec\?.*command=sh/);
  assert.equal(r.stdout, input.toUpperCase());
  assert.equal(r.stderr, 'bye\n');
  assert.equal(r.status.status, 'Failure');
  assert.equal(r.status.reason, 'NonZeroExitCode');
  assert.equal(exitCodeOf(r.status), 3);
});

test('exec through client-node with a terminal: its size, then a resize, reach the process', async () => {
  ctl.exitCode = 0;
  seen.resizes = [];
  const stdout = terminalOutput(120, 40);
  const stdin = new PassThrough();
  const running = k8sExec(execReq({ tty: true, stderr: false }), ['sh'], { stdin, tty: true, stdout });
  for (let i = 0; i < 100 && seen.resizes.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  Object.assign(stdout, { columns: 80, rows: 24 });
  stdout.emit('resize');
  for (let i = 0; i < 100 && seen.resizes.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  stdin.end('x');
  const r = await running;
  assert.equal(r.stdout, 'X');
  assert.equal(exitCodeOf(r.status), 0);
  assert.deepEqual(seen.resizes, [[120, 40], [80, 24]]);
});

test('exec output of megabytes arrives whole, in messages of at most 32 KiB, after an empty first message', async () => {
  ctl.exitCode = 0;
  const { ws, got, protocol } = await wsConnect(execReq({ cmd: ['big'], stdin: false }), ['v4.channel.k8s.io']);
  assert.equal(protocol, 'v4.channel.k8s.io');
  assert.equal(await closed(ws), 1000);
  assert.deepEqual(got[0], { channel: 1, data: Buffer.alloc(0) }, 'the session is announced on stdout');
  assert.equal(onChannel(got, 1).length, BIG_OUTPUT_BYTES);
  assert.ok(got.every((m) => m.data.length <= 32 * 1024));
  assert.equal(onChannel(got, 2), 'bye\n');
  assert.equal(JSON.parse(onChannel(got, 3)).status, 'Success');
  assert.equal(got.at(-1)!.channel, 3, 'the status comes last');
});

test('base64 protocols: text messages with the channel as a digit; before v4 a failure is told as text', async () => {
  ctl.exitCode = 0;
  seen.killed = false;
  const b64 = await wsConnect(execReq({ stderr: false }), ['v4.base64.channel.k8s.io']);
  assert.equal(b64.protocol, 'v4.base64.channel.k8s.io');
  b64.ws.send('0' + Buffer.from('abc').toString('base64'));
  b64.ws.send('0not base64!'); // dropped
  b64.ws.send('0' + Buffer.from('def').toString('base64')); // the garbage in between reached nobody
  for (let i = 0; i < 100 && onChannel(b64.got, 1).length < 6; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(onChannel(b64.got, 1), 'ABCDEF');
  assert.equal(b64.raw[0]!.toString(), '1', 'an empty message on stdout: the digit alone');
  assert.match(b64.raw[1]!.toString(), /^1[A-Za-z0-9+/=]+$/);
  b64.ws.close(); // v4 has no close signal: the client ends the session by closing
  for (let i = 0; i < 100 && !seen.killed; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(seen.killed, true);

  const v1 = await wsConnect(execReq({ cmd: ['fail'], stdin: false, stderr: false }), ['base64.channel.k8s.io']);
  await closed(v1.ws);
  assert.equal(onChannel(v1.got, 3), 'no such container');
});

test('negotiation: the client\'s first protocol that is served; none named is binary channel.k8s.io; none served is 403', async () => {
  const pick = await wsConnect(execReq({ stdin: false }), ['bearer.example', 'v4.channel.k8s.io', 'v5.channel.k8s.io']);
  assert.equal(pick.protocol, 'v4.channel.k8s.io');
  await closed(pick.ws);
  ctl.exitCode = 0;
  const bare = await wsConnect(execReq({ stdin: false }), []);
  assert.equal(bare.protocol, '');
  await closed(bare.ws);
  assert.equal(onChannel(bare.got, 3), '', 'pre-v4: nothing on the error channel on success');
  assert.equal(onChannel(bare.got, 2), 'bye\n');
  await assert.rejects(wsConnect(execReq(), ['v9.channel.k8s.io']), /refused: 403/);
  // Port forward is served as kubelet serves it: v4 only, base64 or not.
  const pf = await wsConnect(server.urlFor({ kind: 'portforward', podId: 'p1', ports: [8080] }), ['v5.channel.k8s.io', 'v4.channel.k8s.io']);
  assert.equal(pf.protocol, 'v4.channel.k8s.io');
  pf.ws.close();
  await assert.rejects(wsConnect(server.urlFor({ kind: 'portforward', podId: 'p1', ports: [] }), ['v4.channel.k8s.io']), /refused: 400/);
});

test('a message past the size bound closes its connection (1009), a client that goes away kills its exec, and the server keeps serving', async () => {
  const big = await wsConnect(execReq(), ['v5.channel.k8s.io']);
  big.ws.send(Buffer.alloc(2 * 1024 * 1024, 0));
  assert.equal(await closed(big.ws), 1009);
  seen.killed = false;
  const gone = await wsConnect(execReq(), ['v5.channel.k8s.io']);
  gone.ws.terminate();
  for (let i = 0; i < 100 && !seen.killed; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(seen.killed, true);
  ctl.exitCode = 0;
  const r = await k8sExec(execReq({ stdin: false }), ['true']);
  assert.equal(exitCodeOf(r.status), 0);
});

test('input the process does not take stops the server reading: the client holds the rest', async () => {
  // 'deaf' never reads its stdin; 32 MiB of it arrive.
  const { ws } = await wsConnect(execReq({ cmd: ['deaf'] }), ['v5.channel.k8s.io']);
  const piece = Buffer.alloc(1024 * 1024, 0x61); // the largest message taken
  piece[0] = 0;
  for (let i = 0; i < 32; i++) ws.send(piece);
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(ws.bufferedAmount > 8 * 1024 * 1024, `the server took ${32 * 1024 * 1024 - ws.bufferedAmount} bytes`);
  // The client's FIN waits behind the bytes the server does not read (as with kubelet): this session ends with the server.
  ws.terminate();
});

test('attach through client-node: output, typed input, and the end when the container exits', async () => {
  const url = server.urlFor({ kind: 'attach', containerId: 'c1', tty: false, stdin: true, stdout: true, stderr: true });
  const wsi = toStreamingUrl(url);
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const stdin = new PassThrough();
  const out = collect(stdout);
  const ws = (await new Attach(kubeConfigFor('http://apiserver.invalid'), wsi).attach('default', 'pod', 'ctr', stdout, stderr, stdin, false)) as unknown as WebSocket;
  assert.match(wsi.asked[0]!, /\/pods\/pod\/attach\?/);
  stdin.write('typed\n');
  for (let i = 0; i < 100 && !out().includes('TYPED'); i++) await new Promise((r) => setTimeout(r, 10));
  stdin.end(); // v5: the close signal ends stdin, and the scripted container exits
  await closed(ws);
  assert.equal(out(), 'attached\nTYPED\n');

  seen.detached = false;
  const left = await wsConnect(server.urlFor({ kind: 'attach', containerId: 'c1', tty: false, stdin: false, stdout: true, stderr: false }), ['v5.channel.k8s.io']);
  left.ws.close();
  for (let i = 0; i < 100 && !seen.detached; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(seen.detached, true, 'a client that leaves detaches');
});

test('port forward through client-node: bytes both ways behind the port prefix', async () => {
  const url = server.urlFor({ kind: 'portforward', podId: 'p1', ports: [8080] });
  const output = new PassThrough();
  const err = new PassThrough();
  const input = new PassThrough();
  const got = collect(output);
  const errText = collect(err);
  const pf = new PortForward(kubeConfigFor('http://apiserver.invalid'), true, toStreamingUrl(url));
  const ws = (await pf.portForward('default', 'pod', [8080], output, err, input)) as unknown as WebSocket;
  const payload = 'p'.repeat(300_000);
  input.write(payload);
  for (let i = 0; i < 200 && got().length < payload.length; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(got(), payload);
  input.end(); // v4: the client closes the WebSocket
  await closed(ws);
  assert.equal(errText(), '');
});

test('port forward over WebSocket: two ports on channels 0..3, each announced with its port, a refused one told on its error channel', async () => {
  const { ws, got } = await wsConnect(server.urlFor({ kind: 'portforward', podId: 'p1', ports: [8080, 9] }), ['v4.channel.k8s.io']);
  for (let i = 0; i < 100 && !onChannel(got, 3).includes('refused'); i++) await new Promise((r) => setTimeout(r, 10));
  const first = (n: number) => got.find((m) => m.channel === n)!.data;
  assert.deepEqual([...first(0)], [0x90, 0x1f]);
  assert.deepEqual([...first(1)], [0x90, 0x1f]);
  assert.deepEqual([...first(2)], [9, 0]);
  assert.deepEqual([...first(3)], [9, 0]);
  assert.match(onChannel(got, 3).slice(2), /^error forwarding port 9 to pod p1: connection refused on port 9$/);
  ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('over ws')]));
  for (let i = 0; i < 100 && !onChannel(got, 0).includes('over ws'); i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(onChannel(got, 0).slice(2), 'over ws');
  ws.close();
  await closed(ws);
});
