// Mixed runtimes against a real containerd with runc: pods that need the
// host go to containerd behind frakti's one socket, every later call follows
// its pod, lists merge, images pulled through frakti serve both kinds, and
// containerd gone leaves VM pods running.
/* eslint-disable @typescript-eslint/no-explicit-any */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { buildBusyboxImage, pushImage, startRegistry, type Registry } from '../../helpers/image-registry.js';
import { grpcError, startDaemon, waitFor, type RunningDaemon } from '../../helpers/cri-client.js';
import { daemonLeavingNothing } from '../../helpers/e2e-daemon.js';
import { startContainerd, type Containerd } from '../../helpers/containerd.js';
import { frakti } from '../../helpers/cli-run.js';
import { readAll, spdyConnect } from '../../helpers/spdy-client.js';

let dir: string;
let reg: Registry;
let image: string;
let pause: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'frakti-mixed-'));
  reg = await startRegistry();
  image = `${reg.host}/busybox:latest`;
  pause = `${reg.host}/pause:latest`;
  await pushImage((await buildBusyboxImage(join(dir, 'busybox'))).layout, image);
  // containerd's sandbox container runs the image's command until the pod stops.
  await pushImage((await buildBusyboxImage(join(dir, 'pause'), { Cmd: ['sleep', '2147483647'] })).layout, pause);
});

after(async () => {
  await reg?.stop();
  await rm(dir, { recursive: true, force: true });
});

interface Mixed {
  d: RunningDaemon;
  ctrd: Containerd;
}

/** frakti pointed at a containerd of the test's own, sharing frakti's CNI config; both gone after the test. */
async function mixed(t: { after(fn: () => unknown): void }, name: string, registries: string[] = []): Promise<Mixed> {
  const ctrdDir = join(dir, `${name}-containerd`);
  const endpoint = `unix://${join(ctrdDir, 'containerd.sock')}`;
  const d = await daemonLeavingNothing(t, dir, name, ['--os-runtime-endpoint', endpoint]);
  const ctrd = await startContainerd(ctrdDir, { registries: [reg.host, ...registries], sandboxImage: pause, cniConfDir: join(d.dir, 'cni') });
  // After the daemon's own hook (hooks run in order), which removes every pod through frakti.
  t.after(() => ctrd.stop());
  return { d, ctrd };
}

/** As kubelet builds it: a pod on the node's network gets no hostname of its own. */
function podConfig(name: string, logDir: string, extra: { linux?: any; [k: string]: unknown } = {}) {
  return {
    metadata: { name, uid: `uid-${name}`, namespace: 'default', attempt: 0 },
    hostname: extra.linux?.security_context?.namespace_options?.network === 'NODE' ? '' : name,
    log_directory: logDir,
    labels: { app: name },
    linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
    ...extra,
  };
}

const hostNetwork = { linux: { security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } } } };

function containerConfig(name: string, command: string[], extra: Record<string, unknown> = {}) {
  return { metadata: { name, attempt: 0 }, image: { image }, command, log_path: `${name}/0.log`, ...extra };
}

async function runPodWithContainer(m: Mixed, name: string, extra: Parameters<typeof podConfig>[2], command: string[], cextra: Record<string, unknown> = {}) {
  const rt = m.d.client.runtime;
  const config = podConfig(name, join(m.d.dir, 'logs', name), extra);
  const { pod_sandbox_id: pod } = await rt.RunPodSandbox!({ config }, { timeoutMs: 120_000 });
  const { container_id: ctr } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: containerConfig(name, command, cextra), sandbox_config: config }, { timeoutMs: 120_000 });
  await rt.StartContainer!({ container_id: ctr }, { timeoutMs: 120_000 });
  return { pod, ctr, logPath: join(m.d.dir, 'logs', name, name, '0.log') };
}

async function exec(m: Mixed, ctr: string, cmd: string[]) {
  const r = await m.d.client.runtime.ExecSync!({ container_id: ctr, cmd, timeout: '30' });
  return { out: Buffer.from(r.stdout).toString(), err: Buffer.from(r.stderr).toString(), code: r.exit_code as number };
}

const ids = (xs: { id: string }[]) => xs.map((x) => x.id).sort();

