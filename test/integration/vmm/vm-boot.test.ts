// A real VM: QEMU under the accelerator the probe picks, our kernel and
// initrd, the agent answering over its channel. Each test removes what it
// made, also when it fails.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, mkdir, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { Vm, chooseAccel, guestAssets, kernelInfo, type AccelDecision, type VmSpec } from '../../../src/vmm/index.js';
import { waitForAgent } from '../../../src/agent-protocol/index.js';
import { killLeftovers, mountsUnder, processesMentioning } from '../../helpers/vmm-leaks.js';

const assets = guestAssets();
let accel: AccelDecision;

before(async () => {
  accel = await chooseAccel('auto', { kernel: assets.kernel, bareInitrd: assets.bareInitrd });
});

/** A temp dir for one test; after it, nothing may run or stay mounted under it. */
async function scratch(t: { after(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-vmtest-'));
  t.after(async () => {
    const left = await killLeftovers(dir);
    for (const m of (await mountsUnder(dir)).reverse()) await execa('umount', ['-l', m], { reject: false });
    await rm(dir, { recursive: true, force: true });
    assert.deepEqual(left, [], 'processes left running');
  });
  return dir;
}

function spec(dir: string, extra: Partial<VmSpec> = {}): VmSpec {
  return {
    id: 'test-vm',
    dir: join(dir, 'vm'),
    cpus: 1,
    memoryMiB: 256,
    kernel: assets.kernel,
    initrd: assets.initrd,
    accel: accel.accel,
    channel: { kind: 'serial' },
    ...extra,
  };
}

test('the accelerator probe decides and says why', () => {
  if (accel.accel === 'tcg') {
    assert.equal(accel.kvmUsable, false);
    assert.match(accel.reason, /^KVM not usable: .+; using TCG/);
  } else {
    assert.equal(accel.kvmUsable, true);
    assert.match(accel.reason, /booted and powered off under KVM/);
  }
});

test('a VM boots our kernel and initrd, the agent answers, stop leaves nothing', async (t) => {
  const dir = await scratch(t);
  const vm = await Vm.launch(spec(dir));
  t.after(() => vm.stop({ timeoutMs: 5_000 }));
  assert.deepEqual(await vm.qmp.execute('query-status'), { status: 'running', singlestep: false, running: true });

  const endpoint = vm.agentEndpoint();
  assert.equal(endpoint.kind, 'unix');
  const agent = await waitForAgent(endpoint, { timeoutMs: 30_000 });
  const v = await agent.version();
  const ki = await kernelInfo();
  assert.equal(v.kernelRelease, ki?.release);
  assert.ok(v.protocolVersion >= 1);
  await agent.ping();
  // A balloon (free page reporting) that keeps the guest's memory whole.
  assert.deepEqual(await vm.qmp.execute('query-balloon'), { actual: 256 * 1024 * 1024 });

  const exits: unknown[] = [];
  vm.on('exit', (e) => exits.push(e));
  await vm.stop({ graceful: () => agent.shutdown(), timeoutMs: 10_000 });
  agent.close();
  assert.equal(vm.currentState, 'stopped');
  assert.deepEqual(exits, [], 'a requested stop is not an unexpected exit');
  assert.deepEqual(await processesMentioning(dir), []);
  await assert.rejects(stat(join(dir, 'vm')), /ENOENT/);
});

test('kill -9 of QEMU is noticed and reported', async (t) => {
  const dir = await scratch(t);
  const vm = await Vm.launch(spec(dir));
  t.after(() => vm.stop({ timeoutMs: 5_000 }));
  const exited = new Promise<{ unexpected: boolean; reason: string }>((resolve) => vm.on('exit', resolve));
  process.kill(vm.pid, 'SIGKILL');
  const exit = await exited;
  assert.equal(exit.unexpected, true);
  assert.match(exit.reason, /killed or crashed/);
  assert.equal(vm.currentState, 'exited');
});

test('a VM outlives its QMP client and is attached again (a frakti restart)', async (t) => {
  const dir = await scratch(t);
  const first = await Vm.launch(spec(dir));
  t.after(() => first.stop({ timeoutMs: 5_000 }));
  // Drop the connection the way a dying frakti would; QEMU keeps running.
  first.qmp.close();
  const again = await Vm.attach(join(dir, 'vm'));
  assert.equal(again.pid, first.pid);
  assert.equal(((await again.qmp.execute('query-status')) as { status: string }).status, 'running');
  await again.stop({ timeoutMs: 5_000 });
  assert.deepEqual(await processesMentioning(dir), []);
});

test('with a share, virtiofsd serves it and goes with the VM; the share is unmounted', async (t) => {
  const dir = await scratch(t);
  const share = join(dir, 'share');
  await mkdir(share);
  const vm = await Vm.launch(spec(dir, { share: { source: share, tag: 'frakti' } }));
  t.after(() => vm.stop({ timeoutMs: 5_000 }));
  const running = await processesMentioning(share);
  assert.ok(running.some((p) => p.cmd.includes('virtiofsd')), 'virtiofsd runs');
  assert.deepEqual(await mountsUnder(share), [share], 'the share is a bind mount of itself');
  // The guest sees a virtio-fs PCI function (vendor 0x1af4, device 0x105a).
  const buses = (await vm.qmp.execute('query-pci')) as { devices: { id: { vendor: number; device: number }; pci_bridge?: { devices: { id: { vendor: number; device: number } }[] } }[] }[];
  const ids = buses.flatMap((b) => b.devices.flatMap((d) => [d.id, ...(d.pci_bridge?.devices.map((x) => x.id) ?? [])]));
  assert.ok(ids.some((id) => id.vendor === 0x1af4 && id.device === 0x105a), 'a virtio-fs device is on the PCI bus');
  await vm.stop({ timeoutMs: 10_000 });
  assert.deepEqual(await processesMentioning(dir), []);
  assert.deepEqual(await mountsUnder(share), []);
});

test('in a network namespace, the VM NIC sits on the tap with the MAC asked for', async (t) => {
  const dir = await scratch(t);
  const ns = `frakti-vmtest-${process.pid}`;
  await execa('ip', ['netns', 'add', ns]);
  t.after(() => execa('ip', ['netns', 'del', ns], { reject: false }));
  await execa('ip', ['-n', ns, 'tuntap', 'add', 'dev', 'tap0', 'mode', 'tap']);
  const vm = await Vm.launch(spec(dir, { netns: `/run/netns/${ns}`, nics: [{ tap: 'tap0', mac: '0A:58:0A:58:00:07' }] }));
  t.after(() => vm.stop({ timeoutMs: 5_000 }));
  const filters = (await vm.qmp.execute('query-rx-filter')) as { name: string; 'main-mac': string }[];
  assert.deepEqual(filters.map((f) => f['main-mac']), ['0a:58:0a:58:00:07']);
  // QEMU holds the tap open (a tun fd whose fdinfo names it).
  const fds = await readdir(`/proc/${vm.pid}/fdinfo`);
  const infos = await Promise.all(fds.map((fd) => readFile(`/proc/${vm.pid}/fdinfo/${fd}`, 'utf8').catch(() => '')));
  assert.ok(infos.some((i) => /^iff:\s+tap0$/m.test(i)), 'QEMU has tap0 open');
  await vm.stop({ timeoutMs: 5_000 });
  assert.deepEqual(await processesMentioning(dir), []);
});

test('QEMU waits for the caller\'s preparation; a failed one undoes the share and virtiofsd', async (t) => {
  const dir = await scratch(t);
  const share = join(dir, 'share');
  await mkdir(share);
  let release!: () => void;
  const prepared = new Promise<void>((r) => (release = r));
  const launching = Vm.launch(spec(dir, { share: { source: share, tag: 'frakti' } }), { beforeQemu: prepared });
  // Released first: a test failing while QEMU still waits must not leave the launch (and this hook) pending.
  t.after(async () => {
    release();
    await (await launching.catch(() => undefined))?.stop({ timeoutMs: 5_000 });
  });
  // virtiofsd is up and the share mounted, but no QEMU until the preparation is done.
  for (let i = 0; i < 200 && !(await processesMentioning(share)).some((p) => p.cmd.includes('virtiofsd')); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok((await processesMentioning(share)).some((p) => p.cmd.includes('virtiofsd')), 'virtiofsd runs');
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual((await processesMentioning(dir)).filter((p) => p.cmd.includes('qemu-system')), [], 'QEMU waits');
  release();
  const vm = await launching;
  assert.equal(((await vm.qmp.execute('query-status')) as { status: string }).status, 'running');
  await vm.stop({ timeoutMs: 10_000 });

  const failing = spec(dir, { id: 'test-vm-2', dir: join(dir, 'vm2'), share: { source: share, tag: 'frakti' } });
  await assert.rejects(Vm.launch(failing, { beforeQemu: Promise.reject(new Error('netns add failed')) }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'VM_LAUNCH');
    assert.match(err.message, /netns add failed/);
    return true;
  });
  assert.deepEqual(await processesMentioning(dir), [], 'virtiofsd went with the failed launch');
  assert.deepEqual(await mountsUnder(share), [], 'the share is unmounted');
  await assert.rejects(stat(join(dir, 'vm2')), /ENOENT/);
});

test('a launch that fails (missing kernel) says why and leaves nothing', async (t) => {
  const dir = await scratch(t);
  await assert.rejects(Vm.launch(spec(dir, { kernel: join(dir, 'no-such-vmlinux') })), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'VM_LAUNCH');
    assert.match(err.message, /no-such-vmlinux/);
    return true;
  });
  await assert.rejects(stat(join(dir, 'vm')), /ENOENT/);
  assert.deepEqual(await processesMentioning(dir), []);
});
