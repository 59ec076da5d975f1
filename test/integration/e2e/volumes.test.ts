// Volumes as kubelet hands them over: a raw block device (CRI
// `devices`, volumeMode: Block) and a mount whose host path is a block
// device, hot-plugged into the pod's VM as virtio-blk. Real loop devices
// (a file, losetup, mkfs.ext4), real QEMU; each test detaches its loop
// devices and removes its files, also when it fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, readdir, readFile, rename, rm, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { status } from '@grpc/grpc-js';
import { busyboxFixture } from '../../helpers/busybox-fixture.js';
import { grpcError, type RunningDaemon } from '../../helpers/cri-client.js';
import { daemonLeavingNothing } from '../../helpers/e2e-daemon.js';
import { frakti } from '../../helpers/cli-run.js';

let dir: string;
let image: string;

busyboxFixture('frakti-blk-', (f) => {
  ({ dir, image } = f);
});

/** A loop device over a new file of `mib` MiB (ext4 on it when asked); detached after the test. */
async function loopDevice(t: { after(fn: () => unknown): void }, name: string, mib: number, ext4 = false): Promise<{ dev: string; file: string }> {
  const file = join(dir, `${name}.img`);
  await execa('truncate', ['-s', `${mib}M`, file]);
  if (ext4) await execa('mkfs.ext4', ['-q', '-F', file]);
  const dev = (await execa('losetup', ['-f', '--show', file])).stdout.trim();
  t.after(async () => {
    await execa('losetup', ['-d', dev], { reject: false });
    await rm(file, { force: true });
  });
  return { dev, file };
}

function podConfig(name: string, logDir: string) {
  return {
    metadata: { name, uid: `uid-${name}`, namespace: 'default', attempt: 0 },
    hostname: name,
    log_directory: logDir,
    linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
  };
}

async function podWith(d: RunningDaemon, name: string) {
  await d.client.image.PullImage!({ image: { image } }, { timeoutMs: 120_000 });
  const config = podConfig(name, join(d.dir, 'logs', name));
  const { pod_sandbox_id: pod } = await d.client.runtime.RunPodSandbox!({ config }, { timeoutMs: 120_000 });
  return { pod, config };
}

async function exec(d: RunningDaemon, ctr: string, script: string) {
  const r = await d.client.runtime.ExecSync!({ container_id: ctr, cmd: ['sh', '-c', script], timeout: '30' });
  return { out: Buffer.from(r.stdout).toString(), err: Buffer.from(r.stderr).toString(), code: r.exit_code as number };
}

/** The VM's block devices that frakti plugged (QMP query-block, as an operator asks). */
async function pluggedDisks(d: RunningDaemon, pod: string): Promise<string[]> {
  const r = await frakti(['qmp', pod, 'query-block', '--state', d.state]);
  assert.equal(r.exitCode, 0, r.stderr);
  return (JSON.parse(r.stdout) as { qdev?: string }[]).map((b) => b.qdev ?? '').filter((q) => q.includes('blk-'));
}

const PATTERN = 'frakti-block-pattern-0123456789';

