// Real overlay mounts (root): layers, upper dir, and cleanup.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, mkdir, writeFile, readFile, readdir, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mountRootfs, unmountRootfs } from '../../../src/pod/rootfs-mount.js';
import { UndoStack } from '../../../src/lib/undo.js';
import { mountsUnder } from '../../helpers/vmm-leaks.js';

test('layers stack lowest first; writes land in the upper dir; undo leaves nothing', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-rootfs-'));
  t.after(async () => {
    for (const m of (await mountsUnder(dir)).reverse()) await unmountRootfs(m);
    await rm(dir, { recursive: true, force: true });
  });
  const l1 = join(dir, 'layers', 'sha256-1');
  const l2 = join(dir, 'layers', 'sha256-2');
  await mkdir(l1, { recursive: true });
  await mkdir(l2, { recursive: true });
  await writeFile(join(l1, 'a'), 'from layer 1');
  await writeFile(join(l1, 'b'), 'from layer 1');
  await writeFile(join(l2, 'b'), 'from layer 2');
  const target = join(dir, 'share', 'c1', 'rootfs');
  const undo = new UndoStack();
  await mountRootfs({ layers: [l1, l2], scratchDir: join(dir, 'c1'), target }, undo);
  assert.equal(await readFile(join(target, 'a'), 'utf8'), 'from layer 1');
  assert.equal(await readFile(join(target, 'b'), 'utf8'), 'from layer 2');
  await writeFile(join(target, 'new'), 'written by the container');
  assert.equal(await readFile(join(dir, 'c1', 'upper', 'new'), 'utf8'), 'written by the container');
  assert.deepEqual((await readdir(l2)).sort(), ['b'], 'layers stay untouched');
  assert.deepEqual(await undo.run(), []);
  assert.deepEqual(await mountsUnder(dir), []);
  await assert.rejects(access(join(dir, 'c1')));
  await assert.rejects(access(target));
});

test('an image with more layers than one page of overlay options can name still mounts', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-rootfs-'));
  t.after(async () => {
    for (const m of (await mountsUnder(dir)).reverse()) await unmountRootfs(m);
    await rm(dir, { recursive: true, force: true });
  });
  // 120 layers named like the store names them (a 64-hex digest each): ~8 KiB of options.
  const layers: string[] = [];
  for (let i = 0; i < 120; i++) {
    const l = join(dir, 'snapshots', i.toString(16).padStart(64, '0'), 'fs');
    await mkdir(l, { recursive: true });
    await writeFile(join(l, `f${i}`), String(i));
    await writeFile(join(l, 'top'), String(i));
    layers.push(l);
  }
  const target = join(dir, 'share', 'c1', 'rootfs');
  const undo = new UndoStack();
  await mountRootfs({ layers, scratchDir: join(dir, 'c1'), target }, undo);
  assert.equal(await readFile(join(target, 'f0'), 'utf8'), '0');
  assert.equal(await readFile(join(target, 'top'), 'utf8'), '119', 'the last layer is on top');
  await writeFile(join(target, 'new'), 'x');
  assert.equal(await readFile(join(dir, 'c1', 'upper', 'new'), 'utf8'), 'x');
  assert.deepEqual(await undo.run(), []);
  assert.deepEqual(await mountsUnder(dir), []);
});

test('no layers is refused', async () => {
  await assert.rejects(mountRootfs({ layers: [], scratchDir: '/tmp/x', target: '/tmp/y' }, new UndoStack()), /1..500 layers/);
});
