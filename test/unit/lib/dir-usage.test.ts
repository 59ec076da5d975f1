// A writable layer's disk use: allocated blocks, hard links once, bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { link, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dirUsage } from '../../../src/lib/dir-usage.js';

test('bytes as allocated, every inode once, and a bound on how much is read', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-usage-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'a', 'b'), { recursive: true });
  await writeFile(join(dir, 'a', 'b', 'one-mib'), Buffer.alloc(1024 * 1024, 1));
  await link(join(dir, 'a', 'b', 'one-mib'), join(dir, 'a', 'same-file'));
  const u = await dirUsage(dir, 1000);
  assert.equal(u.inodes, 4, 'the root, a, a/b and the file (its second name is not a second inode)');
  assert.ok(u.bytes >= 1024 * 1024 && u.bytes < 1.2 * 1024 * 1024, String(u.bytes));
  assert.equal(u.partial, false);
  assert.deepEqual(await dirUsage(join(dir, 'missing'), 1000), { bytes: 0, inodes: 0, partial: false });
  assert.equal((await dirUsage(dir, 2)).partial, true);
});