test('a raw block device (CRI devices) is the container\'s: written inside, read on the host; without w it is read-only; unplugged with the container', async (t) => {
  const d = await daemonLeavingNothing(t, dir, 'raw');
  const rw = await loopDevice(t, 'rw', 16);
  const ro = await loopDevice(t, 'ro', 16);
  const { pod, config } = await podWith(d, 'raw');
  const rt = d.client.runtime;
  const { container_id: c } = await rt.CreateContainer!({
    pod_sandbox_id: pod,
    config: {
      metadata: { name: 'disk', attempt: 0 },
      image: { image },
      command: ['sleep', '100000'],
      devices: [
        { container_path: '/dev/xvda', host_path: rw.dev, permissions: 'rwm' },
        { container_path: '/dev/xvdb', host_path: ro.dev, permissions: 'r' },
        { container_path: '/dev/null', host_path: '/dev/null', permissions: 'rwm' },
      ],
    },
    sandbox_config: config,
  }, { timeoutMs: 120_000 });
  await rt.StartContainer!({ container_id: c });
  assert.equal((await pluggedDisks(d, pod)).length, 2);
  const w = await exec(d, c, `ls -l /dev/xvda /dev/xvdb && printf ${PATTERN} > /dev/xvda && echo written`);
  assert.equal(w.code, 0, w.err);
  assert.match(w.out, /^b.* \/dev\/xvda$/m, 'a block device node');
  assert.match(w.out, /written/);
  const refused = await exec(d, c, `printf x > /dev/xvdb`);
  assert.notEqual(refused.code, 0, 'a device without w is read-only');
  assert.match(refused.err, /Operation not permitted/, 'refused by the device cgroup, before QEMU');

  // Another container of the pod has CAP_MKNOD but not the disk: its device cgroup refuses it.
  const nums = (await exec(d, c, 'stat -c "%t %T" /dev/xvda')).out.trim().split(' ').map((h) => parseInt(h, 16));
  const { container_id: other } = await rt.CreateContainer!({
    pod_sandbox_id: pod,
    config: { metadata: { name: 'other', attempt: 0 }, image: { image }, command: ['sleep', '100000'] },
    sandbox_config: config,
  }, { timeoutMs: 120_000 });
  await rt.StartContainer!({ container_id: other });
  const stolen = await exec(d, other, `mknod /dev/stolen b ${nums[0]} ${nums[1]} && head -c 8 /dev/stolen`);
  assert.notEqual(stolen.code, 0, 'a disk another container was given is not readable');
  assert.match(stolen.err, /Operation not permitted/);
  await rt.StopContainer!({ container_id: other, timeout: '1' });
  await rt.RemoveContainer!({ container_id: other }, { timeoutMs: 60_000 });
  const readBack = await exec(d, c, 'cat /dev/xvdb > /dev/null && echo readable');
  assert.match(readBack.out, /readable/);

  await rt.StopContainer!({ container_id: c, timeout: '1' });
  await rt.RemoveContainer!({ container_id: c }, { timeoutMs: 60_000 });
  assert.deepEqual(await pluggedDisks(d, pod), [], 'the disks left QEMU with the container');
  const fh = await open(rw.dev, 'r');
  try {
    const buf = Buffer.alloc(PATTERN.length);
    await fh.read(buf, 0, buf.length, 0);
    assert.equal(buf.toString(), PATTERN, 'the host reads what the container wrote');
  } finally {
    await fh.close();
  }
});

test('a block device given as a mount: the container\'s files are on the host\'s filesystem after the pod is gone', async (t) => {
  const d = await daemonLeavingNothing(t, dir, 'fs');
  const disk = await loopDevice(t, 'fs', 32, true);
  const { pod, config } = await podWith(d, 'fs');
  const rt = d.client.runtime;
  const { container_id: c } = await rt.CreateContainer!({
    pod_sandbox_id: pod,
    config: { metadata: { name: 'writer', attempt: 0 }, image: { image }, command: ['sleep', '100000'], mounts: [{ container_path: '/data', host_path: disk.dev, readonly: false }] },
    sandbox_config: config,
  }, { timeoutMs: 120_000 });
  await rt.StartContainer!({ container_id: c });
  const w = await exec(d, c, 'mount | grep " /data " && echo kept > /data/file && echo ok');
  assert.equal(w.code, 0, w.err);
  assert.match(w.out, /ext4/);
  await rt.StopPodSandbox!({ pod_sandbox_id: pod }, { timeoutMs: 60_000 });
  await rt.RemovePodSandbox!({ pod_sandbox_id: pod }, { timeoutMs: 60_000 });
  const mnt = join(dir, 'fs-mnt');
  await mkdir(mnt, { recursive: true });
  await execa('mount', ['-o', 'ro', disk.dev, mnt]);
  try {
    assert.equal(await readFile(join(mnt, 'file'), 'utf8'), 'kept\n');
  } finally {
    await execa('umount', [mnt]);
  }
});

