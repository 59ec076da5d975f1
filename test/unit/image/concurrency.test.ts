import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RwLock, SingleFlight, mapBounded } from '../../../src/image/concurrency.js';
import { TransientError, withRetry } from '../../../src/image/retry.js';

test('single-flight shares one run between callers of a key', async () => {
  const sf = new SingleFlight<number>();
  let runs = 0;
  const fn = async () => {
    runs++;
    await sleep(10);
    return 42;
  };
  assert.deepEqual(await Promise.all([sf.run('a', fn), sf.run('a', fn), sf.run('b', fn)]), [42, 42, 42]);
  assert.equal(runs, 2);
  await sf.run('a', fn);
  assert.equal(runs, 3, 'a finished run is not cached');
});

test('mapBounded never runs more than the limit at once', async () => {
  let now = 0;
  let peak = 0;
  const out = await mapBounded([1, 2, 3, 4, 5, 6, 7], 3, async (x) => {
    peak = Math.max(peak, ++now);
    await sleep(5);
    now--;
    return x * 2;
  });
  assert.deepEqual(out, [2, 4, 6, 8, 10, 12, 14]);
  assert.equal(peak, 3);
});

test('the writer of an RwLock waits for readers, and readers after it wait for it', async () => {
  const lock = new RwLock();
  const order: string[] = [];
  const r1 = lock.read(async () => {
    await sleep(20);
    order.push('r1');
  });
  const w = lock.write(async () => {
    order.push('w');
  });
  const r2 = lock.read(async () => {
    order.push('r2');
  });
  await Promise.all([r1, w, r2]);
  assert.deepEqual(order, ['r1', 'w', 'r2']);
});

test('withRetry retries transient errors only, within the bound', async () => {
  let n = 0;
  assert.equal(
    await withRetry({ maxRetries: 3, baseDelayMs: 1 }, async () => {
      if (++n < 3) throw new TransientError('503');
      return 'ok';
    }),
    'ok',
  );
  n = 0;
  await assert.rejects(
    withRetry({ maxRetries: 2, baseDelayMs: 1 }, async () => {
      n++;
      throw new TransientError('503');
    }),
  );
  assert.equal(n, 3);
  n = 0;
  await assert.rejects(
    withRetry({ maxRetries: 5, baseDelayMs: 1 }, async () => {
      n++;
      throw new Error('permanent');
    }),
  );
  assert.equal(n, 1);
});
