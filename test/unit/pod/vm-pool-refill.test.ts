// The pool's own schedule, with the VM launch and the agent replaced (the
// real ones: test/integration/e2e/vm-pool.test.ts). The namespace and its
// tap are real. A refill waits for the pod start that took a VM (a boot
// takes a core under TCG), but never past its bound; a pool VM boots with
// its NIC on a tap that exists before QEMU would open it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VmPool, type PoolBoot } from '../../../src/pod/vm-pool.js';
import { placeholderMac, podNetnsName } from '../../../src/pod/pod-network.js';
import { deleteNetns, ipIn, netnsExists } from '../../../src/network/index.js';
import type { PodContext } from '../../../src/pod/context.js';
import type { PodAgent } from '../../../src/pod/agent-port.js';
import type { GuestNetwork } from '../../../src/agent-protocol/index.js';
import type { Vm, VmNic } from '../../../src/vmm/index.js';
import { waitFor } from '../../helpers/cri-client.js';

interface Launch {
  id: string;
  nics: VmNic[];
  tapUp: boolean;
  at: number;
  /** What the pool asked the guest's network to be before any pod took the VM. */
  network?: GuestNetwork;
}

function fakePool(dir: string, size: number): { pool: VmPool; launches: Launch[] } {
  const launches: Launch[] = [];
  const shareDir = (id: string) => join(dir, id, 'shared');
  const boot: PoolBoot = {
    async launch(id, _size, _netns, netnsReady, nics) {
      await netnsReady;
      // What QEMU needs at its start: the tap, in the VM's namespace.
      const link = JSON.parse(await ipIn(podNetnsName(id), ['-j', 'link', 'show', 'dev', nics[0]?.tap ?? 'none'])) as { flags: string[] }[];
      launches.push({ id, nics, tapUp: link[0]?.flags.includes('UP') ?? false, at: Date.now() });
      return Object.assign(new EventEmitter(), { id, stop: async () => {} }) as unknown as Vm;
    },
    waitForAgent: async (vm) => ({
      close() {},
      async configureNetwork(n: GuestNetwork) {
        launches.find((l) => l.id === vm.id)!.network = n;
      },
    }) as unknown as PodAgent,
    shareDir,
    podFilesDir: (id) => join(shareDir(id), '.pod'),
  };
  const ctx = { shareDir } as unknown as PodContext;
  return { pool: new VmPool(ctx, boot, size, { cpus: 1, memoryMiB: 256 }), launches };
}

test('a pool VM boots with a NIC on a tap made before it, a MAC of its own; a refill waits for the pod start that took a VM, at most 5 s', { timeout: 60_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-pool-unit-'));
  const { pool, launches } = fakePool(dir, 1);
  const taken = new Set<string>();
  t.after(async () => {
    await pool.close();
    // A taken VM's namespace is its pod's to remove; the pool removes its own.
    const leftByClose: string[] = [];
    for (const l of launches) {
      const name = podNetnsName(l.id);
      if (!taken.has(l.id) && (await netnsExists(name))) leftByClose.push(name);
      await deleteNetns(name);
    }
    await rm(dir, { recursive: true, force: true });
    assert.deepEqual(leftByClose, [], 'close() removed the ready VM\'s namespace');
  });
  pool.fill();
  await waitFor('a ready pool VM', async () => pool.status().ready === 1, 10_000, 20);
  assert.equal(launches.length, 1);
  assert.equal(launches[0]!.tapUp, true, 'the tap exists and is up when QEMU starts');
  assert.equal(launches[0]!.nics.length, 1);
  assert.match(launches[0]!.nics[0]!.mac, /^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/, 'a unicast, locally administered MAC');
  // Up before a pod takes it (its receive ring filled off the pod's path), and nothing more.
  assert.deepEqual(launches[0]!.network, { interfaces: [{ mac: launches[0]!.nics[0]!.mac, mtu: 0, addresses: [] }], routes: [] }, 'the NIC is brought up with no address');

  // A pod start takes the VM and is still under way: no refill meanwhile.
  let finish!: () => void;
  const start = pool.during(async () => {
    const vm = pool.take({ cpus: 1, memoryMiB: 256 });
    assert.equal(vm?.id, launches[0]!.id);
    taken.add(vm.id);
    await new Promise<void>((r) => (finish = r));
  });
  await new Promise((r) => setTimeout(r, 1_500));
  assert.equal(launches.length, 1, 'no boot while the pod start is under way');
  const ended = Date.now();
  finish();
  await start;
  await waitFor('the refill', async () => pool.status().ready === 1, 10_000, 20);
  assert.equal(launches.length, 2);
  assert.ok(launches[1]!.at >= ended, 'the refill began once the start had ended');
  assert.notEqual(launches[1]!.nics[0]!.mac, launches[0]!.nics[0]!.mac, 'each pool VM has a MAC of its own');

  // A start that does not end holds the refill back 5 s at most.
  const takenAt = Date.now();
  let never!: () => void;
  const hung = pool.during(async () => {
    const vm = pool.take({ cpus: 1, memoryMiB: 256 });
    assert.ok(vm);
    taken.add(vm.id);
    await new Promise<void>((r) => (never = r));
  });
  await waitFor('the refill despite the hung start', async () => launches.length === 3, 15_000, 20);
  const waited = launches[2]!.at - takenAt;
  t.diagnostic(`refill after ${waited} ms with a start under way`);
  assert.ok(waited >= 4_000, `the refill waited for the start (${waited} ms)`);
  never();
  await hung;
});

test('placeholder MACs are unicast and locally administered', () => {
  for (let i = 0; i < 200; i++) {
    const first = parseInt(placeholderMac().slice(0, 2), 16);
    assert.equal(first & 0x01, 0, 'unicast');
    assert.equal(first & 0x02, 0x02, 'locally administered');
  }
});
