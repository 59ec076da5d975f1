import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecordStore } from '../../../src/pod/record-store.js';
import { NameRegistry } from '../../../src/pod/name-registry.js';

const ID1 = 'a'.repeat(64);
const ID2 = 'b'.repeat(64);

async function root(t: { after(fn: () => unknown): void }) {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-store-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('records survive a reload; a failed update changes nothing', async (t) => {
  const dir = await root(t);
  const s = new RecordStore<{ id: string; name: string }, { state: string; n: number }>(dir, 'pod');
  await s.load();
  await s.create({ id: ID1, name: 'x' }, { state: 'READY', n: 0 });
  await s.update(ID1, (st) => ({ ...st, n: st.n + 1 }));
  await assert.rejects(s.update(ID1, () => { throw new Error('step failed'); }), /step failed/);
  const again = new RecordStore<{ id: string; name: string }, { state: string; n: number }>(dir, 'pod');
  assert.deepEqual(await again.load(), { loaded: 1, broken: [] });
  assert.deepEqual(again.get(ID1), { meta: { id: ID1, name: 'x' }, status: { state: 'READY', n: 1 } });
  await assert.rejects(s.create({ id: ID1, name: 'y' }, { state: 'READY', n: 0 }), (e: Error & { code?: string }) => e.code === 'ALREADY_EXISTS');
  assert.throws(() => s.must(ID2), /pod b+ not found/);
});

test('concurrent updates of one record all land, in order', async (t) => {
  const dir = await root(t);
  const s = new RecordStore<{ id: string }, { n: number }>(dir, 'container');
  await s.load();
  await s.create({ id: ID1 }, { n: 0 });
  await Promise.all(Array.from({ length: 20 }, () => s.update(ID1, async (st) => ({ n: st.n + 1 }))));
  assert.equal(s.must(ID1).status.n, 20);
});

test('a torn record (no meta.json) is not loaded; a corrupt one is reported', async (t) => {
  const dir = await root(t);
  await mkdir(join(dir, ID1));
  await writeFile(join(dir, ID1, 'status.json'), '{}');
  await mkdir(join(dir, ID2));
  await writeFile(join(dir, ID2, 'meta.json'), '{not json');
  await writeFile(join(dir, ID2, 'status.json'), '{}');
  const s = new RecordStore<{ id: string }, object>(dir, 'pod');
  const r = await s.load();
  assert.equal(r.loaded, 0);
  assert.equal(r.broken.length, 2);
  await s.delete(ID1);
  assert.deepEqual((await readdir(dir)).sort(), [ID2]);
});

test('a name belongs to one id', () => {
  const n = new NameRegistry('pod');
  n.reserve('default_web_uid_0', 'id1');
  n.reserve('default_web_uid_0', 'id1');
  assert.throws(() => n.reserve('default_web_uid_0', 'id2'), (e: Error & { code?: string }) => e.code === 'ALREADY_EXISTS' && /reserved by pod id1/.test(e.message));
  n.release('default_web_uid_0', 'id2');
  assert.equal(n.holder('default_web_uid_0'), 'id1');
  n.release('default_web_uid_0', 'id1');
  n.reserve('default_web_uid_0', 'id2');
});
