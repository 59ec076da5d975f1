// A pod's own processes failing under it: its QEMU killed, its virtiofsd
// killed, its guest stopped (QMP `stop`: the VM is there but answers
// nothing). The pod's containers must end EXITED with a reason and the pod
// NOT READY, or its calls must end with DEADLINE_EXCEEDED within their
// bound while another pod's calls go on as fast as before; Stop and Remove
// clean up all of it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { busyboxFixture } from '../helpers/busybox-fixture.js';
import { waitFor, type RunningDaemon } from '../helpers/cri-client.js';
import { daemonLeavingNothing, podWithContainer as podWithPod } from '../helpers/e2e-daemon.js';
import { frakti } from '../helpers/cli-run.js';
import { isAlive } from '../../src/vmm/process-watch.js';

let dir: string;
let image: string;

busyboxFixture('frakti-vmfaults-', (f) => {
  ({ dir, image } = f);
});

const podWithContainer = (d: RunningDaemon, name: string) => podWithPod(d, image, name, 'faults');

const pidIn = async (d: RunningDaemon, pod: string, file: string) => Number((await readFile(join(d.state, 'vm', pod.slice(0, 16), file), 'utf8')).trim());

async function expectGone(d: RunningDaemon, pod: string, ctr: string, why: RegExp) {
  const rt = d.client.runtime;
  await waitFor('the container to be EXITED', async () => (await rt.ContainerStatus!({ container_id: ctr })).status.state === 'CONTAINER_EXITED', 20_000, 200).catch((err: Error) => {
    // What the daemon saw of its VM, for whoever reads the failure.
    const seen = d.stderr().split('\n').filter((l) => /vmm|VM |QMP|virtiofsd|pod VM/.test(l)).slice(-15).join('\n');
    throw new Error(`${err.message}; the daemon's log:\n${seen}`);
  });
  const c = (await rt.ContainerStatus!({ container_id: ctr })).status;
  assert.equal(c.reason, 'Error');
  assert.match(c.message, why);
  const p = (await rt.PodSandboxStatus!({ pod_sandbox_id: pod })).status;
  assert.equal(p.state, 'SANDBOX_NOTREADY');
  await rt.StopPodSandbox!({ pod_sandbox_id: pod }, { timeoutMs: 60_000 });
  await rt.RemovePodSandbox!({ pod_sandbox_id: pod }, { timeoutMs: 60_000 });
  assert.equal((await rt.ListPodSandbox!({ filter: { id: pod } })).items.length, 0);
}

test('QEMU killed: its container EXITED with the reason, the pod NOT READY, Stop and Remove clean up', async (t) => {
  const d = await daemonLeavingNothing(t, dir, 'qemu');
  await d.client.image.PullImage!({ image: { image } }, { timeoutMs: 120_000 });
  const { pod, ctr } = await podWithContainer(d, 'qemu');
  process.kill(await pidIn(d, pod, 'qemu.pid'), 'SIGKILL');
  await expectGone(d, pod, ctr, /the pod VM exited/);
});

test('virtiofsd killed: the VM is not left hanging on its file system; container EXITED, pod NOT READY, clean up', async (t) => {
  const d = await daemonLeavingNothing(t, dir, 'virtiofsd');
  await d.client.image.PullImage!({ image: { image } }, { timeoutMs: 120_000 });
  const { pod, ctr } = await podWithContainer(d, 'fs');
  const qemu = await pidIn(d, pod, 'qemu.pid');
  process.kill(await pidIn(d, pod, 'virtiofsd.pid'), 'SIGKILL');
  await expectGone(d, pod, ctr, /virtiofsd exited/);
  assert.equal(await isAlive(qemu), false, 'QEMU is gone');
});

test('a guest that stops answering: its calls end DEADLINE_EXCEEDED within their bound, another pod is not slowed, Stop and Remove clean up', async (t) => {
  const d = await daemonLeavingNothing(t, dir, 'stopped');
  await d.client.image.PullImage!({ image: { image } }, { timeoutMs: 120_000 });
  const rt = d.client.runtime;
  const hung = await podWithContainer(d, 'hung');
  const fine = await podWithContainer(d, 'fine');
  const exec = (ctr: string) => rt.ExecSync!({ container_id: ctr, cmd: ['true'], timeout: '3' });
  let t0 = Date.now();
  await exec(fine.ctr);
  const before = Date.now() - t0;

  const paused = await frakti(['qmp', hung.pod, 'stop', '--state', d.state]);
  assert.equal(paused.exitCode, 0, paused.stderr);
  t0 = Date.now();
  const hungCall = exec(hung.ctr).then(
    () => assert.fail('an exec in a stopped guest answered'),
    (err: unknown) => ({ err, ms: Date.now() - t0 }),
  );
  // Meanwhile the other pod answers as before.
  const t1 = Date.now();
  await exec(fine.ctr);
  const during = Date.now() - t1;
  const { err, ms } = await hungCall;
  assert.equal((err as { code?: number }).code, status.DEADLINE_EXCEEDED, String(err));
  assert.ok(ms < 3_000 + 2_000, `the exec's 3 s bound held (${ms} ms)`);
  t.diagnostic(`exec in the other pod: ${before} ms before, ${during} ms while the stopped guest's call waited; the stopped guest's call ended after ${ms} ms`);
  assert.ok(during < Math.max(2_000, before * 4), `the other pod was slowed: ${during} ms against ${before} ms`);

  // ContainerStatus and the pod's status come from frakti's records: they answer.
  assert.equal((await rt.ContainerStatus!({ container_id: hung.ctr })).status.state, 'CONTAINER_RUNNING');
  t0 = Date.now();
  await rt.StopPodSandbox!({ pod_sandbox_id: hung.pod }, { timeoutMs: 60_000 });
  await rt.RemovePodSandbox!({ pod_sandbox_id: hung.pod }, { timeoutMs: 60_000 });
  t.diagnostic(`stop and remove of the stopped guest's pod: ${Date.now() - t0} ms`);
  assert.equal((await rt.ListPodSandbox!({})).items.length, 1);
});

