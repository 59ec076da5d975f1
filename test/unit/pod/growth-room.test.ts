// How far a pod VM may grow in place, as its launch spec says it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { growthRoom } from '../../../src/pod/sandbox-ops.js';
import { MAX_MEMORY_MIB, validateVmSpec } from '../../../src/vmm/index.js';

const pod = { cpus: 2, memoryMiB: 512 };

test('memory may grow to the configured maximum, never below the boot size', () => {
  assert.deepEqual(growthRoom(pod, { accel: 'tcg', maxMemoryMiB: 4096, maxCpus: 8 }), { maxMemoryMiB: 4096, maxCpus: 2 });
  assert.deepEqual(growthRoom(pod, { accel: 'tcg', maxMemoryMiB: 256 }), { maxMemoryMiB: 512, maxCpus: 2 });
  assert.deepEqual(growthRoom(pod, { accel: 'tcg' }), { maxMemoryMiB: 512, maxCpus: 2 }, 'unset: the boot size');
});

test('vCPUs may grow only under KVM', () => {
  assert.equal(growthRoom(pod, { accel: 'kvm', maxCpus: 8 }).maxCpus, 8);
  assert.equal(growthRoom({ cpus: 12, memoryMiB: 512 }, { accel: 'kvm', maxCpus: 8 }).maxCpus, 12);
});

test('a host with more memory than a VM spec allows still starts pods', () => {
  const room = growthRoom(pod, { accel: 'kvm', maxMemoryMiB: 4 * 1024 * 1024, maxCpus: 8 });
  assert.equal(room.maxMemoryMiB, MAX_MEMORY_MIB);
  // The spec a pod launches with passes validation.
  const spec = validateVmSpec({ id: 'p', dir: '/run/frakti/vm/p', ...pod, ...room, kernel: '/k', initrd: '/i', accel: 'kvm', channel: { kind: 'serial' } });
  assert.equal(spec.maxMemoryMiB, MAX_MEMORY_MIB);
});
