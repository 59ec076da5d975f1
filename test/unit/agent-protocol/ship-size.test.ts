// What ships in every pod VM stays small: the agent binary and the initrds
// (every byte of the initrd is unpacked at each boot). Raise a bound only on purpose.
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { AGENT_BIN, GUEST_DIR, RELAY_BIN } from '../../helpers/agent-process.js';

const KiB = 1024;
const BOUNDS_BYTES: [string, number][] = [
  [AGENT_BIN, 256 * KiB],
  [RELAY_BIN, 64 * KiB],
  [join(GUEST_DIR, 'initrd.img'), 128 * KiB],
  [join(GUEST_DIR, 'bare-initrd.img'), 16 * KiB],
];

for (const [path, bound] of BOUNDS_BYTES) {
  test(`${path.replace(/.*\/build\//, 'build/')} is at most ${bound / KiB} KiB`, () => {
    const size = statSync(path).size;
    assert.ok(size <= bound, `${path} is ${size} bytes, over its ${bound}-byte bound`);
  });
}

test('the initrd is a gzip newc cpio whose /init is the agent', () => {
  const cpio = gunzipSync(readFileSync(join(GUEST_DIR, 'initrd.img')));
  assert.equal(cpio.subarray(0, 6).toString(), '070701');
  const names = [...cpio.toString('latin1').matchAll(/070701[0-9a-f]{104}([^\0]+)\0/g)].map((m) => m[1]);
  for (const n of ['init', 'dev/console', 'proc', 'sys', 'run', 'TRAILER!!!']) assert.ok(names.includes(n), `${n} in ${names.join(' ')}`);
  const agent = readFileSync(AGENT_BIN);
  assert.ok(cpio.includes(agent), '/init is byte for byte build/bin/frakti-agent');
});