test('a hostNetwork pod runs in containerd next to a VM pod: every call follows its pod, lists merge', async (t) => {
  const m = await mixed(t, 'side');
  const rt = m.d.client.runtime;
  await m.d.client.image.PullImage!({ image: { image } }, { timeoutMs: 120_000 });
  // The pull reached both stores.
  assert.ok((await m.ctrd.client.image.ImageStatus!({ image: { image } })).image, 'containerd has the image frakti pulled');

  const host = await runPodWithContainer(m, 'hostpod', hostNetwork, ['sh', '-c', 'echo from the host pod; sleep 100000']);
  const vm = await runPodWithContainer(m, 'vmpod', {}, ['sh', '-c', 'echo from the vm pod; sleep 100000']);

  // Ownership: containerd holds the host pod, frakti's VM runtime does not.
  assert.deepEqual(ids((await m.ctrd.client.runtime.ListPodSandbox!({})).items), [host.pod]);
  assert.equal((await rt.PodSandboxStatus!({ pod_sandbox_id: host.pod })).status.state, 'SANDBOX_READY');
  assert.equal((await rt.PodSandboxStatus!({ pod_sandbox_id: vm.pod })).status.state, 'SANDBOX_READY');

  // The host pod has the node's network (its UTS name too); the VM pod its own.
  assert.equal((await exec(m, host.ctr, ['hostname'])).out.trim(), hostname());
  assert.equal((await exec(m, vm.ctr, ['hostname'])).out.trim(), 'vmpod');
  const links = (await exec(m, host.ctr, ['cat', '/proc/net/dev'])).out;
  const bridge = JSON.parse(await readFile(join(m.d.dir, 'cni', '10-test.conflist'), 'utf8')).plugins[0].bridge as string;
  assert.ok(links.includes(`${bridge}:`), `the host pod sees the node's interfaces (${bridge})`);

  // Logs in the CRI format, written by each runtime.
  for (const [p, text] of [[host.logPath, 'from the host pod'], [vm.logPath, 'from the vm pod']] as const) {
    await waitFor(`${text} in ${p}`, async () => (await readFile(p, 'utf8')).includes(` stdout F ${text}`), 30_000);
  }

  // Lists merge both runtimes; a filter by id or pod asks the owner.
  assert.deepEqual(ids((await rt.ListPodSandbox!({})).items), [host.pod, vm.pod].sort());
  assert.deepEqual(ids((await rt.ListPodSandbox!({ filter: { id: host.pod } })).items), [host.pod]);
  assert.deepEqual(ids((await rt.ListPodSandbox!({ filter: { id: vm.pod } })).items), [vm.pod]);
  assert.deepEqual(ids((await rt.ListPodSandbox!({ filter: { label_selector: { app: 'hostpod' } } })).items), [host.pod]);
  assert.deepEqual(ids((await rt.ListContainers!({})).containers), [host.ctr, vm.ctr].sort());
  assert.deepEqual(ids((await rt.ListContainers!({ filter: { pod_sandbox_id: host.pod } })).containers), [host.ctr]);
  assert.deepEqual(ids((await rt.ListContainers!({ filter: { id: vm.ctr } })).containers), [vm.ctr]);
  const streamed = await m.d.client.runtimeStream.StreamPodSandboxes!({});
  assert.deepEqual(streamed.map((x: { pod_sandboxes: { id: string }[] }) => x.pod_sandboxes[0]!.id).sort(), [host.pod, vm.pod].sort());
  const stats = await rt.ListContainerStats!({});
  assert.deepEqual(stats.stats.map((s: { attributes: { id: string } }) => s.attributes.id).sort(), [host.ctr, vm.ctr].sort());
  assert.equal((await rt.ContainerStatus!({ container_id: host.ctr })).status.state, 'CONTAINER_RUNNING');

  // Status: frakti's conditions, and the OS runtime's health; the handlers frakti serves.
  const st = await rt.Status!({});
  const cond = st.status.conditions.find((c: { type: string }) => c.type === 'OSContainerRuntimeReady');
  assert.equal(cond?.status, true);
  assert.deepEqual(st.runtime_handlers.map((h: { name: string }) => h.name), ['', 'runc']);

  // frakti check names containerd and its version.
  const check = await frakti(['check', '--accel', 'tcg', '--json', '--os-runtime-endpoint', m.ctrd.endpoint]);
  const item = (JSON.parse(check.stdout) as { items: { name: string; level: string; detail: string }[] }).items.find((i) => i.name === 'os runtime');
  assert.equal(item?.level, 'ok');
  assert.match(item!.detail, /^containerd 1\.\d+\.\d+\S* \(CRI v1\) at unix:\/\//);

  // kubectl exec through containerd's own streaming URL, as kubelet follows it.
  const hostUrl = (await rt.Exec!({ container_id: host.ctr, cmd: ['sh', '-c', 'read l; echo "got $l"'], stdin: true, stdout: true, stderr: true })).url as string;
  const vmUrl = (await rt.Exec!({ container_id: vm.ctr, cmd: ['true'], stdout: true })).url as string;
  assert.notEqual(new URL(hostUrl).port, new URL(vmUrl).port, 'containerd answers with its own streaming server');
  const { client } = await spdyConnect(hostUrl, ['v4.channel.k8s.io']);
  const [error, stdin, stdout, stderr] = await Promise.all(['error', 'stdin', 'stdout', 'stderr'].map((s) => client.open({ streamType: s })));
  const outputs = Promise.all([readAll(stdout!), readAll(stderr!), readAll(error!)]);
  stdin!.end('over spdy\n');
  const [out] = await outputs;
  client.close();
  assert.equal(out, 'got over spdy\n');
  // The calls kubelet makes on a running container reach containerd too.
  await rt.UpdateContainerResources!({ container_id: host.ctr, linux: { memory_limit_in_bytes: String(256 * 1024 * 1024), cpu_shares: '512' } });
  await rt.ReopenContainerLog!({ container_id: host.ctr });
  assert.ok((await rt.ContainerStats!({ container_id: host.ctr })).stats.attributes.id === host.ctr);

  // Stop and remove, each by its owner; then both stores are empty.
  for (const p of [host, vm]) {
    await rt.StopContainer!({ container_id: p.ctr, timeout: '2' }, { timeoutMs: 60_000 });
    assert.equal((await rt.ContainerStatus!({ container_id: p.ctr })).status.state, 'CONTAINER_EXITED');
    await rt.StopPodSandbox!({ pod_sandbox_id: p.pod }, { timeoutMs: 60_000 });
    await rt.RemovePodSandbox!({ pod_sandbox_id: p.pod }, { timeoutMs: 60_000 });
  }
  assert.deepEqual((await rt.ListPodSandbox!({})).items, []);
  assert.deepEqual((await m.ctrd.client.runtime.ListPodSandbox!({})).items, []);
  const gone = await grpcError(rt.PodSandboxStatus!({ pod_sandbox_id: host.pod }));
  assert.equal(gone.code, status.NOT_FOUND);

  // RemoveImage removes it from both stores.
  await m.d.client.image.RemoveImage!({ image: { image } });
  assert.equal((await m.d.client.image.ImageStatus!({ image: { image } })).image, null);
  assert.equal((await m.ctrd.client.image.ImageStatus!({ image: { image } })).image, null);
});

test('privileged and annotated pods go to containerd; a privileged container in a VM pod is refused saying how', async (t) => {
  const m = await mixed(t, 'priv');
  const rt = m.d.client.runtime;
  await m.d.client.image.PullImage!({ image: { image } }, { timeoutMs: 120_000 });
  const privileged = { linux: { security_context: { privileged: true, namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } } } };
  const priv = await runPodWithContainer(m, 'priv', privileged, ['sleep', '100000'], { linux: { security_context: { privileged: true } } });
  const mnt = await exec(m, priv.ctr, ['sh', '-c', 'mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && echo mounted']);
  assert.equal(mnt.out.trim(), 'mounted', mnt.err);
  const annotated = { annotations: { 'runtime.frakti.alpha.kubernetes.io/OSContainer': 'true' }, ...hostNetwork };
  const ann = await runPodWithContainer(m, 'ann', annotated, ['sleep', '100000']);
  assert.deepEqual(ids((await m.ctrd.client.runtime.ListPodSandbox!({})).items), [priv.pod, ann.pod].sort());

  const vmConfig = podConfig('vm', join(m.d.dir, 'logs', 'vm'));
  const { pod_sandbox_id: vmPod } = await rt.RunPodSandbox!({ config: vmConfig }, { timeoutMs: 120_000 });
  const refused = await grpcError(rt.CreateContainer!({ pod_sandbox_id: vmPod, config: containerConfig('p', ['true'], { linux: { security_context: { privileged: true } } }), sandbox_config: vmConfig }));
  assert.equal(refused.code, status.INVALID_ARGUMENT);
  assert.match(refused.details, /make the pod privileged, or annotate it runtime\.frakti\.alpha\.kubernetes\.io\/OSContainer=true/);
});

