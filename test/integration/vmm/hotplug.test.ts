// Hotplug against a real VM: vCPUs, a DIMM, and a virtio-blk disk on a root
// port that the guest kernel releases again when asked (DEVICE_DELETED comes
// only after the guest let go of it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Vm, growMemory, guestAssets, hotplugBlock, hotplugCpus, hotplugMemory, hotplugNic, listMemoryDevices, unplugBlock, vmSizeNow } from '../../../src/vmm/index.js';
import { execa } from 'execa';
import { killLeftovers } from '../../helpers/vmm-leaks.js';

let root: string;
let vm: Vm;
const NS = `frakti-hotplug-${process.pid}`;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'frakti-hotplug-'));
  const a = guestAssets();
  await execa('ip', ['netns', 'add', NS]);
  await execa('ip', ['-n', NS, 'tuntap', 'add', 'dev', 'tap0', 'mode', 'tap']);
  vm = await Vm.launch({
    id: 'hotplug', dir: join(root, 'vm'), cpus: 1, maxCpus: 3, memoryMiB: 256, maxMemoryMiB: 768,
    kernel: a.kernel, initrd: a.initrd, accel: 'tcg', channel: { kind: 'serial' }, pcieRootPorts: 2, netns: `/run/netns/${NS}`,
  });
});

after(async () => {
  await vm?.stop({ timeoutMs: 5_000 }).catch(() => {});
  const left = await killLeftovers(root);
  await execa('ip', ['netns', 'del', NS], { reject: false });
  await rm(root, { recursive: true, force: true });
  assert.deepEqual(left, []);
});

test('vCPUs are added up to maxcpus, never beyond, never removed; refused under TCG, where QEMU would abort', async () => {
  const kvm = ((await vm.qmp.execute('query-kvm')) as { enabled: boolean }).enabled;
  if (!kvm) {
    // The translation cache fills as the guest runs; a vCPU added after that kills QEMU.
    await assert.rejects(hotplugCpus(vm.qmp, 3), /needs KVM/);
    assert.equal(((await vm.qmp.execute('query-cpus-fast')) as unknown[]).length, 1);
    assert.equal(vm.currentState, 'running');
    return;
  }
  assert.equal(await hotplugCpus(vm.qmp, 3), 2);
  assert.equal(((await vm.qmp.execute('query-cpus-fast')) as unknown[]).length, 3);
  assert.equal(await hotplugCpus(vm.qmp, 3), 0);
  await assert.rejects(hotplugCpus(vm.qmp, 4), /maxcpus=3/);
  await assert.rejects(hotplugCpus(vm.qmp, 1), /can only be added/);
});

test('memory is added as DIMMs of whole blocks', async () => {
  await assert.rejects(hotplugMemory(vm.qmp, 'dimm-bad', 100, false), /multiples of 128 MiB/);
  await hotplugMemory(vm.qmp, 'dimm0', 256, false);
  assert.deepEqual(await listMemoryDevices(vm.qmp), [{ id: 'dimm0', sizeMiB: 256 }]);
  // Beyond maxmem QEMU refuses, and the half-made backend is taken away again.
  await assert.rejects(hotplugMemory(vm.qmp, 'dimm1', 512, false), /QMP device_add/);
  await hotplugMemory(vm.qmp, 'dimm1', 256, false);
  assert.deepEqual((await listMemoryDevices(vm.qmp)).map((d) => d.id), ['dimm0', 'dimm1']);
});

test('growing memory counts what the VM has and stops at its maximum', async () => {
  // 256 MiB at boot and the two DIMMs above: the VM is at its maxmem.
  assert.equal((await vmSizeNow(vm.qmp)).memoryMiB, 768);
  assert.equal(await growMemory(vm.qmp, 700, 768, false), 0, 'nothing to add');
  await assert.rejects(growMemory(vm.qmp, 800, 768, false), /at most 768 MiB/);
  await assert.rejects(growMemory(vm.qmp, 800, 800, false), /less than a 128 MiB block is left/);
  assert.equal((await listMemoryDevices(vm.qmp)).length, 2);
});

test('a disk is plugged on a free root port and released by the guest on unplug', async () => {
  const disk = join(root, 'disk.img');
  await writeFile(disk, '');
  await truncate(disk, 16 * 1024 * 1024);
  assert.equal(await hotplugBlock(vm.qmp, { id: 'vol0', path: disk, readonly: true }), 'rp0');
  const blocks = (await vm.qmp.execute('query-block')) as { qdev: string; inserted?: { ro: boolean; file: string } }[];
  const b = blocks.find((x) => x.qdev.includes('vol0'));
  assert.equal(b?.inserted?.file, disk);
  assert.equal(b?.inserted?.ro, true);
  // A second disk (one image file is locked by the device that holds it).
  const disk2 = join(root, 'disk2.img');
  await writeFile(disk2, '');
  await truncate(disk2, 16 * 1024 * 1024);
  await assert.rejects(hotplugBlock(vm.qmp, { id: 'volx', path: disk }), /Failed to get "write" lock/);
  assert.equal(await hotplugBlock(vm.qmp, { id: 'vol1', path: disk2 }), 'rp1');
  await assert.rejects(hotplugBlock(vm.qmp, { id: 'vol3', path: disk2 }), /no free PCIe root port \(the VM has 2\)/);
  await unplugBlock(vm.qmp, 'vol1');
  await unplugBlock(vm.qmp, 'vol0');
  assert.ok(!((await vm.qmp.execute('query-block')) as { qdev: string }[]).some((x) => x.qdev.includes('vol0')));
  // The port is free again.
  assert.equal(await hotplugBlock(vm.qmp, { id: 'vol2', path: disk }), 'rp0');
  await unplugBlock(vm.qmp, 'vol2');
});

test('a NIC on a tap in the VM namespace is plugged with the MAC asked for', async () => {
  await assert.rejects(hotplugNic(vm.qmp, { id: 'nic0', tap: 'tap0', mac: 'not-a-mac' }), /bad id, tap name or MAC/);
  const port = await hotplugNic(vm.qmp, { id: 'nic0', tap: 'tap0', mac: '0A:58:0A:58:00:09' });
  assert.match(port, /^rp\d$/);
  const filters = (await vm.qmp.execute('query-rx-filter')) as { 'main-mac': string }[];
  assert.deepEqual(filters.map((f) => f['main-mac']), ['0a:58:0a:58:00:09']);
  const fds = await readdir(`/proc/${vm.pid}/fdinfo`);
  const infos = await Promise.all(fds.map((fd) => readFile(`/proc/${vm.pid}/fdinfo/${fd}`, 'utf8').catch(() => '')));
  assert.ok(infos.some((i) => /^iff:\s+tap0$/m.test(i)), 'QEMU opened tap0');
  // The same id twice is refused by QEMU; the VM keeps its one NIC.
  await assert.rejects(hotplugNic(vm.qmp, { id: 'nic0', tap: 'tap0', mac: '0a:58:0a:58:00:0a' }), /QMP (netdev_add|device_add)/);
  assert.equal(((await vm.qmp.execute('query-rx-filter')) as unknown[]).length, 1, 'still one NIC');
});
