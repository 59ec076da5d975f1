// A command spawner that takes requests and never answers (a stuck helper):
// a command with a timeout still ends, as timed out, a bounded time after it.
// Its own file: the helper is chosen once per process (FRAKTI_SPAWNER).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand } from '../../../src/lib/command.js';

test('a helper that never answers: a command with a timeout is answered as timed out soon after it', { timeout: 60_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-stuck-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const helper = join(dir, 'stuck-spawner');
  await writeFile(helper, '#!/bin/sh\nexec cat >/dev/null\n');
  await chmod(helper, 0o700);
  process.env.FRAKTI_SPAWNER = helper;
  const t0 = Date.now();
  const r = await runCommand('true', [], { timeoutMs: 300 });
  const took = Date.now() - t0;
  assert.equal(r.timedOut, true);
  assert.equal(r.failed, true);
  assert.equal(r.exitCode, undefined);
  assert.match(r.stderr, /timed out after 300 ms \(the command spawner did not answer/);
  assert.ok(took >= 300 && took < 15_000, `answered after ${took} ms`);
});