test('frakti killed and restarted, then containerd restarted: every call still finds its pod', async (t) => {
  const m = await mixed(t, 'restart');
  await m.d.client.image.PullImage!({ image: { image } }, { timeoutMs: 120_000 });
  const host = await runPodWithContainer(m, 'h', hostNetwork, ['sleep', '100000']);
  const vm = await runPodWithContainer(m, 'v', {}, ['sleep', '100000']);
  const check = async (d: RunningDaemon) => {
    const rt = d.client.runtime;
    assert.equal((await rt.PodSandboxStatus!({ pod_sandbox_id: host.pod })).status.state, 'SANDBOX_READY');
    assert.equal((await rt.PodSandboxStatus!({ pod_sandbox_id: vm.pod })).status.state, 'SANDBOX_READY');
    assert.equal((await rt.ContainerStatus!({ container_id: host.ctr })).status.state, 'CONTAINER_RUNNING');
    assert.equal((await rt.ContainerStatus!({ container_id: vm.ctr })).status.state, 'CONTAINER_RUNNING');
    assert.deepEqual(ids((await rt.ListPodSandbox!({})).items), [host.pod, vm.pod].sort());
  };
  m.d.kill('SIGKILL');
  await m.d.child;
  // The first daemon's after-hook removes the pods through this one (same socket), then checks for leaks.
  const again = await startDaemon({ dir: m.d.dir, args: ['--os-runtime-endpoint', m.ctrd.endpoint] });
  t.after(() => again.cleanup());
  await check(again);
  // A clean stop (SIGTERM) leaves both kinds running too.
  assert.equal(await again.stop(), 0);
  const third = await startDaemon({ dir: m.d.dir, args: ['--os-runtime-endpoint', m.ctrd.endpoint] });
  t.after(() => third.cleanup());
  await check(third);
  await m.ctrd.kill('SIGKILL');
  await m.ctrd.start();
  await check(third);
});