test('the guest\'s spare container process killed before a container takes it: the next container starts without it, and a new spare serves the one after', { timeout: 5 * 60_000 }, async (t) => {
  const d = await daemonLeavingNothing(t, dir, 'spare');
  const rt = d.client.runtime;
  await d.client.image.PullImage!({ image: { image } }, { timeoutMs: 120_000 });
  // kubelet's shape: each container its own PID namespace (only such a container takes a spare).
  const linux = { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } };
  const config = { metadata: { name: 'spare', uid: 'uid-spare', namespace: 'faults', attempt: 0 }, log_directory: join(d.dir, 'logs', 'spare'), linux };
  const { pod_sandbox_id: pod } = await rt.RunPodSandbox!({ config }, { timeoutMs: 120_000 });
  const container = async (name: string, extra: object = {}) => {
    const { container_id: id } = await rt.CreateContainer!({
      pod_sandbox_id: pod,
      config: { metadata: { name, attempt: 0 }, image: { image }, command: ['sleep', '100000'], log_path: `${name}.log`, linux: { ...linux, ...extra } },
      sandbox_config: config,
    }, { timeoutMs: 120_000 });
    await rt.StartContainer!({ container_id: id });
    return id;
  };
  const sh = async (id: string, script: string) => {
    const r = await rt.ExecSync!({ container_id: id, cmd: ['sh', '-c', script], timeout: '30' });
    assert.equal(r.exit_code, 0, Buffer.from(r.stderr).toString());
    return Buffer.from(r.stdout).toString().trim();
  };
  // The init's cgroup v2 under frakti/ (the file has the devices cgroup's line too).
  const initCgroup = async (id: string) => /^0::\/frakti\/(\S+)$/m.exec(await sh(id, 'cat /proc/1/cgroup'))?.[1] ?? '';

  // A container allowed to mount the guest's cgroup tree: from there it sees
  // (and can kill) the spare the agent keeps while the guest is idle.
  const killer = await container('killer', { security_context: { ...linux.security_context, capabilities: { add_capabilities: ['SYS_ADMIN'] } } });
  await sh(killer, 'mkdir -p /tmp/cg && mount -t cgroup2 none /tmp/cg');
  // Its own cgroup: a spare's if one was ready at its create (the guest is rarely idle between boot and the first create).
  const own = await initCgroup(killer);
  assert.notEqual(own, '');
  const spares = async () => (await sh(killer, 'ls /tmp/cg/frakti')).split(/\s+/).filter((n) => /^_spare-\d+$/.test(n) && n !== own);
  const untaken = async () => (await spares())[0] ?? '';
  let spare = '';
  await waitFor('a spare made while the guest is idle', async () => (spare = await untaken()) !== '', 30_000, 200);
  await sh(killer, `echo 1 > /tmp/cg/frakti/${spare}/cgroup.kill`);
  // The agent reaps it and removes its cgroup.
  await waitFor(`${spare} gone`, async () => !(await spares()).includes(spare), 30_000, 200);

  // No spare: the next container is forked as before, with a cgroup named by its id, and runs.
  const second = await container('second');
  assert.equal((await rt.ContainerStatus!({ container_id: second })).status.state, 'CONTAINER_RUNNING');
  const secondCg = await initCgroup(second);
  assert.doesNotMatch(secondCg, /^_spare-/, 'the second container was forked, not a spare');
  assert.equal(await sh(second, 'echo ok'), 'ok');
  // After that create a new spare is made, and the container after takes it.
  let next = '';
  await waitFor('a new spare', async () => (next = await untaken()) !== '' && next !== spare, 30_000, 200);
  const third = await container('third');
  assert.equal(await initCgroup(third), next, 'the third container took the new spare');
  assert.equal(await sh(third, 'echo ok'), 'ok');
});
