import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateVmSpec, type VmSpec } from '../../../src/vmm/vm-spec.js';
import { qemuArgs, AGENT_SERIAL_PORT_NAME } from '../../../src/vmm/qemu-args.js';
import { vmPaths } from '../../../src/vmm/vm-paths.js';

const base: VmSpec = {
  id: 'pod-1',
  dir: '/run/frakti/vm/pod-1',
  cpus: 1,
  memoryMiB: 256,
  kernel: '/k/vmlinux',
  initrd: '/k/initrd.img',
  accel: 'tcg',
  channel: { kind: 'serial' },
};

function argValue(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
}

test('defaults are filled in and the command line boots at once, sandboxed, with a pid file', () => {
  const spec = validateVmSpec(base);
  assert.equal(spec.maxCpus, 1);
  assert.equal(spec.pcieRootPorts, 2);
  const args = qemuArgs(spec, vmPaths(spec.dir));
  assert.ok(!args.includes('-S'), 'no -S: the guest boots while QMP connects');
  assert.deepEqual(argValue(args, '-pidfile'), ['/run/frakti/vm/pod-1/qemu.pid']);
  assert.ok(args.includes('-nodefaults') && args.includes('-no-user-config'));
  assert.match(argValue(args, '-sandbox')[0]!, /^on,/);
  assert.deepEqual(argValue(args, '-machine'), ['q35,usb=off,vmport=off,smbus=off,sata=off']);
  assert.deepEqual(argValue(args, '-accel'), ['tcg,tb-size=10']);
  assert.deepEqual(argValue(qemuArgs(validateVmSpec({ ...base, tcgCacheMiB: 12 }), vmPaths(spec.dir)), '-accel'), ['tcg,tb-size=12']);
  assert.deepEqual(argValue(args, '-cpu'), ['max']);
  assert.deepEqual(argValue(args, '-bios'), ['/usr/share/qemu/qboot.rom']);
  assert.ok(argValue(args, '-device').some((d) => d.includes(`name=${AGENT_SERIAL_PORT_NAME}`)));
  assert.equal(argValue(args, '-device').filter((d) => d.startsWith('pcie-root-port')).length, 2);
  // The guest hands freed RAM back: a balloon that reports free pages.
  assert.ok(argValue(args, '-device').some((d) => d.startsWith('virtio-balloon-pci,') && d.includes('free-page-reporting=on')));
  assert.deepEqual(argValue(args, '-qmp'), ['unix:/run/frakti/vm/pod-1/qmp.sock,server=on,wait=off', 'unix:/run/frakti/vm/pod-1/qmp-debug.sock,server=on,wait=off']);
});

test('kvm uses the host CPU; vsock, share and hotplug ceilings appear', () => {
  const spec = validateVmSpec({ ...base, accel: 'kvm', channel: { kind: 'vsock', cid: 7 }, maxCpus: 4, maxMemoryMiB: 1024, share: { source: '/srv/share', tag: 'shared' } });
  const args = qemuArgs(spec, vmPaths(spec.dir));
  assert.deepEqual(argValue(args, '-cpu'), ['host']);
  assert.deepEqual(argValue(args, '-accel'), ['kvm']);
  assert.deepEqual(argValue(args, '-smp'), ['1,maxcpus=4']);
  assert.deepEqual(argValue(args, '-m'), ['256M,slots=8,maxmem=1024M']);
  assert.ok(argValue(args, '-device').includes('vhost-vsock-pci,id=vsock0,guest-cid=7,disable-legacy=on'));
  assert.ok(argValue(args, '-device').some((d) => d.startsWith('vhost-user-fs-pci') && d.includes('tag=shared')));
  assert.ok(argValue(args, '-object').some((o) => o.startsWith('memory-backend-memfd') && o.includes('share=on')));
});

test('bad specs are refused with the field named', () => {
  const cases: [Partial<VmSpec> & Record<string, unknown>, RegExp][] = [
    [{ cpus: 0 }, /cpus must be an integer/],
    [{ memoryMiB: 16 }, /memoryMiB must be an integer in 64/],
    [{ maxMemoryMiB: 128 }, /maxMemoryMiB/],
    [{ id: 'a b' }, /id must match/],
    [{ kernel: 'relative/vmlinux' }, /kernel must be an absolute path/],
    [{ initrd: '/a,b' }, /initrd must be an absolute path without commas/],
    [{ accel: 'hvf' as never }, /accel must be kvm or tcg/],
    [{ channel: { kind: 'vsock', cid: 2 } }, /channel.cid/],
    [{ share: { source: '/x', tag: 'bad tag' } }, /share.tag/],
    [{ kernelArgs: ['a b'] }, /kernelArgs/],
    [{ memroyMiB: 5 }, /unknown key 'memroyMiB'/],
    [{ tcgCacheMiB: 4 }, /tcgCacheMiB must be an integer in 8\.\.1024/],
  ];
  for (const [patch, re] of cases) {
    assert.throws(() => validateVmSpec({ ...base, ...patch } as VmSpec), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'VM_SPEC_INVALID');
      assert.match(err.message, re);
      return true;
    });
  }
});