test('an image behind registry credentials, pulled once through frakti, starts both kinds of pod', async (t) => {
  const creds = { username: 'kubelet', password: 'pull-secret' };
  const privateReg = await startRegistry({ htpasswd: creds });
  t.after(() => privateReg.stop());
  const privateImage = `${privateReg.host}/busybox:private`;
  await pushImage((await buildBusyboxImage(join(dir, 'private'))).layout, privateImage, { creds });
  const m = await mixed(t, 'creds', [privateReg.host]);
  const rt = m.d.client.runtime;
  const denied = await grpcError(m.d.client.image.PullImage!({ image: { image: privateImage } }, { timeoutMs: 120_000 }));
  assert.notEqual(denied.code, status.OK);
  await m.d.client.image.PullImage!({ image: { image: privateImage }, auth: creds }, { timeoutMs: 120_000 });
  assert.ok((await m.ctrd.client.image.ImageStatus!({ image: { image: privateImage } })).image, 'containerd pulled it with the same credentials');
  const host = await runPodWithContainer(m, 'h', hostNetwork, ['sleep', '100000'], { image: { image: privateImage } });
  const vm = await runPodWithContainer(m, 'v', {}, ['sleep', '100000'], { image: { image: privateImage } });
  for (const c of [host.ctr, vm.ctr]) assert.equal((await rt.ContainerStatus!({ container_id: c })).status.state, 'CONTAINER_RUNNING');
  // kubelet's image GC sees one image, frakti's.
  const listed = (await m.d.client.image.ListImages!({})).images.filter((i: { repo_tags: string[] }) => i.repo_tags.includes(privateImage));
  assert.equal(listed.length, 1);
});

