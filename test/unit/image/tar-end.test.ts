// Layer tars that stop right after their last entry's data (as `umoci insert`
// writes them) are completed; tars cut off anywhere else are refused.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { text } from 'node:stream/consumers';
import { ContentInvalidError } from '../../../src/image/errors.js';
import { unpackLayer } from '../../../src/image/layer-unpack.js';
import { completeTarEnd } from '../../../src/image/tar-end.js';
import { makeLayerTar, type LayerEntry } from '../../helpers/image-registry.js';

const BLOCK = 512;

/** Offset where the last header's data ends (no padding, no end blocks). */
function lastDataEnd(tar: Buffer): number {
  let off = 0;
  let end = 0;
  while (off + BLOCK <= tar.length && tar.subarray(off, off + BLOCK).some((b) => b !== 0)) {
    const size = parseInt(tar.subarray(off + 124, off + 136).toString('latin1').replace(/\0.*$/, '').trim() || '0', 8);
    end = off + BLOCK + size;
    off += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
  }
  return end;
}

/** The tar as umoci insert writes it: nothing after the last entry's data. */
async function unpaddedTar(entries: LayerEntry[]): Promise<Buffer> {
  const tar = await makeLayerTar(entries);
  return tar.subarray(0, lastDataEnd(tar));
}

/** `buf` in chunks of `size` bytes, so that every boundary falls inside a chunk somewhere. */
function chunked(buf: Buffer, size: number): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) parts.push(buf.subarray(i, i + size));
  return Readable.from(parts);
}

async function tempLayer(t: { after(fn: () => Promise<void>): void }): Promise<{ base: string; dest: string }> {
  const base = await mkdtemp(join(tmpdir(), 'frakti-tar-end-'));
  t.after(() => rm(base, { recursive: true, force: true }));
  const dest = join(base, 'layer');
  await mkdir(dest);
  return { base, dest };
}

const LONG = `${'d'.repeat(120)}/${'f'.repeat(90)}`;
const ENTRIES: LayerEntry[] = [
  { name: '/', type: 'directory' },
  { name: 'etc/', type: 'directory' },
  { name: 'etc/hello.txt', content: 'hello\n' },
  { name: LONG, content: 'x'.repeat(700), pax: { 'SCHILY.xattr.user.k': 'v' } },
  { name: 'last', content: 'six b\n' },
];

test('a tar that ends right after its last entry data unpacks, however it is chunked', async (t) => {
  const tar = await unpaddedTar(ENTRIES);
  assert.notEqual(tar.length % BLOCK, 0, 'the test tar really is unpadded');
  for (const size of [1, 7, 511, 512, 513, tar.length]) {
    const { base, dest } = await tempLayer(t);
    await unpackLayer(chunked(tar, size), dest, { scratchDir: base });
    assert.equal(await readFile(join(dest, 'etc/hello.txt'), 'utf8'), 'hello\n', `chunks of ${size}`);
    assert.equal(await readFile(join(dest, LONG), 'utf8'), 'x'.repeat(700));
    assert.equal(await readFile(join(dest, 'last'), 'utf8'), 'six b\n');
  }
});

test('the completion is the padding and two end blocks; a whole tar passes unchanged', async () => {
  const whole = await makeLayerTar(ENTRIES);
  const cut = await unpaddedTar(ENTRIES);
  const completed = Buffer.concat(await Readable.from([cut]).pipe(completeTarEnd()).toArray());
  assert.equal(completed.length, Math.ceil(cut.length / BLOCK) * BLOCK + 2 * BLOCK);
  assert.ok(completed.subarray(0, cut.length).equals(cut));
  assert.ok(completed.subarray(cut.length).every((b) => b === 0));
  const passed = Buffer.concat(await Readable.from([whole]).pipe(completeTarEnd()).toArray());
  assert.ok(passed.equals(whole));
});

test('a tar without end blocks, an empty one and one with extra zero blocks unpack', async (t) => {
  const dirLast = await makeLayerTar([{ name: 'f', content: 'a'.repeat(BLOCK) }, { name: 'd/', type: 'directory' }]);
  const cases = [dirLast.subarray(0, dirLast.length - 2 * BLOCK), Buffer.alloc(0), Buffer.concat([dirLast, Buffer.alloc(8 * 1024)])];
  for (const tar of cases) {
    const { base, dest } = await tempLayer(t);
    await unpackLayer(Readable.from([tar]), dest, { scratchDir: base });
  }
});

test('a PAX size record decides where an entry ends, as tar-stream reads it', async (t) => {
  // The header says 0 bytes, the PAX record 700: both readers must follow the record.
  const tar = await unpaddedTar([{ name: 'big', content: 'y'.repeat(700), pax: { size: '700' } }]);
  const header = tar.length - 700 - BLOCK;
  tar.write('00000000000\0', header + 124, 'latin1');
  tar.write('        ', header + 148, 'latin1');
  const sum = tar.subarray(header, header + BLOCK).reduce((a, b) => a + b, 0);
  tar.write(`${sum.toString(8).padStart(6, '0')}\0 `, header + 148, 'latin1');
  const { base, dest } = await tempLayer(t);
  await unpackLayer(Readable.from([tar]), dest, { scratchDir: base });
  assert.equal(await readFile(join(dest, 'big'), 'utf8'), 'y'.repeat(700));
});

test('a tar cut inside data, padding, a header or a PAX record is refused, naming where', async (t) => {
  const whole = await makeLayerTar(ENTRIES);
  const end = lastDataEnd(whole);
  const paxStart = whole.indexOf(Buffer.from('SCHILY.xattr.user.k')) - 8;
  const cases: [number, RegExp][] = [
    [end - 3, /entry 'last' is cut short: 3 of 6 bytes/],
    [end + 100, /part-way through the padding after 'last'/],
    [end - 6 - 200, /ends inside a header \(312 of 512 bytes\)/],
    [paxStart + 4, /cut short/],
  ];
  for (const [at, why] of cases) {
    const { base, dest } = await tempLayer(t);
    await assert.rejects(unpackLayer(chunked(whole.subarray(0, at), 100), dest, { scratchDir: base }), (e: unknown) => {
      assert.ok(e instanceof ContentInvalidError, `expected ContentInvalidError, got ${String(e)}`);
      assert.match(e.message, why);
      return true;
    });
  }
});

test('a stream that is not a tar is refused before tar-stream sees it', async () => {
  const garbage = Buffer.alloc(BLOCK, 0x41);
  await assert.rejects(text(Readable.from([garbage]).pipe(completeTarEnd())), (e: unknown) => e instanceof ContentInvalidError && /Invalid tar header/.test(e.message));
});
