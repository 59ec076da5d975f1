// A container's capability set from the CRI's add and drop lists, in the
// order containerd applies them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ALL_CAPABILITIES, DEFAULT_CAPABILITIES, ambientCapabilities, capabilities } from '../../../src/pod/container-ops.js';

const caps = (add: string[], drop: string[]) => capabilities({ name: 'c', capabilities: { add, drop } }).sort();

test('ALL, case and the CAP_ prefix, as containerd reads them', () => {
  assert.deepEqual(caps([], []), [...DEFAULT_CAPABILITIES].sort());
  assert.equal(caps(['ALL'], []).length, ALL_CAPABILITIES.length);
  assert.deepEqual(caps(['all'], ['CHOWN']), ALL_CAPABILITIES.filter((c) => c !== 'CAP_CHOWN').sort());
  assert.deepEqual(caps(['NET_ADMIN'], ['ALL']), ['CAP_NET_ADMIN']);
  assert.deepEqual(caps(['ALL'], ['ALL']), []);
  const some = caps(['net_admin', 'CAP_SYS_TIME', 'BOGUS'], ['kill']);
  assert.ok(some.includes('CAP_NET_ADMIN') && some.includes('CAP_SYS_TIME'));
  assert.ok(!some.includes('CAP_KILL'));
  assert.ok(!some.includes('CAP_BOGUS'), 'a name the kernel does not know is left out');
});

test('ambient capabilities are held too; an unknown one is refused', () => {
  const spec = (ambient: string[]) => ({ name: 'c', capabilities: { add: [], drop: ['ALL'], ambient } });
  assert.deepEqual(capabilities(spec(['net_bind_service'])), ['CAP_NET_BIND_SERVICE']);
  assert.deepEqual(ambientCapabilities(spec(['NET_BIND_SERVICE'])), ['CAP_NET_BIND_SERVICE']);
  assert.throws(() => ambientCapabilities(spec(['CAP_NOPE'])), /unknown ambient capabilities: CAP_NOPE/);
});
