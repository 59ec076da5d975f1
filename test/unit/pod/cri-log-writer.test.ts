import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { CriLogWriter } from '../../../src/pod/cri-log-writer.js';

const T = new Date('2026-11-23T08:00:00.123Z');

async function withLog(t: { after(fn: () => unknown): void }, max = 8) {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-log-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'c.log');
  const w = await CriLogWriter.open(path, { maxLineBytes: max, now: () => T });
  return { w, path, read: () => readFile(path, 'utf8') };
}

test('lines are written as kubelet reads them, split across chunks', async (t) => {
  const { w, read } = await withLog(t, 100);
  await w.write('stdout', Buffer.from('hello\nwor'));
  await w.write('stderr', Buffer.from('oops\r\n'));
  await w.write('stdout', Buffer.from('ld\n'));
  await w.close();
  assert.equal(await read(), [
    '2026-11-23T08:00:00.123Z stdout F hello',
    '2026-11-23T08:00:00.123Z stderr F oops',
    '2026-11-23T08:00:00.123Z stdout F world',
    '',
  ].join('\n'));
});

test('write says how much of a stream is in the file: all but the unfinished line', async (t) => {
  const { w, read } = await withLog(t, 100);
  assert.equal(await w.write('stdout', Buffer.from('hello\nwor')), 6);
  assert.equal(await read(), '2026-11-23T08:00:00.123Z stdout F hello\n');
  assert.equal(await w.write('stderr', Buffer.from('e')), 0);
  assert.equal(await w.write('stdout', Buffer.from('ld\nnext')), 12);
  assert.equal(await w.end('stdout'), 16);
  assert.match(await read(), /stdout F next\n$/);
});

test('a long line is cut into P pieces ending with F; an unterminated end is F', async (t) => {
  const { w, read } = await withLog(t, 4);
  await w.write('stdout', Buffer.from('abcdefghij\n12345678'));
  await w.write('stdout', Buffer.from('\nxy'));
  await w.close();
  const msgs = (await read()).trim().split('\n').map((l) => l.split(' ').slice(2).join(' '));
  assert.deepEqual(msgs, ['P abcd', 'P efgh', 'F ij', 'P 1234', 'F 5678', 'F xy']);
});

test('nothing is lost: 5 MiB of random lines reassemble to the same bytes', async (t) => {
  const { w, read } = await withLog(t, 16 * 1024);
  const lines: string[] = [];
  for (let i = 0; i < 2000; i++) lines.push(randomBytes(1 + (i * 977) % 5000).toString('base64'));
  const all = Buffer.from(lines.join('\n') + '\n');
  for (let off = 0; off < all.length; off += 65536) await w.write('stdout', all.subarray(off, off + 65536));
  await w.close();
  let rebuilt = '';
  for (const l of (await read()).split('\n').slice(0, -1)) {
    const [, , tag, ...rest] = l.split(' ');
    rebuilt += rest.join(' ') + (tag === 'F' ? '\n' : '');
  }
  const h = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');
  assert.equal(h(rebuilt), h(all));
});

test('reopen continues in a new file after rotation', async (t) => {
  const { w, path, read } = await withLog(t, 100);
  await w.write('stdout', Buffer.from('one\n'));
  await rename(path, path + '.1');
  await w.reopen();
  await w.write('stdout', Buffer.from('two\n'));
  await w.close();
  assert.match(await readFile(path + '.1', 'utf8'), /stdout F one\n$/);
  assert.match(await read(), /^\S+ stdout F two\n$/);
});