test('bad devices are refused saying why, and leave no disk in QEMU', async (t) => {
  const d = await daemonLeavingNothing(t, dir, 'bad');
  const { pod, config } = await podWith(d, 'bad');
  const create = (devices: unknown[], mounts: unknown[] = []) =>
    grpcError(d.client.runtime.CreateContainer!({ pod_sandbox_id: pod, config: { metadata: { name: `c${Math.random()}`, attempt: 0 }, image: { image }, command: ['true'], devices, mounts }, sandbox_config: config }));
  const cases: [unknown[], unknown[], number, RegExp][] = [
    [[{ container_path: '/dev/x', host_path: '/no/such/dev', permissions: 'rw' }], [], status.INVALID_ARGUMENT, /host device \/no\/such\/dev cannot be used/],
    [[{ container_path: '/dev/x', host_path: '/dev/loop-control', permissions: 'rw' }], [], status.INVALID_ARGUMENT, /character device of the host/],
    [[{ container_path: '/dev/x', host_path: join(dir, 'img'), permissions: 'rw' }], [], status.INVALID_ARGUMENT, /is not a device/],
    [[{ container_path: '/dev/x', host_path: '/dev/null', permissions: 'rwx' }], [], status.INVALID_ARGUMENT, /permissions "rwx" are not of r, w, m/],
    [[], [{ container_path: '/m', host_path: '/tmp', propagation: 'PROPAGATION_BIDIRECTIONAL' }], status.INVALID_ARGUMENT, /bidirectional propagation cannot cross a VM/],
  ];
  for (const [devices, mounts, code, msg] of cases) {
    const e = await create(devices, mounts);
    assert.equal(e.code, code, e.details);
    assert.match(e.details, msg);
  }
  // More disks than a pod holds: refused before any is plugged.
  const many = [];
  for (let i = 0; i < 5; i++) many.push({ container_path: `/dev/x${i}`, host_path: (await loopDevice(t, `many${i}`, 4)).dev, permissions: 'rw' });
  const tooMany = await create(many);
  assert.equal(tooMany.code, status.RESOURCE_EXHAUSTED);
  assert.match(tooMany.details, /at most 4 block devices/);
  assert.deepEqual(await pluggedDisks(d, pod), []);
  assert.deepEqual((await d.client.runtime.ListContainers!({})).containers, []);
});

test('a memory-backed emptyDir is a tmpfs in the guest, shared by the pod\'s containers, its size limit held; so is /dev/shm', async (t) => {
  const d = await daemonLeavingNothing(t, dir, 'mem');
  // What kubelet makes for `emptyDir: {medium: Memory, sizeLimit: 8Mi}`.
  const vol = join(d.dir, 'kubelet/pods/uid-mem/volumes/kubernetes.io~empty-dir/cache');
  await mkdir(vol, { recursive: true });
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', vol]);
  t.after(() => execa('umount', ['-l', vol], { reject: false }));
  const { pod, config } = await podWith(d, 'mem');
  const rt = d.client.runtime;
  const ctr = async (name: string) => {
    const { container_id: c } = await rt.CreateContainer!({
      pod_sandbox_id: pod,
      config: { metadata: { name, attempt: 0 }, image: { image }, command: ['sleep', '100000'], mounts: [{ container_path: '/cache', host_path: vol, readonly: false }] },
      sandbox_config: config,
    }, { timeoutMs: 120_000 });
    await rt.StartContainer!({ container_id: c });
    return c;
  };
  const [a, b] = [await ctr('a'), await ctr('b')];
  const m = await exec(d, a, 'mount | grep " /cache "');
  assert.match(m.out, /^tmpfs on \/cache type tmpfs/m, 'a tmpfs of the guest, not the virtio-fs share');
  assert.equal((await exec(d, a, 'echo from a > /cache/note')).code, 0);
  assert.equal((await exec(d, b, 'cat /cache/note')).out, 'from a\n', 'the second container sees the first one\'s file');
  assert.deepEqual(await readdir(vol), [], 'the pages are the guest\'s: nothing on the host');
  // /dev/shm is the pod's, as with containerd: shared by its containers.
  assert.equal((await exec(d, a, 'echo shared memory > /dev/shm/seg')).code, 0);
  assert.equal((await exec(d, b, 'cat /dev/shm/seg')).out, 'shared memory\n');
  const full = await exec(d, b, 'cat /dev/zero > /cache/big; echo "exit $?"; stat -c %s /cache/big');
  assert.match(full.out, /exit [1-9]/, 'writing past the limit fails');
  const size = Number(full.out.trim().split('\n').at(-1));
  assert.ok(size > 4 * 1024 * 1024 && size <= 8 * 1024 * 1024, `the file stopped at the 8 MiB limit (${size} bytes)`);
  assert.match(full.err, /No space left on device/);
});

