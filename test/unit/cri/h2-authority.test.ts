// The authority filter in front of the CRI server: HPACK against the RFC's
// own examples and real encoders (nghttp2 in Node's HTTP/2 client), the
// frame filter fed byte by byte, and the CRI server answering grpc-js
// clients whatever :authority they send.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { createServer, connect, type Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HpackDecoder, HpackError, huffmanDecode, huffmanEncode, encodeLiterals } from '../../../src/cri/hpack.js';
import { AuthorityFilter, authorityAccepted, filterAuthority, REPLACEMENT_AUTHORITY } from '../../../src/cri/h2-authority.js';
import { CriServer } from '../../../src/cri/server.js';
import { criClient } from '../../helpers/cri-client.js';

const LIMITS = { maxTableBytes: 4096, maxHeaderListBytes: 16 * 1024 };
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const pairs = (fields: { name: string; value: string }[]) => fields.map((f) => `${f.name}: ${f.value}`);

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-h2-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('HPACK: the RFC 7541 C.3 and C.4 request sequences decode, with and without Huffman, sharing the dynamic table', () => {
  for (const blocks of [
    ['8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d', '8286 84be 5808 6e6f 2d63 6163 6865', '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65'],
    ['8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff', '8286 84be 5886 a8eb 1064 9cbf', '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf'],
  ]) {
    const d = new HpackDecoder(LIMITS);
    assert.deepEqual(pairs(d.decode(hex(blocks[0]!))), [':method: GET', ':scheme: http', ':path: /', ':authority: www.example.com']);
    assert.deepEqual(pairs(d.decode(hex(blocks[1]!))), [':method: GET', ':scheme: http', ':path: /', ':authority: www.example.com', 'cache-control: no-cache']);
    assert.deepEqual(pairs(d.decode(hex(blocks[2]!))), [':method: GET', ':scheme: https', ':path: /index.html', ':authority: www.example.com', 'custom-key: custom-value']);
  }
});

test('HPACK: Huffman round trip of every byte; literals we write decode to the same fields', () => {
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('latin1');
  assert.equal(huffmanDecode(huffmanEncode(all), 1024), all);
  assert.equal(huffmanEncode('www.example.com').toString('hex'), 'f1e3c2e5f23a6ba0ab90f4ff');
  const fields = [
    { name: ':path', value: '/runtime.v1.RuntimeService/Version', sensitive: false },
    { name: 'authorization', value: 'x'.repeat(300), sensitive: true },
  ];
  const back = new HpackDecoder(LIMITS).decode(encodeLiterals(fields));
  assert.deepEqual(back, fields);
});

test('HPACK: hostile blocks are refused, never read past or grown without bound', () => {
  const d = () => new HpackDecoder(LIMITS);
  assert.throws(() => d().decode(hex('80')), HpackError); // index 0
  assert.throws(() => d().decode(hex('be')), /past the dynamic table/);
  assert.throws(() => d().decode(hex('3fe13f')), /table size .* over the limit/); // a size update to 8192
  assert.throws(() => d().decode(hex('0f ff ff ff ff ff 01')), /integer too large/);
  assert.throws(() => d().decode(hex('00 05 61')), /past the header block/);
  assert.throws(() => d().decode(Buffer.concat([hex('00 81'), Buffer.from([0xff]), hex('00')])), /Huffman/); // EOS prefix run of 8 bits is not padding
  // One 4000-byte entry referenced again and again: the decoded list is bounded.
  const big = Buffer.concat([hex('40 01 61 7f a1 1e'), Buffer.alloc(4000, 0x62), Buffer.alloc(10, 0xbe)]);
  assert.throws(() => d().decode(big), /header list larger than/);
});

test('nghttp2 rules: a socket path or an empty authority is refused, host names and addresses are taken', () => {
  for (const ok of ['localhost', '127.0.0.1:5000', '[::1]:80', 'frakti.sock']) assert.ok(authorityAccepted(ok), ok);
  for (const bad of ['/run/frakti/frakti.sock', '', undefined, 'a b', 'x\ty']) assert.ok(!authorityAccepted(bad), String(bad));
});

/** Runs an HTTP/2 server whose connections pass the filter; returns what it saw. */
async function filteredH2Server(t: { after: (fn: () => Promise<void> | void) => void }, dir: string) {
  const sock = join(dir, 'h2.sock');
  const seen: Record<string, string | string[] | undefined>[] = [];
  const h2 = http2.createServer();
  h2.on('stream', (stream, headers) => {
    seen.push(headers);
    stream.respond({ ':status': 200 });
    stream.end('ok');
  });
  /** What each connection's client sent, as it sent it. */
  const raw: Buffer[][] = [];
  const sockets = new Set<Socket>();
  const listener = createServer((s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    const mine: Buffer[] = [];
    raw.push(mine);
    s.on('data', (b: Buffer) => mine.push(Buffer.from(b)));
    h2.emit('connection', filterAuthority(s));
  });
  await new Promise<void>((r) => listener.listen(sock, r));
  t.after(
    () =>
      new Promise<void>((r) => {
        listener.close(() => r());
        for (const s of sockets) s.destroy();
      }),
  );
  return { sock, seen, raw };
}

