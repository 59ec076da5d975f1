// Container events from the container store's changes: what each change
// means, order, several subscribers, and a slow one cut off, not buffered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainerEventHub, MAX_SUBSCRIBERS } from '../../../src/pod/container-events.js';
import { RecordStore } from '../../../src/pod/record-store.js';

const ID = 'a'.repeat(64);

test('every store change of a container becomes its lifecycle events, in order, for each subscriber', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-events-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const hub = new ContainerEventHub();
  const store = new RecordStore<{ id: string; podId: string }, { state: string }>(dir, 'container');
  store.observer = (meta, before, after) => hub.recordChanged(meta.id, meta.podId, before as never, after as never);
  const a = hub.subscribe()!;
  const b = hub.subscribe()!;
  await store.create({ id: ID, podId: 'p1' }, { state: 'CREATED' });
  await store.update(ID, (s) => ({ ...s, state: 'RUNNING' }));
  await store.update(ID, (s) => ({ ...s, state: 'RUNNING' })); // no change of state: no event
  await store.update(ID, (s) => ({ ...s, state: 'EXITED' }));
  await store.delete(ID);
  for (const sub of [a, b]) {
    const got: string[] = [];
    for (let i = 0; i < 4; i++) got.push((await sub.next())!.type);
    assert.deepEqual(got, ['CREATED', 'STARTED', 'STOPPED', 'DELETED']);
  }
  // A container removed while it ran also stopped.
  await store.create({ id: ID, podId: 'p1' }, { state: 'CREATED' });
  await store.update(ID, (s) => ({ ...s, state: 'RUNNING' }));
  await store.delete(ID);
  const types = [];
  for (let i = 0; i < 4; i++) types.push((await a.next())!.type);
  assert.deepEqual(types, ['CREATED', 'STARTED', 'STOPPED', 'DELETED']);
  a.close();
  assert.equal(await a.next(), undefined);
});

test('a subscriber that does not read is cut off at its bound; the others go on; subscribers are bounded', async () => {
  const hub = new ContainerEventHub();
  const slow = hub.subscribe(10)!;
  const fast = hub.subscribe(10)!;
  for (let i = 0; i < 25; i++) {
    hub.recordChanged(String(i), 'p', undefined, { state: 'CREATED' } as never);
    await fast.next();
  }
  assert.equal(slow.ended, 'overflow');
  assert.equal(await slow.next(), undefined, 'nothing held for it');
  assert.equal(hub.subscribers, 1);
  assert.equal(fast.ended, undefined);
  const many = Array.from({ length: MAX_SUBSCRIBERS }, () => hub.subscribe());
  assert.equal(many.filter(Boolean).length, MAX_SUBSCRIBERS - 1);
  assert.equal(hub.subscribe(), undefined);
});

test('a read waits for the next event and ends when its signal fires', async () => {
  const hub = new ContainerEventHub();
  const sub = hub.subscribe()!;
  const ac = new AbortController();
  const waiting = sub.next(ac.signal);
  setTimeout(() => hub.recordChanged('c', 'p', undefined, { state: 'CREATED' } as never), 20);
  assert.equal((await waiting)?.type, 'CREATED');
  const stalled = sub.next(ac.signal);
  ac.abort();
  assert.equal(await stalled, undefined);
});
