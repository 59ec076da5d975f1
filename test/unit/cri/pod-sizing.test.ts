// A pod VM's size from what kubelet sends: at RunPodSandbox (defaults fill
// what is unset) and at an in-place resize (what is unset stays unchanged).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { vmSize, vmSizeFor } from '../../../src/cri/pod-mapping.js';

const sizing = { defaultCpus: 1, defaultMemoryMiB: 256, guestOverheadMiB: 64, maxCpus: 4 };
const MiB = 1024 * 1024;

test('resources plus overhead size the VM; the guest\'s own memory comes on top', () => {
  assert.deepEqual(vmSize({ resources: { cpu_quota: '150000', cpu_period: '100000', memory_limit_in_bytes: String(512 * MiB) }, overhead: { memory_limit_in_bytes: String(32 * MiB) } } as never, sizing), { cpus: 2, memoryMiB: 512 + 32 + 64 });
  assert.deepEqual(vmSize(null, sizing), { cpus: 1, memoryMiB: 256 });
  // More vCPUs than the cap: the cap.
  assert.deepEqual(vmSize({ resources: { cpu_quota: '1000000', cpu_period: '100000' } } as never, sizing), { cpus: 4, memoryMiB: 256 });
});

test('a resize leaves unset what it does not ask for', () => {
  assert.deepEqual(vmSizeFor({ memory_limit_in_bytes: String(640 * MiB) } as never, null, sizing), { memoryMiB: 704 });
  assert.deepEqual(vmSizeFor({ cpu_quota: '200000', cpu_period: '100000' } as never, undefined, sizing), { cpus: 2 });
  assert.deepEqual(vmSizeFor(null, null, sizing), {});
  // A negative quota (unlimited) asks for nothing.
  assert.deepEqual(vmSizeFor({ cpu_quota: '-1', memory_limit_in_bytes: '0' } as never, null, sizing), {});
});

test('a memory limit above the node\'s memory gives a VM of the node\'s memory, not more', () => {
  const node = { ...sizing, maxMemoryMiB: 24 * 1024 };
  assert.deepEqual(vmSize({ resources: { memory_limit_in_bytes: String(500 * 1024 * MiB) } } as never, node), { cpus: 1, memoryMiB: 24 * 1024 });
  assert.deepEqual(vmSize({ resources: { memory_limit_in_bytes: String(512 * MiB) } } as never, node), { cpus: 1, memoryMiB: 512 + 64 });
  assert.deepEqual(vmSizeFor({ memory_limit_in_bytes: String(100 * 1024 * MiB) } as never, null, node), { memoryMiB: 24 * 1024 });
});