async function requests(sock: string, authority: string, n: number): Promise<number[]> {
  const client = http2.connect('http://localhost', { createConnection: () => connect(sock) });
  try {
    const statuses: number[] = [];
    for (let i = 0; i < n; i++) {
      statuses.push(
        await new Promise<number>((resolve, reject) => {
          // The same headers each time: the client's encoder answers from its dynamic table.
          const req = client.request({ ':method': 'POST', ':path': `/svc/M${i % 2}`, ':authority': authority, 'content-type': 'application/grpc', 'grpc-timeout': '5S', 'user-agent': 'grpc-go/1.38.0' });
          req.on('response', (h) => resolve(Number(h[':status'])));
          req.on('error', reject);
          req.resume();
          req.end();
        }),
      );
    }
    return statuses;
  } finally {
    client.close();
  }
}

test('a real HTTP/2 client with a socket path as authority is served, request after request on one connection', async (t) => {
  const dir = await tempDir(t);
  const srv = await filteredH2Server(t, dir);
  assert.deepEqual(await requests(srv.sock, '/run/frakti/frakti.sock', 6), [200, 200, 200, 200, 200, 200]);
  assert.equal(srv.seen.length, 6);
  for (const [i, h] of srv.seen.entries()) {
    assert.equal(h[':authority'], REPLACEMENT_AUTHORITY);
    assert.equal(h[':path'], `/svc/M${i % 2}`);
    assert.equal(h['content-type'], 'application/grpc');
    assert.equal(h['user-agent'], 'grpc-go/1.38.0');
  }
});

test('the filter passes a valid client through byte for byte and copes with any split of the stream', async (t) => {
  const dir = await tempDir(t);
  const srv = await filteredH2Server(t, dir);
  assert.deepEqual(await requests(srv.sock, 'localhost', 3), [200, 200, 200]);
  const sent = Buffer.concat(srv.raw[0]!);
  // One byte at a time: the same bytes come out, none rewritten.
  const f = new AuthorityFilter();
  const out = Buffer.concat([...sent].flatMap((b) => f.push(Buffer.from([b]))));
  assert.ok(out.equals(sent));
  assert.equal(f.rewritten, 0);

  // A socket-path client's bytes, fed in odd-sized pieces, rewrite the same as when fed whole.
  await requests(srv.sock, '/x.sock', 3);
  const bad = Buffer.concat(srv.raw[1]!);
  const whole = Buffer.concat(new AuthorityFilter().push(bad));
  const g = new AuthorityFilter();
  const pieces: Buffer[] = [];
  for (let at = 0; at < bad.length; at += 7) pieces.push(...g.push(bad.subarray(at, at + 7)));
  assert.ok(Buffer.concat(pieces).equals(whole));
  assert.equal(g.rewritten, 3);
  assert.ok(!whole.includes(Buffer.from('/x.sock')));
});

test('a request without any :authority (nghttp2 resets it) is given one', async (t) => {
  const dir = await tempDir(t);
  const srv = await filteredH2Server(t, dir);
  const c = connect(srv.sock);
  const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
  // :method POST, :scheme http, :path /x (literal), and no :authority: HEADERS with END_STREAM|END_HEADERS.
  const block = hex('83 86 04 02 2f78');
  const frames = Buffer.concat([preface, hex('000000 04 00 00000000'), hex('000006 01 05 00000001'), block]);
  const replies: Buffer[] = [];
  c.on('data', (b: Buffer) => replies.push(b));
  c.write(frames);
  const deadline = Date.now() + 5000;
  while (srv.seen.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(srv.seen[0]?.[':authority'], REPLACEMENT_AUTHORITY);
  assert.equal(srv.seen[0]?.[':path'], '/x');
  c.destroy();
});

test('a client that breaks the framing inside a header block is disconnected', () => {
  const f = new AuthorityFilter();
  const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
  // HEADERS without END_HEADERS on stream 1, then a DATA frame instead of CONTINUATION.
  const headers = Buffer.concat([hex('000001 01 00 00000001'), hex('82')]);
  const data = hex('000000 00 01 00000001');
  assert.throws(() => f.push(Buffer.concat([preface, headers, data])), /inside the header block/);
});

test('the CRI server answers grpc-js clients whatever :authority they send', async (t) => {
  const dir = await tempDir(t);
  const socketPath = join(dir, 'cri.sock');
  const server = await CriServer.listen({
    socketPath,
    runtime: { unary: { Version: async () => ({ version: '0.1.0', runtime_name: 'frakti', runtime_version: '1', runtime_api_version: 'v1' }) } },
    image: { unary: {} },
  });
  server.gate.setReady();
  t.after(() => server.stop());
  for (const authority of [undefined, socketPath, 'localhost', '']) {
    const c = criClient(socketPath, authority === undefined ? {} : { 'grpc.default_authority': authority });
    try {
      for (let i = 0; i < 3; i++) {
        const v = await c.runtime.Version!({ version: 'v1' });
        assert.equal(v.runtime_name, 'frakti', `authority ${JSON.stringify(authority)}`);
      }
    } finally {
      c.close();
    }
  }
});
