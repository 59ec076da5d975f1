// frakti's root file system full when kubelet creates a container: the call
// is RESOURCE_EXHAUSTED saying so, nothing of the container is left (no
// record, writable layer, rootfs mount or name), the pod goes on, and once
// space is freed the same create succeeds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { status } from '@grpc/grpc-js';
import { busyboxFixture } from '../helpers/busybox-fixture.js';
import { daemonLeavingNothing } from '../helpers/e2e-daemon.js';
import { mountsUnder } from '../helpers/vmm-leaks.js';

let dir: string;
let image: string;

busyboxFixture('frakti-createfull-', (f) => {
  ({ dir, image } = f);
});

test('CreateContainer on a full disk: RESOURCE_EXHAUSTED with the reason, nothing left; after space is freed it succeeds', { timeout: 10 * 60_000 }, async (t) => {
  // frakti's root (records, writable layers, images) on a small tmpfs of its own.
  const root = join(dir, 'full', 'root');
  await mkdir(root, { recursive: true });
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', root]);
  const unmount = () => execa('umount', ['-l', root], { reject: false });
  // After the daemon's own clean-up (hooks run in the order they were added).
  const d = await daemonLeavingNothing(t, dir, 'full').catch(async (e: unknown) => {
    await unmount();
    throw e;
  });
  t.after(unmount);
  const rt = d.client.runtime;
  await d.client.image.PullImage!({ image: { image } }, { timeoutMs: 120_000 });
  const config = {
    metadata: { name: 'full', uid: 'uid-full', namespace: 'faults', attempt: 0 },
    log_directory: join(d.dir, 'logs'),
    linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
  };
  const { pod_sandbox_id: pod } = await rt.RunPodSandbox!({ config }, { timeoutMs: 120_000 });
  const ctrConfig = { metadata: { name: 'c', attempt: 0 }, image: { image }, command: ['sleep', '100000'], log_path: 'c.log' };

  // Everything but a few blocks taken.
  const filler = join(root, 'filler');
  const fs = await statfs(root);
  await execa('fallocate', ['-l', String(fs.bavail * fs.bsize), filler]);
  const foldersBefore = await readdir(join(d.root, 'containers')).catch(() => [] as string[]);
  const err = await rt.CreateContainer!({ pod_sandbox_id: pod, config: ctrConfig, sandbox_config: config }, { timeoutMs: 120_000 }).then(
    () => assert.fail('a create on a full disk succeeded'),
    (e: { code: number; details: string }) => e,
  );
  assert.equal(err.code, status.RESOURCE_EXHAUSTED, err.details);
  assert.match(err.details, /ENOSPC|no space left/i);
  assert.deepEqual((await rt.ListContainers!({})).containers, [], 'no container listed');
  assert.deepEqual(await readdir(join(d.root, 'containers')).catch(() => [] as string[]), foldersBefore, 'no container folder left');
  assert.deepEqual((await mountsUnder(join(d.state, 'pods', pod, 'shared'))).filter((m) => /rootfs|mounts/.test(m)), [], 'no rootfs mount left');
  assert.equal((await rt.PodSandboxStatus!({ pod_sandbox_id: pod })).status.state, 'SANDBOX_READY', 'the pod goes on');

  // Space again: the same create (same name: it was released) works.
  await rm(filler);
  const { container_id: c } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: ctrConfig, sandbox_config: config }, { timeoutMs: 120_000 });
  await rt.StartContainer!({ container_id: c });
  assert.equal((await rt.ExecSync!({ container_id: c, cmd: ['true'], timeout: '30' })).exit_code, 0);
});
