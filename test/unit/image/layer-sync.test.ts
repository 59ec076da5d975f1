// The unpack's fsync pool: bounded, every handle closed, and a sync that
// fails (EIO, delayed allocation's ENOSPC) fails the layer.
import assert from 'node:assert/strict';
import type { FileHandle } from 'node:fs/promises';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LayerSyncer, MAX_SYNCS_IN_FLIGHT } from '../../../src/image/layer-sync.js';

/** A file handle whose sync takes `ms` and fails with `fail` if given; counts what is under way. */
function fakeHandles(ms: number) {
  const seen = { syncing: 0, maxSyncing: 0, closed: 0, opened: 0 };
  const make = (fail?: Error) => {
    seen.opened++;
    return {
      async sync() {
        seen.maxSyncing = Math.max(seen.maxSyncing, ++seen.syncing);
        await sleep(ms);
        seen.syncing--;
        if (fail) throw fail;
      },
      async close() {
        seen.closed++;
      },
    } as unknown as FileHandle;
  };
  return { seen, make };
}

test('files sync a bounded number at a time, and each handle is closed', async () => {
  const { seen, make } = fakeHandles(5);
  const s = new LayerSyncer();
  for (let i = 0; i < 20; i++) await s.add(make());
  await s.drain();
  assert.equal(seen.maxSyncing, MAX_SYNCS_IN_FLIGHT);
  assert.equal(seen.closed, 20);
});

test('a sync that fails fails the next add and the drain; no handle stays open', async () => {
  const { seen, make } = fakeHandles(5);
  const s = new LayerSyncer();
  const eio = Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
  await s.add(make(eio));
  await assert.rejects(
    (async () => {
      for (let i = 0; i < 10; i++) await s.add(make());
    })(),
    eio,
  );
  await assert.rejects(s.drain(), eio);
  assert.equal(seen.closed, seen.opened);
});