test('a ConfigMap-style ..data swap on the host reaches the running container within a bound; HOST_TO_CONTAINER shows a later host mount, PRIVATE does not', async (t) => {
  const d = await daemonLeavingNothing(t, dir, 'live');
  // kubelet's atomic writer layout: key -> ..data/key, ..data -> ..TIMESTAMP.
  const cm = join(d.dir, 'kubelet/pods/uid-live/volumes/kubernetes.io~configmap/cfg');
  await mkdir(join(cm, '..2026_01'), { recursive: true });
  await writeFile(join(cm, '..2026_01/key'), 'v1');
  await symlink('..2026_01', join(cm, '..data'));
  await symlink('..data/key', join(cm, 'key'));
  // A host folder that is a shared mount, as kubelet keeps /var/lib/kubelet.
  const shared = join(d.dir, 'kubelet/plugins/shared');
  await mkdir(shared, { recursive: true });
  await execa('mount', ['--bind', shared, shared]);
  await execa('mount', ['--make-rshared', shared]);
  t.after(() => execa('umount', ['-R', '-l', shared], { reject: false }));
  const { pod, config } = await podWith(d, 'live');
  const rt = d.client.runtime;
  const { container_id: c } = await rt.CreateContainer!({
    pod_sandbox_id: pod,
    config: {
      metadata: { name: 'reader', attempt: 0 },
      image: { image },
      command: ['sleep', '100000'],
      mounts: [
        { container_path: '/etc/config', host_path: cm, readonly: true },
        { container_path: '/plugins', host_path: shared, readonly: false, propagation: 'PROPAGATION_HOST_TO_CONTAINER' },
        { container_path: '/private', host_path: shared, readonly: false, propagation: 'PROPAGATION_PRIVATE' },
      ],
    },
    sandbox_config: config,
  }, { timeoutMs: 120_000 });
  await rt.StartContainer!({ container_id: c });
  assert.equal((await exec(d, c, 'cat /etc/config/key')).out, 'v1');

  // The swap, as kubelet does it.
  await mkdir(join(cm, '..2026_02'));
  await writeFile(join(cm, '..2026_02/key'), 'v2');
  await symlink('..2026_02', join(cm, '..data_tmp'));
  const t0 = Date.now();
  await rename(join(cm, '..data_tmp'), join(cm, '..data'));
  await rm(join(cm, '..2026_01'), { recursive: true });
  let seen = '';
  while (Date.now() - t0 < 10_000 && seen !== 'v2') seen = (await exec(d, c, 'cat /etc/config/key')).out;
  const ms = Date.now() - t0;
  t.diagnostic(`ConfigMap update seen in the container after ${ms} ms`);
  assert.equal(seen, 'v2', `the update did not reach the container within 10 s`);

  // A mount made on the host after the container started shows inside.
  await mkdir(join(shared, 'later'));
  await execa('mount', ['-t', 'tmpfs', 'tmpfs', join(shared, 'later')]);
  await writeFile(join(shared, 'later/marker'), 'mounted later\n');
  let marker = '';
  for (let i = 0; i < 20 && marker !== 'mounted later\n'; i++) {
    marker = (await exec(d, c, 'cat /plugins/later/marker 2>/dev/null')).out;
    if (marker !== 'mounted later\n') await new Promise((r) => setTimeout(r, 250));
  }
  assert.equal(marker, 'mounted later\n');
  // The same folder mounted PRIVATE: the later mount stays out (its mount point is an empty folder).
  const priv = await exec(d, c, 'ls -A /private/later; cat /private/later/marker 2>&1');
  assert.match(priv.out, /No such file or directory/, 'a PRIVATE mount does not receive later host mounts');
  const st = await rt.ContainerStatus!({ container_id: c });
  const propagation = Object.fromEntries(st.status!.mounts.map((m: { container_path: string; propagation: string }) => [m.container_path, m.propagation]));
  assert.deepEqual(propagation, { '/etc/config': 'PROPAGATION_PRIVATE', '/plugins': 'PROPAGATION_HOST_TO_CONTAINER', '/private': 'PROPAGATION_PRIVATE' });
});
