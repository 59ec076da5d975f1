// `frakti check` on this host: the report a node operator reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { frakti } from '../../helpers/cli-run.js';

test('check reports every item and the accelerator with its reason', async () => {
  const r = await frakti(['check', '--json']);
  const report = JSON.parse(r.stdout) as { ready: boolean; items: { name: string; level: string; detail: string }[] };
  assert.equal(r.exitCode, report.ready ? 0 : 1);
  const names = report.items.map((i) => i.name);
  for (const n of ['qemu', 'virtiofsd', 'firmware', 'guest kernel', 'initrd', 'accelerator', 'vhost-vsock', 'cgroups', 'cni plugins']) assert.ok(names.includes(n), n);
  const accel = report.items.find((i) => i.name === 'accelerator')!;
  assert.match(accel.detail, /^(kvm: a guest booted|tcg: KVM not usable: .+)/);
  const kernel = report.items.find((i) => i.name === 'guest kernel')!;
  assert.equal(kernel.level, 'ok');
  assert.match(kernel.detail, /config [0-9a-f]{16}/);
});

test('check --accel tcg skips the probe and says it was forced', async () => {
  const r = await frakti(['check', '--accel', 'tcg']);
  assert.match(r.stdout, /accelerator\s+tcg: forced by --accel tcg/);
});

test('check with a missing guest kernel fails and says what to do', async () => {
  const r = await frakti(['check', '--accel', 'tcg'], { env: { FRAKTI_GUEST_DIR: '/nonexistent' } });
  assert.equal(r.exitCode, 1);
  assert.match(r.stdout, /fail\s+guest kernel\s+\/nonexistent\/vmlinux not found/);
  assert.match(r.stdout, /frakti cannot run pods on this host/);
});

test('check names the OS-container runtime: none, or a socket that is not there (a warning: VM pods still run)', async () => {
  const none = await frakti(['check', '--accel', 'tcg', '--os-runtime-endpoint', '']);
  assert.match(none.stdout, /ok\s+os runtime\s+none configured: pods that need the host \(hostNetwork, privileged\) are refused/);
  const missing = await frakti(['check', '--accel', 'tcg', '--json', '--os-runtime-endpoint', 'unix:///nonexistent/containerd.sock']);
  const item = (JSON.parse(missing.stdout) as { items: { name: string; level: string; detail: string; fix?: string }[] }).items.find((i) => i.name === 'os runtime');
  assert.equal(item?.level, 'warn');
  assert.match(item!.detail, /no socket at \/nonexistent\/containerd\.sock/);
  assert.match(item!.fix ?? '', /apt-get install containerd runc/);
});