test('containerd down: host pods are FAILED_PRECONDITION naming it, VM pods run, lists answer; back, it gets the image frakti pulled meanwhile', async (t) => {
  const m = await mixed(t, 'down');
  const rt = m.d.client.runtime;
  await m.ctrd.kill('SIGKILL');
  // The pull succeeds for frakti alone.
  const { image_ref: ref } = await m.d.client.image.PullImage!({ image: { image } }, { timeoutMs: 120_000 });
  const refused = await grpcError(rt.RunPodSandbox!({ config: podConfig('h2', join(m.d.dir, 'logs', 'h2'), hostNetwork) }));
  assert.equal(refused.code, status.FAILED_PRECONDITION);
  assert.match(refused.details, /needs the OS-container runtime \(the host's network namespace\).*unreachable/);
  const vm = await runPodWithContainer(m, 'v', {}, ['sleep', '100000']);
  assert.deepEqual(ids((await rt.ListPodSandbox!({})).items), [vm.pod]);
  const cond = (await rt.Status!({})).status.conditions.find((c: { type: string }) => c.type === 'OSContainerRuntimeReady');
  assert.equal(cond?.status, false);
  assert.equal(cond?.reason, 'OSRuntimeUnreachable');

  // containerd back: a host pod's container from the image id kubelet got
  // from the pull; containerd gets the image from the registry then.
  await m.ctrd.start();
  await waitFor('containerd reachable again', async () => (await rt.Status!({})).status.conditions.some((c: { type: string; status: boolean }) => c.type === 'OSContainerRuntimeReady' && c.status), 5000);
  assert.equal((await m.ctrd.client.image.ImageStatus!({ image: { image: ref } })).image, null);
  const host = await runPodWithContainer(m, 'h', hostNetwork, ['sleep', '100000'], { image: { image: ref } });
  assert.equal((await rt.ContainerStatus!({ container_id: host.ctr })).status.state, 'CONTAINER_RUNNING');
  assert.ok((await m.ctrd.client.image.ImageStatus!({ image: { image: ref } })).image, 'containerd has the image now');

  // Down again: a call for the host pod says its owner cannot be reached
  // (kubelet retries); it is never NOT_FOUND, which kubelet would take as gone.
  await m.ctrd.kill('SIGKILL');
  assert.equal((await grpcError(rt.PodSandboxStatus!({ pod_sandbox_id: host.pod }))).code, status.UNAVAILABLE);
  assert.deepEqual(ids((await rt.ListPodSandbox!({})).items), [vm.pod]);
  await m.ctrd.start();
  // Listed again at once (kubelet relists every second).
  await waitFor('the host pod listed again', async () => ids((await rt.ListPodSandbox!({})).items).length === 2, 5000);
  assert.deepEqual(ids((await rt.ListPodSandbox!({})).items), [host.pod, vm.pod].sort());
  assert.equal((await rt.PodSandboxStatus!({ pod_sandbox_id: host.pod })).status.state, 'SANDBOX_READY');
});

test('an annotated pod on the pod network (containerd runs the same CNI config) and a VM pod reach each other', async (t) => {
  const m = await mixed(t, 'net');
  const rt = m.d.client.runtime;
  await m.d.client.image.PullImage!({ image: { image } }, { timeoutMs: 120_000 });
  const serve = ['sh', '-c', 'while true; do echo pong from $(hostname) | nc -l -p 8080; done'];
  const vm = await runPodWithContainer(m, 'vmnet', {}, serve);
  const host = await runPodWithContainer(m, 'osnet', { annotations: { 'runtime.frakti.alpha.kubernetes.io/OSContainer': 'true' } }, serve);
  const ipOf = async (pod: string) => (await rt.PodSandboxStatus!({ pod_sandbox_id: pod })).status.network.ip as string;
  const [vmIp, hostIp] = [await ipOf(vm.pod), await ipOf(host.pod)];
  assert.match(hostIp, /^10\.249\.\d+\.\d+$/, 'containerd gave the pod an address of frakti\'s pod network');
  assert.equal(hostIp.split('.').slice(0, 3).join('.'), vmIp.split('.').slice(0, 3).join('.'), 'one subnet for both kinds');
  const ask = async (from: string, ip: string) => {
    let out = '';
    await waitFor(`an answer from ${ip}`, async () => {
      out = (await exec(m, from, ['sh', '-c', `echo ping | nc -w 3 ${ip} 8080`])).out;
      return out.includes('pong');
    }, 30_000, 500);
    return out.trim();
  };
  assert.equal(await ask(host.ctr, vmIp), 'pong from vmnet');
  assert.equal(await ask(vm.ctr, hostIp), 'pong from osnet');
});
