// The kubelet sequence against the real daemon: a real registry, real QEMU,
// real virtiofsd, frakti's own CNI bridge. One pod with two containers, then
// idempotent stop/remove, then a leak check; a restart test; five pods at once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, mkdir, readdir, rename, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { status } from '@grpc/grpc-js';
import { startRegistry, buildBusyboxImage, pushImage, type Registry } from '../../helpers/image-registry.js';
import { startDaemon, grpcError, waitFor, type RunningDaemon } from '../../helpers/cri-client.js';
import { daemonLeavingNothing } from '../../helpers/e2e-daemon.js';
import { mountsUnder, processesMentioning, vmProcessesUnder } from '../../helpers/vmm-leaks.js';
import { STREAM_WINDOW_BYTES } from '../../../src/agent-protocol/framing.js';
import { readAll, spdyConnect, upgradeRequest } from '../../helpers/spdy-client.js';

let dir: string;
let reg: Registry;
let image: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'frakti-e2e-'));
  reg = await startRegistry();
  const built = await buildBusyboxImage(dir);
  image = `${reg.host}/busybox:latest`;
  await pushImage(built.layout, image);
});

after(async () => {
  await reg?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A daemon with its own dirs under `dir`; after the test nothing of it may be left running or mounted. */
function daemon(t: { after(fn: () => unknown): void }, name: string, args: string[] = []): Promise<RunningDaemon> {
  return daemonLeavingNothing(t, dir, name, args);
}

function podConfig(name: string, logDir: string, extra: Record<string, unknown> = {}) {
  return {
    metadata: { name, uid: `uid-${name}`, namespace: 'default', attempt: 0 },
    hostname: name,
    log_directory: logDir,
    dns_config: { servers: ['10.96.0.10'], searches: ['default.svc.cluster.local'], options: ['ndots:5'] },
    labels: { app: name },
    linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
    ...extra,
  };
}

function containerConfig(name: string, command: string[]) {
  return { metadata: { name, attempt: 0 }, image: { image }, command, log_path: `${name}/0.log`, labels: { c: name } };
}

/** The CRI log's messages, in order, for lines of one stream. */
async function logLines(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map((l) => {
    const m = /^(\S+) (stdout|stderr) ([PF]) (.*)$/.exec(l);
    assert.ok(m, `not a CRI log line: ${l}`);
    assert.ok(!Number.isNaN(Date.parse(m[1]!)), `bad timestamp in ${l}`);
    return `${m[2]} ${m[4]}`;
  });
}

test('a pod with two containers, as kubelet drives it, and nothing left after', async (t) => {
  const d = await daemon(t, 'seq');
  const rt = d.client.runtime;
  const pulled = await d.client.image.PullImage!({ image: { image } });
  assert.match(pulled.image_ref, /^sha256:[0-9a-f]{64}$/);

  const logDir = join(d.dir, 'logs');
  const config = podConfig('web', logDir);
  const { pod_sandbox_id: pod } = await rt.RunPodSandbox!({ config });
  // Same metadata again is refused while the pod exists.
  const dup = await grpcError(rt.RunPodSandbox!({ config }));
  assert.equal(dup.code, status.ALREADY_EXISTS);

  const ps = await rt.PodSandboxStatus!({ pod_sandbox_id: pod, verbose: true });
  assert.equal(ps.status.state, 'SANDBOX_READY');
  assert.match(ps.status.network.ip, /^10\.249\.\d+\.\d+$/);

  // A host directory shared read-only into the first container.
  const hostDir = join(d.dir, 'hostdata');
  await mkdir(hostDir);
  await writeFile(join(hostDir, 'greeting'), 'from the host\n');
  const c1Config = { ...containerConfig('one', ['sh', '-c', 'echo hello from one; echo to stderr >&2; cat /etc/resolv.conf; hostname; sleep 1000']), mounts: [{ container_path: '/data', host_path: hostDir, readonly: true }] };
  const { container_id: c1 } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: c1Config, sandbox_config: config });
  const { container_id: c2 } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: containerConfig('two', ['sh', '-c', 'trap "echo got TERM; exit 0" TERM; while true; do sleep 0.2; done']), sandbox_config: config });
  assert.equal((await rt.ContainerStatus!({ container_id: c1 })).status.state, 'CONTAINER_CREATED');
  await rt.StartContainer!({ container_id: c1 });
  await rt.StartContainer!({ container_id: c2 });
  assert.equal((await rt.ContainerStatus!({ container_id: c1 })).status.state, 'CONTAINER_RUNNING');

  const log1 = join(logDir, 'one/0.log');
  await waitFor('the first container output in its log', async () => (await logLines(log1)).some((l) => l === 'stdout web'), 30_000);
  const lines = await logLines(log1);
  assert.ok(lines.includes('stdout hello from one'));
  assert.ok(lines.includes('stderr to stderr'));
  assert.ok(lines.includes('stdout nameserver 10.96.0.10'));
  assert.ok(lines.includes('stdout search default.svc.cluster.local'));

  const ex = await rt.ExecSync!({ container_id: c1, cmd: ['sh', '-c', 'echo out; echo err >&2; exit 3'], timeout: '10' });
  assert.equal(Buffer.from(ex.stdout).toString(), 'out\n');
  assert.equal(Buffer.from(ex.stderr).toString(), 'err\n');
  assert.equal(ex.exit_code, 3);
  const data = await rt.ExecSync!({ container_id: c1, cmd: ['sh', '-c', 'cat /data/greeting; echo x > /data/new'], timeout: '10' });
  assert.equal(Buffer.from(data.stdout).toString(), 'from the host\n');
  assert.notEqual(data.exit_code, 0, 'the read-only mount refuses writes');
  assert.match(Buffer.from(data.stderr).toString(), /Read-only file system/);
  const slow = await grpcError(rt.ExecSync!({ container_id: c1, cmd: ['sleep', '30'], timeout: '1' }));
  assert.equal(slow.code, status.DEADLINE_EXCEEDED);

  const list = await rt.ListContainers!({ filter: { pod_sandbox_id: pod } });
  assert.deepEqual(list.containers.map((c: { id: string }) => c.id).sort(), [c1, c2].sort());
  const running = await rt.ListContainers!({ filter: { state: { state: 'CONTAINER_RUNNING' }, label_selector: { c: 'two' } } });
  assert.deepEqual(running.containers.map((c: { id: string }) => c.id), [c2]);
  const stats = await rt.ContainerStats!({ container_id: c1 });
  assert.ok(BigInt(stats.stats.memory.working_set_bytes.value) > 0n);
  assert.ok(BigInt(stats.stats.cpu.usage_core_nano_seconds.value) > 0n);
  const podStats = await rt.PodSandboxStats!({ pod_sandbox_id: pod });
  assert.equal(podStats.stats.linux.containers.length, 2);

  // Resources change in the guest cgroup.
  // Resources change in the guest cgroup: under a 32 MiB limit, a 48 MiB buffer is OOM-killed.
  const big = ['sh', '-c', 'dd if=/dev/zero of=/dev/null bs=48M count=1 2>/dev/null; echo rc=$?'];
  assert.match(Buffer.from((await rt.ExecSync!({ container_id: c1, cmd: big, timeout: '30' })).stdout).toString(), /rc=0/);
  await rt.UpdateContainerResources!({ container_id: c1, linux: { memory_limit_in_bytes: String(32 * 1024 * 1024), cpu_quota: '50000', cpu_period: '100000' } });
  assert.match(Buffer.from((await rt.ExecSync!({ container_id: c1, cmd: big, timeout: '30' })).stdout).toString(), /rc=137/);

  // Log rotation: kubelet renames the file and asks for a new one.
  await rename(log1, log1 + '.1');
  await rt.ReopenContainerLog!({ container_id: c1 });
  await rt.ExecSync!({ container_id: c1, cmd: ['sh', '-c', 'echo after rotation > /proc/1/fd/1'], timeout: '10' });
  await waitFor('output in the new log file', async () => (await logLines(log1)).includes('stdout after rotation'), 15_000);

  await rt.StopContainer!({ container_id: c2, timeout: '5' });
  const st2 = (await rt.ContainerStatus!({ container_id: c2 })).status;
  assert.equal(st2.state, 'CONTAINER_EXITED');
  assert.equal(st2.exit_code, 0);
  assert.ok((await logLines(join(logDir, 'two/0.log'))).includes('stdout got TERM'));
  await rt.StopContainer!({ container_id: c2, timeout: '5' });

  await rt.StopPodSandbox!({ pod_sandbox_id: pod });
  await rt.StopPodSandbox!({ pod_sandbox_id: pod });
  assert.equal((await rt.PodSandboxStatus!({ pod_sandbox_id: pod })).status.state, 'SANDBOX_NOTREADY');
  assert.equal((await rt.ContainerStatus!({ container_id: c1 })).status.state, 'CONTAINER_EXITED');
  await rt.RemovePodSandbox!({ pod_sandbox_id: pod });
  await rt.RemovePodSandbox!({ pod_sandbox_id: pod });
  assert.deepEqual((await rt.ListPodSandbox!({})).items, []);
  assert.deepEqual((await rt.ListContainers!({})).containers, []);
  assert.equal((await grpcError(rt.ContainerStatus!({ container_id: c1 }))).code, status.NOT_FOUND);
  assert.deepEqual(await vmProcessesUnder(d.dir), []);
  assert.deepEqual(await mountsUnder(d.dir), []);
  assert.deepEqual(await readdir(join(d.state, 'vm')).catch(() => []), []);
});

/** Reads `s` until `want` shows up (or the stream ends); returns what came. */
function readUntil(s: NodeJS.ReadableStream, want: RegExp, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`no ${want} within ${timeoutMs} ms; got ${JSON.stringify(text)}`)), timeoutMs);
    const done = () => {
      clearTimeout(timer);
      s.off('data', onData);
      resolve(text);
    };
    const onData = (b: Buffer) => {
      text += b.toString();
      if (want.test(text)) done();
    };
    s.on('data', onData);
    s.once('end', done);
  });
}

/** A daemon of its own with the image pulled and one pod running. */
async function runningPod(t: { after(fn: () => unknown): void }, daemonName: string, podName: string, args: string[] = []) {
  const d = await daemon(t, daemonName, args);
  const rt = d.client.runtime;
  await d.client.image.PullImage!({ image: { image } });
  const logDir = join(d.dir, 'logs');
  const config = podConfig(podName, logDir);
  const { pod_sandbox_id: pod } = await rt.RunPodSandbox!({ config });
  return { d, rt, logDir, config, pod };
}

test('an in-place resize grows the pod VM: memory as a DIMM the guest uses, never a shrink; vCPUs only under KVM', async (t) => {
  const { rt, config, pod } = await runningPod(t, 'resize', 'resizing');
  const { container_id: c } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: containerConfig('main', ['sleep', '1000']), sandbox_config: config });
  await rt.StartContainer!({ container_id: c });
  const sh = async (cmd: string) => Buffer.from((await rt.ExecSync!({ container_id: c, cmd: ['sh', '-c', cmd], timeout: '60' })).stdout).toString().trim();
  const memTotalKiB = async () => Number(/MemTotal:\s+(\d+)/.exec(await sh('cat /proc/meminfo'))![1]);
  // A 400 MB buffer needs more than the 256 MiB VM has.
  const bigBuffer = 'dd if=/dev/zero of=/dev/null bs=400M count=1 2>/dev/null; echo rc=$?';
  const before = await memTotalKiB();
  assert.doesNotMatch(await sh(bigBuffer), /rc=0/);
  const MiB = 1024 * 1024;

  // 640 MiB for the containers, plus the guest's own 64: one 512 MiB DIMM (whole 128 MiB blocks) on top of 256.
  await rt.UpdatePodSandboxResources!({ pod_sandbox_id: pod, resources: { memory_limit_in_bytes: String(640 * MiB) } });
  assert.equal((await memTotalKiB()) - before, 512 * 1024, 'the guest sees 512 MiB more');
  assert.equal(JSON.parse((await rt.PodSandboxStatus!({ pod_sandbox_id: pod, verbose: true })).info.info).memoryMiB, 768, 'crictl inspectp shows the size now');
  assert.match(await sh(bigBuffer), /rc=0/, 'and uses it');
  // Files still go through virtio-fs, whose daemon now maps the new memory too.
  assert.equal(await sh('dd if=/dev/zero of=/resized bs=1M count=64 2>/dev/null; wc -c < /resized'), String(64 * MiB));

  // Smaller: the VM keeps what it has (the containers' cgroups hold them to less).
  await rt.UpdatePodSandboxResources!({ pod_sandbox_id: pod, resources: { memory_limit_in_bytes: String(128 * MiB) } });
  assert.equal((await memTotalKiB()) - before, 512 * 1024);

  // Two vCPUs: added under KVM; under TCG refused with the reason (QEMU 7.2 can abort adding one).
  const vmPid = JSON.parse((await rt.PodSandboxStatus!({ pod_sandbox_id: pod, verbose: true })).info.info).vmPid as number;
  const tcg = (await readFile(`/proc/${vmPid}/cmdline`, 'utf8')).split('\0').some((a) => a.startsWith('tcg'));
  const cpuUp = rt.UpdatePodSandboxResources!({ pod_sandbox_id: pod, resources: { cpu_quota: '200000', cpu_period: '100000' } });
  if (tcg) {
    const e = await grpcError(cpuUp);
    assert.equal(e.code, status.FAILED_PRECONDITION);
    assert.match(e.details, /vCPUs stay at 1: .*KVM/);
    assert.equal(await sh('nproc'), '1');
  } else {
    await cpuUp;
    await waitFor('a second vCPU online', async () => (await sh('nproc')) === '2', 10_000);
  }

  assert.equal((await grpcError(rt.UpdatePodSandboxResources!({ pod_sandbox_id: 'f'.repeat(64), resources: {} }))).code, status.NOT_FOUND);
  assert.equal((await grpcError(rt.UpdatePodSandboxResources!({ pod_sandbox_id: '' }))).code, status.INVALID_ARGUMENT);
  await rt.StopPodSandbox!({ pod_sandbox_id: pod });
  const stopped = await grpcError(rt.UpdatePodSandboxResources!({ pod_sandbox_id: pod, resources: { memory_limit_in_bytes: String(2048 * MiB) } }));
  assert.equal(stopped.code, status.FAILED_PRECONDITION);
  assert.match(stopped.details, /not running/);
});

test('exec, attach and port-forward through the streaming URLs, as kubectl does them', async (t) => {
  // A bigger translation cache, as an operator of busy pods without KVM would set it.
  const { rt, logDir, config, pod } = await runningPod(t, 'stream', 'streams', ['--tcg-cache-mb', '12']);
  const vmPid = JSON.parse((await rt.PodSandboxStatus!({ pod_sandbox_id: pod, verbose: true })).info.info).vmPid as number;
  const qemuCmd = (await readFile(`/proc/${vmPid}/cmdline`, 'utf8')).split('\0');
  if (qemuCmd.some((a) => a.startsWith('tcg'))) assert.ok(qemuCmd.includes('tcg,tb-size=12'), qemuCmd.join(' '));
  const web = ['sh', '-c', 'mkdir -p /www && echo hello from the pod > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www'];
  const { container_id: c1 } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: containerConfig('web', web), sandbox_config: config });
  const echoer = { ...containerConfig('echoer', ['sh', '-c', 'while read l; do echo "echo:$l"; done']), stdin: true };
  const { container_id: c2 } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: echoer, sandbox_config: config });
  // A container with a terminal of its own (kubectl run -it): named under its /dev/pts like any tty.
  const termConfig = { ...containerConfig('term', ['sh', '-c', 'tty; stty size; while read l; do stty size; done']), tty: true, stdin: true };
  const { container_id: c3 } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: termConfig, sandbox_config: config });
  await rt.StartContainer!({ container_id: c1 });
  await rt.StartContainer!({ container_id: c2 });
  await rt.StartContainer!({ container_id: c3 });
  await waitFor('the terminal container to name its tty', async () => (await logLines(join(logDir, 'term/0.log'))).some((l) => /^stdout 24 80/.test(l)), 20_000);
  assert.ok((await logLines(join(logDir, 'term/0.log'))).some((l) => /^stdout \/dev\/pts\/\d+\r?$/.test(l)), 'tty names the terminal');

  // kubectl exec -i: stdin in, both outputs, the exit code.
  const ex = await rt.Exec!({ container_id: c1, cmd: ['sh', '-c', 'read line; echo "got $line"; echo oops >&2; exit 7'], stdin: true, stdout: true, stderr: true });
  assert.match(ex.url, /^http:\/\/127\.0\.0\.1:\d+\/exec\/[A-Za-z0-9_-]+$/);
  const { client, protocol } = await spdyConnect(ex.url, ['v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io']);
  assert.equal(protocol, 'v4.channel.k8s.io');
  const [error, stdin, stdout, stderr] = await Promise.all(['error', 'stdin', 'stdout', 'stderr'].map((t) => client.open({ streamType: t })));
  const outputs = Promise.all([readAll(stdout!), readAll(stderr!), readAll(error!)]);
  stdin!.end('hello\n');
  const [out, err, st] = await outputs;
  client.close();
  assert.equal(out, 'got hello\n');
  assert.equal(err, 'oops\n');
  const statusObj = JSON.parse(st);
  assert.equal(statusObj.reason, 'NonZeroExitCode');
  assert.equal(statusObj.details.causes[0].message, '7');
  // The URL was for one use.
  const again = await upgradeRequest(ex.url, [['Connection', 'Upgrade'], ['Upgrade', 'SPDY/3.1'], ['X-Stream-Protocol-Version', 'v4.channel.k8s.io']]);
  assert.equal(again.status, 404);

  // kubectl exec -it: a terminal, resized by the client.
  const tty = await rt.Exec!({ container_id: c1, cmd: ['sh', '-c', 'read x; tty; stty size'], stdin: true, stdout: true, tty: true });
  const term = (await spdyConnect(tty.url, ['v4.channel.k8s.io'])).client;
  const [tErr, tIn, tOut, tResize] = await Promise.all(['error', 'stdin', 'stdout', 'resize'].map((t) => term.open({ streamType: t })));
  const termOut = readAll(tOut!);
  tResize!.write('{"Width":100,"Height":33}\n');
  await new Promise((r) => setTimeout(r, 500));
  tIn!.end('\n');
  const shown = await termOut;
  assert.match(shown, /\/dev\/pts\/\d+/);
  assert.match(shown, /33 100/);
  assert.equal(JSON.parse(await readAll(tErr!)).status, 'Success');
  term.close();

  // kubectl attach -i: the container's own stdin and output; it keeps running after the client leaves.
  const at = await rt.Attach!({ container_id: c2, stdin: true, stdout: true, stderr: true });
  const att = (await spdyConnect(at.url, ['v4.channel.k8s.io'])).client;
  const [, aIn, aOut] = await Promise.all(['error', 'stdin', 'stdout', 'stderr'].map((t) => att.open({ streamType: t })));
  aIn!.write('ping\n');
  assert.match(await readUntil(aOut!, /echo:ping/), /echo:ping/);
  att.close();
  await waitFor('the attached line in the log', async () => (await logLines(join(logDir, 'echoer/0.log'))).includes('stdout echo:ping'), 15_000);
  assert.equal((await rt.ContainerStatus!({ container_id: c2 })).status.state, 'CONTAINER_RUNNING');
  assert.equal((await grpcError(rt.Attach!({ container_id: c1, stdin: true, stdout: true }))).code, status.FAILED_PRECONDITION, 'no stdin to attach to');

  // kubectl attach -it to the terminal container: the client's size reaches the container's own terminal.
  assert.equal((await grpcError(rt.Attach!({ container_id: c3, stdin: true, stdout: true, tty: false }))).code, status.INVALID_ARGUMENT, 'tty must match the container');
  const tat = await rt.Attach!({ container_id: c3, stdin: true, stdout: true, tty: true });
  const tatt = (await spdyConnect(tat.url, ['v4.channel.k8s.io'])).client;
  const [, ttIn, ttOut, ttResize] = await Promise.all(['error', 'stdin', 'stdout', 'resize'].map((t) => tatt.open({ streamType: t })));
  ttResize!.write('{"Width":120,"Height":50}\n');
  await new Promise((r) => setTimeout(r, 500));
  ttIn!.write('\n');
  assert.match(await readUntil(ttOut!, /50 120/), /50 120/);
  tatt.close();

  // kubectl port-forward: an HTTP request to a server listening on the pod's loopback.
  const pf = await rt.PortForward!({ pod_sandbox_id: pod, port: [8080] });
  const fwd = (await spdyConnect(pf.url, ['portforward.k8s.io'])).client;
  await waitFor('the web server to listen', async () => Buffer.from((await rt.ExecSync!({ container_id: c1, cmd: ['sh', '-c', 'netstat -tln | grep -c :8080 || true'], timeout: '10' })).stdout).toString().trim() !== '0', 15_000);
  const pfErr = await fwd.open({ streamType: 'error', port: '8080', requestID: '0' });
  const pfData = await fwd.open({ streamType: 'data', port: '8080', requestID: '0' });
  const page = readAll(pfData);
  pfData.end('GET / HTTP/1.0\r\n\r\n');
  assert.match(await page, /^HTTP\/1\.[01] 200[\s\S]*hello from the pod\n$/);
  assert.equal(await readAll(pfErr), '');
  const closedPort = await fwd.open({ streamType: 'error', port: '9', requestID: '1' });
  await fwd.open({ streamType: 'data', port: '9', requestID: '1' });
  assert.match(JSON.parse(await readAll(closedPort)).message, /error forwarding port 9 to pod/);
  fwd.close();

  // Refused before any URL is made.
  assert.equal((await grpcError(rt.Exec!({ container_id: c1, cmd: ['true'], stdout: true, stderr: true, tty: true }))).code, status.INVALID_ARGUMENT);
  assert.equal((await grpcError(rt.Exec!({ container_id: c1, cmd: ['true'] }))).code, status.INVALID_ARGUMENT);
  assert.equal((await grpcError(rt.Exec!({ container_id: 'nope', cmd: ['true'], stdout: true }))).code, status.NOT_FOUND);
  assert.equal((await grpcError(rt.PortForward!({ pod_sandbox_id: pod, port: [70000] }))).code, status.INVALID_ARGUMENT);
  await rt.StopPodSandbox!({ pod_sandbox_id: pod });
  assert.equal((await grpcError(rt.Exec!({ container_id: c1, cmd: ['true'], stdout: true }))).code, status.FAILED_PRECONDITION);
  assert.equal((await grpcError(rt.PortForward!({ pod_sandbox_id: pod, port: [8080] }))).code, status.FAILED_PRECONDITION);
  await rt.RemovePodSandbox!({ pod_sandbox_id: pod });
});

test('what crictl, kubelet and test suites send that containerd takes: no hostname and a long name, no log, a working dir and a host path that do not exist', async (t) => {
  const d = await daemon(t, 'edge');
  const rt = d.client.runtime;
  await d.client.image.PullImage!({ image: { image } });
  // 80 bytes, as critest names its pods; no hostname, no log directory, no DNS, no linux options, no uid.
  const name = 'create-podsandbox-for-container-' + '0123456789abcdef'.repeat(3);
  const config = { metadata: { name, namespace: 'default', uid: '', attempt: 0 } };
  const { pod_sandbox_id: pod } = await rt.RunPodSandbox!({ config });
  const hostDir = join(d.dir, 'made-by-frakti', 'deep');
  const chatty = ['sh', '-c', 'while true; do echo tick; top -b -n 1 >/dev/null; top -b -n 1; done'];
  const cfg = { metadata: { name: 'chatty', attempt: 0 }, image: { image }, command: chatty, working_dir: '/work/not/in/image', mounts: [{ container_path: '/data', host_path: hostDir }] };
  const { container_id: c } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: cfg, sandbox_config: config });
  assert.ok((await stat(hostDir)).isDirectory(), 'the missing host path was made');
  await rt.StartContainer!({ container_id: c });
  const st = (await rt.ContainerStatus!({ container_id: c })).status;
  assert.equal(st.state, 'CONTAINER_RUNNING');
  assert.equal(st.log_path, '');

  // Exec works and sees the derived host name, the made working dir and the mount.
  const ex = await rt.ExecSync!({ container_id: c, cmd: ['sh', '-c', 'hostname; echo "$HOSTNAME"; pwd; ls -d /data'], timeout: '20' });
  assert.equal(Buffer.from(ex.stdout).toString(), `${name.slice(0, 63)}\n${name.slice(0, 63)}\n/work/not/in/image\n/data\n`);
  assert.equal(ex.exit_code, 0);

  // Attach still shows what the container writes, though no file keeps it.
  const at = await rt.Attach!({ container_id: c, stdout: true, stderr: true });
  const att = (await spdyConnect(at.url, ['v4.channel.k8s.io'])).client;
  const [, aOut] = await Promise.all(['error', 'stdout', 'stderr'].map((s) => att.open({ streamType: s })));
  assert.match(await readUntil(aOut!, /tick/), /tick/);
  att.close();

  // In the pod's shared PID namespace a container still ends with its own
  // process: a child holding its output is killed with it (as runc does).
  const forker = { metadata: { name: 'forker', attempt: 0 }, image: { image }, command: ['sh', '-c', 'sleep 1000 & echo started; exit 3'] };
  const { container_id: f } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: forker, sandbox_config: config });
  await rt.StartContainer!({ container_id: f });
  await waitFor('the forking container to exit', async () => (await rt.ContainerStatus!({ container_id: f })).status.state === 'CONTAINER_EXITED', 20_000);
  assert.equal((await rt.ContainerStatus!({ container_id: f })).status.exit_code, 3);
  const parent = { metadata: { name: 'parent', attempt: 0 }, image: { image }, command: ['sh', '-c', 'sleep 1000 & sleep 1000'] };
  const { container_id: pc } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: parent, sandbox_config: config });
  await rt.StartContainer!({ container_id: pc });
  await rt.StopContainer!({ container_id: pc, timeout: '1' });
  assert.equal((await rt.ContainerStatus!({ container_id: pc })).status.state, 'CONTAINER_EXITED');
  // chatty shares the PID namespace: it sees what is left, and nothing of theirs is.
  const ps = Buffer.from((await rt.ExecSync!({ container_id: c, cmd: ['ps'], timeout: '10' })).stdout).toString();
  assert.doesNotMatch(ps, /sleep 1000/);

  // The output nobody keeps never holds the container or a stop up.
  const t0 = Date.now();
  await rt.StopContainer!({ container_id: c, timeout: '2' });
  assert.ok(Date.now() - t0 < 2000 + 10_000, `StopContainer took ${Date.now() - t0} ms`);
  assert.equal((await rt.ContainerStatus!({ container_id: c })).status.state, 'CONTAINER_EXITED');

  // What stays refused says why, with the code kubelet expects.
  const absent = await grpcError(rt.CreateContainer!({ pod_sandbox_id: pod, config: { ...cfg, metadata: { name: 'absent', attempt: 0 }, image: { image: `${reg.host}/not-pulled:1` } }, sandbox_config: config }));
  assert.equal(absent.code, status.NOT_FOUND, absent.details);
  const long = await grpcError(rt.RunPodSandbox!({ config: { ...config, metadata: { ...config.metadata, name: 'other' }, hostname: 'h'.repeat(65) } }));
  assert.equal(long.code, status.INVALID_ARGUMENT, long.details);
  await rt.StopPodSandbox!({ pod_sandbox_id: pod });
  await rt.RemovePodSandbox!({ pod_sandbox_id: pod });
  assert.deepEqual((await rt.ListPodSandbox!({})).items, []);
});

test('a pod removed under open exec, attach and port-forward sessions ends them; the daemon goes on', async (t) => {
  const { d, rt, config, pod } = await runningPod(t, 'gone', 'vanishing');
  const shell = { ...containerConfig('shell', ['sh', '-c', 'while read l; do echo "got:$l"; done']), stdin: true };
  const { container_id: c1 } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: shell, sandbox_config: config });
  const term = { ...containerConfig('term', ['sh', '-c', 'while read l; do echo "t:$l"; done']), stdin: true, tty: true };
  const { container_id: c2 } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: term, sandbox_config: config });
  const web = containerConfig('web', ['sh', '-c', 'mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www']);
  const { container_id: c3 } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: web, sandbox_config: config });
  for (const c of [c1, c2, c3]) await rt.StartContainer!({ container_id: c });

  // Every kind of session, open and idle, with and without a terminal.
  const sessions: { close(): void }[] = [];
  const ended: Promise<unknown>[] = [];
  const open = async (url: string, protocols: string[], types: Record<string, string>[]) => {
    const { client } = await spdyConnect(url, protocols);
    sessions.push(client);
    const streams = await Promise.all(types.map((h) => client.open(h)));
    for (const s of streams) ended.push(readAll(s).catch(() => ''));
    return streams;
  };
  const execTty = await rt.Exec!({ container_id: c1, cmd: ['sh'], stdin: true, stdout: true, tty: true });
  const [, inTty] = await open(execTty.url, ['v4.channel.k8s.io'], [{ streamType: 'error' }, { streamType: 'stdin' }, { streamType: 'stdout' }, { streamType: 'resize' }]);
  const execPlain = await rt.Exec!({ container_id: c1, cmd: ['cat'], stdin: true, stdout: true, stderr: true });
  const [, inPlain] = await open(execPlain.url, ['v4.channel.k8s.io'], [{ streamType: 'error' }, { streamType: 'stdin' }, { streamType: 'stdout' }, { streamType: 'stderr' }]);
  const attachPlain = await rt.Attach!({ container_id: c1, stdin: true, stdout: true, stderr: true });
  await open(attachPlain.url, ['v4.channel.k8s.io'], [{ streamType: 'error' }, { streamType: 'stdin' }, { streamType: 'stdout' }, { streamType: 'stderr' }]);
  const attachTty = await rt.Attach!({ container_id: c2, stdin: true, stdout: true, tty: true });
  await open(attachTty.url, ['v4.channel.k8s.io'], [{ streamType: 'error' }, { streamType: 'stdin' }, { streamType: 'stdout' }, { streamType: 'resize' }]);
  await waitFor('httpd to listen', async () => Buffer.from((await rt.ExecSync!({ container_id: c3, cmd: ['sh', '-c', 'netstat -tln | grep -c :8080 || true'], timeout: '10' })).stdout).toString().trim() !== '0', 15_000);
  const pf = await rt.PortForward!({ pod_sandbox_id: pod, port: [8080] });
  await open(pf.url, ['portforward.k8s.io'], [{ streamType: 'error', port: '8080', requestID: '0' }, { streamType: 'data', port: '8080', requestID: '0' }]);
  inTty!.write('echo typing\n');
  inPlain!.write('more\n');

  // The pod goes away under all of them, as kubelet removes a deleted pod.
  await rt.StopPodSandbox!({ pod_sandbox_id: pod });
  await rt.RemovePodSandbox!({ pod_sandbox_id: pod });
  // Input sent after the pod is gone is dropped, not a crash.
  inTty!.write('late\n');
  inPlain!.write('late\n');
  await Promise.race([Promise.all(ended), new Promise((_, rej) => setTimeout(() => rej(new Error('sessions did not end within 30 s')), 30_000))]);
  for (const s of sessions) s.close();

  // The daemon is alive and serves the next call.
  assert.equal(d.child.exitCode, null, d.stderr().slice(-2000));
  assert.deepEqual((await rt.ListPodSandbox!({})).items, []);
  assert.doesNotMatch(d.stderr(), /Unhandled 'error' event|uncaughtException|unhandledRejection/);
});

test('GetContainerEvents: a subscriber sees each container created, started, stopped and deleted, in order, with the pod\'s statuses', async (t) => {
  const { d, rt, config, pod } = await runningPod(t, 'events', 'evented');
  const events: { id: string; type: string; pod: string; states: string[] }[] = [];
  /* eslint-disable @typescript-eslint/no-explicit-any */
  const call = (d.client.raw.runtime as any).GetContainerEvents({});
  call.on('data', (e: any) => events.push({ id: e.container_id, type: e.container_event_type, pod: e.pod_sandbox_status?.state, states: e.containers_statuses.map((c: any) => `${c.metadata.name}:${c.state}`) }));
  call.on('error', () => {});
  t.after(() => call.cancel());
  await new Promise((r) => setTimeout(r, 200)); // subscribed before the first container exists
  const ids: string[] = [];
  for (const name of ['first', 'second']) {
    const { container_id: c } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: containerConfig(name, ['sleep', '1000']), sandbox_config: config });
    await rt.StartContainer!({ container_id: c });
    ids.push(c);
  }
  await rt.StopContainer!({ container_id: ids[0], timeout: '0' });
  await rt.RemoveContainer!({ container_id: ids[0] });
  await rt.StopPodSandbox!({ pod_sandbox_id: pod });
  await waitFor('the stop events', async () => events.filter((e) => e.id === ids[1]).length >= 3, 15_000);
  const of = (id: string) => events.filter((e) => e.id === id).map((e) => e.type);
  assert.deepEqual(of(ids[0]!), ['CONTAINER_CREATED_EVENT', 'CONTAINER_STARTED_EVENT', 'CONTAINER_STOPPED_EVENT', 'CONTAINER_DELETED_EVENT']);
  assert.deepEqual(of(ids[1]!), ['CONTAINER_CREATED_EVENT', 'CONTAINER_STARTED_EVENT', 'CONTAINER_STOPPED_EVENT']);
  const started = events.find((e) => e.id === ids[1] && e.type === 'CONTAINER_STARTED_EVENT')!;
  assert.equal(started.pod, 'SANDBOX_READY');
  assert.deepEqual(started.states.sort(), ['first:CONTAINER_RUNNING', 'second:CONTAINER_RUNNING']);
  const deleted = events.find((e) => e.type === 'CONTAINER_DELETED_EVENT')!;
  assert.deepEqual(deleted.states, ['second:CONTAINER_RUNNING'], 'a deleted container is no longer among the statuses');
  await rt.RemovePodSandbox!({ pod_sandbox_id: pod });
});

/** The value of one series in Prometheus text, or undefined when it is not there. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('metrics: served only when asked, on loopback; calls, pod starts, pods, VMs, pulls and agent calls counted as pods come and go', async (t) => {
  // Without the flag there is no metrics listener: the streaming port is the daemon's only TCP socket.
  const plain = await daemon(t, 'nometrics');
  await plain.client.runtime.Version!({});
  assert.doesNotMatch(plain.stderr(), /"metrics":"http/);
  const listening = (await execa('ss', ['-Hltnp'])).stdout.split('\n').filter((l) => l.includes(`pid=${plain.child.pid},`));
  assert.equal(listening.length, 1, listening.join('\n'));

  const d = await daemon(t, 'metrics', ['--metrics-address', '0']);
  const url = /"metrics":"(http:\/\/127\.0\.0\.1:\d+\/metrics)"/.exec(d.stderr())?.[1];
  assert.ok(url, 'the ready line names the metrics URL, on loopback');
  const scrape = async () => {
    const res = await fetch(url);
    assert.equal(res.status, 200);
    return res.text();
  };
  assert.equal((await fetch(url.replace('/metrics', '/other'))).status, 404);
  const rt = d.client.runtime;
  await d.client.image.PullImage!({ image: { image } });
  const config = podConfig('measured', join(d.dir, 'logs'));
  const { pod_sandbox_id: pod } = await rt.RunPodSandbox!({ config });
  const { container_id: c } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: containerConfig('sleeper', ['sleep', '1000']), sandbox_config: config });
  await rt.StartContainer!({ container_id: c });
  await grpcError(rt.PodSandboxStatus!({ pod_sandbox_id: 'f'.repeat(64) }));

  const running = await scrape();
  assert.equal(sample(running, 'frakti_cri_requests_total{method="RunPodSandbox",code="OK"}'), 1);
  assert.equal(sample(running, 'frakti_cri_requests_total{method="PodSandboxStatus",code="NOT_FOUND"}'), 1);
  assert.ok(sample(running, 'frakti_cri_request_duration_seconds_count{method="CreateContainer"}')! >= 1);
  assert.equal(sample(running, 'frakti_pod_start_duration_seconds_count{kind="cold"}'), 1);
  assert.equal(sample(running, 'frakti_pods{state="READY"}'), 1);
  assert.equal(sample(running, 'frakti_containers{state="RUNNING"}'), 1);
  assert.equal(sample(running, 'frakti_vms_running'), 1);
  assert.ok(sample(running, `frakti_vm_qemu_rss_bytes{pod="${pod}"}`)! > 10 * 1024 * 1024, 'QEMU has some tens of MiB resident');
  assert.equal(sample(running, 'frakti_image_pulls_total{result="ok"}'), 1);
  assert.ok(sample(running, 'frakti_image_pull_bytes_total')! > 100_000);
  assert.ok(sample(running, 'frakti_agent_call_duration_seconds_count{call="createContainer"}')! >= 1, 'agent calls are timed');
  assert.ok(sample(running, 'frakti_process_resident_memory_bytes')! > 0);
  assert.ok(sample(running, 'frakti_nodejs_eventloop_lag_seconds') !== undefined);

  // What the container writes into its root filesystem is its writable layer, on the host's disk.
  await rt.ExecSync!({ container_id: c, cmd: ['sh', '-c', 'dd if=/dev/urandom of=/written bs=1024 count=2048 2>/dev/null && sync'], timeout: '30' });
  const rw = (await rt.ContainerStats!({ container_id: c })).stats.writable_layer;
  assert.ok(Number(rw.used_bytes.value) >= 2 * 1024 * 1024, `writable layer ${rw.used_bytes.value} bytes`);
  assert.ok(Number(rw.inodes_used.value) >= 1);
  // kubelet's PodAndContainerStatsFromCRI: cAdvisor's names, from the guest's cgroups and the pod's tap.
  const names = (await rt.ListMetricDescriptors!({})).descriptors.map((x: { name: string }) => x.name);
  for (const n of ['container_cpu_usage_seconds_total', 'container_memory_working_set_bytes', 'container_network_receive_bytes_total']) assert.ok(names.includes(n), n);
  const [pm] = (await rt.ListPodSandboxMetrics!({})).pod_metrics;
  assert.equal(pm.pod_sandbox_id, pod);
  const value = (list: { name: string; value: { value: string } }[], n: string) => Number(list.find((x) => x.name === n)?.value.value);
  assert.ok(value(pm.metrics, 'container_network_transmit_bytes_total') >= 0);
  assert.deepEqual(pm.metrics[0].label_values, ['POD', pod, '', 'measured', 'default', 'measured', 'eth0']);
  const cm = pm.container_metrics[0];
  assert.equal(cm.container_id, c);
  assert.ok(value(cm.metrics, 'container_memory_working_set_bytes') > 0);
  assert.ok(value(cm.metrics, 'container_fs_usage_bytes') >= 2 * 1024 * 1024);
  assert.ok(Math.abs(value(cm.metrics, 'container_start_time_seconds') - Date.now() / 1000) < 600);
  const ps = (await rt.PodSandboxStats!({ pod_sandbox_id: pod })).stats;
  assert.equal(ps.linux.network.default_interface.name, 'eth0');

  await rt.StopPodSandbox!({ pod_sandbox_id: pod });
  const stopped = await scrape();
  assert.equal(sample(stopped, 'frakti_pods{state="NOTREADY"}'), 1);
  assert.equal(sample(stopped, 'frakti_containers{state="EXITED"}'), 1);
  assert.equal(sample(stopped, 'frakti_vms_running'), 0);
  assert.equal(sample(stopped, `frakti_vm_qemu_rss_bytes{pod="${pod}"}`), undefined);
  await rt.RemovePodSandbox!({ pod_sandbox_id: pod });
  const gone = await scrape();
  assert.equal(sample(gone, 'frakti_pods{state="NOTREADY"}'), undefined);
  assert.equal(sample(gone, 'frakti_cri_requests_total{method="RemovePodSandbox",code="OK"}'), 1);
});

test('bad requests get clear gRPC errors and change nothing', async (t) => {
  const d = await daemon(t, 'bad');
  const rt = d.client.runtime;
  const cases: [Promise<unknown>, number, RegExp][] = [
    [rt.RunPodSandbox!({ config: {} }), status.INVALID_ARGUMENT, /metadata is required/],
    [rt.RunPodSandbox!({ config: podConfig('h', '/tmp', { linux: { security_context: { namespace_options: { network: 'NODE' } } } }) }), status.FAILED_PRECONDITION, /needs the OS-container runtime \(the host's network namespace\).*--os-runtime-endpoint/],
    [rt.PodSandboxStatus!({ pod_sandbox_id: 'f'.repeat(64) }), status.NOT_FOUND, /not found/],
    [rt.StartContainer!({ container_id: 'abc' }), status.NOT_FOUND, /not found/],
    [rt.CreateContainer!({ pod_sandbox_id: 'f'.repeat(64), config: containerConfig('x', ['true']) }), status.NOT_FOUND, /not found/],
  ];
  for (const [p, code, re] of cases) {
    const e = await grpcError(p);
    assert.equal(e.code, code, e.details);
    assert.match(e.details, re);
  }
  // Stop and remove of what does not exist succeed (kubelet retries them).
  await rt.StopPodSandbox!({ pod_sandbox_id: 'f'.repeat(64) });
  await rt.RemovePodSandbox!({ pod_sandbox_id: 'f'.repeat(64) });
  await rt.RemoveContainer!({ container_id: 'e'.repeat(64) });
  assert.deepEqual((await rt.ListPodSandbox!({})).items, []);
});

/**
 * Log lines numbered up from `first` with nothing missing. Lines may come
 * twice (output frakti stored but had not yet acknowledged to the agent when
 * it was killed is sent again), but never more than one stream window of
 * them (`lineBytes` says how long a line was on the stream). Returns how
 * many lines came twice.
 */
function assertConsecutive(nums: number[], lineBytes: (n: number) => number, first: number, last?: number): number {
  let next = first;
  let repeated = 0;
  let repeatedBytes = 0;
  for (const n of nums) {
    assert.ok(n <= next, `${next} missing (got ${n} instead)`);
    if (n === next) {
      next++;
    } else {
      repeated++;
      repeatedBytes += lineBytes(n);
    }
  }
  assert.ok(repeatedBytes <= STREAM_WINDOW_BYTES, `${repeatedBytes} bytes of output logged twice, more than a window`);
  if (last !== undefined) assert.equal(next, last + 1, `the output stops at ${next - 1}, not ${last}`);
  return repeated;
}

test('kill -9 of the daemon: a restart finds pods and containers, logs go on; a VM that died shows as such', async (t) => {
  const { d: first, rt, logDir, config, pod } = await runningPod(t, 'restart', 'survivor');
  const { container_id: c } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: containerConfig('ticker', ['sh', '-c', 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.3; done']), sandbox_config: config });
  await rt.StartContainer!({ container_id: c });
  // Output in full flow when frakti is killed, and more of it (beyond what
  // the agent holds) while frakti is down; the process exits meanwhile.
  const { container_id: burst } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: containerConfig('burst', ['sh', '-c', 'seq 1 100000; sleep 3; seq 100001 250000']), sandbox_config: config });
  await rt.StartContainer!({ container_id: burst });
  const log = join(logDir, 'ticker/0.log');
  const burstLog = join(logDir, 'burst/0.log');
  await waitFor('ticks', async () => (await logLines(log)).length >= 2, 30_000);
  await waitFor('the burst under way', async () => (await readFile(burstLog, 'utf8').catch(() => '')).length > 0, 30_000, 5);
  // An exec whose caller dies with frakti: the next frakti kills it.
  const orphan = rt.ExecSync!({ container_id: c, cmd: ['sleep', '4321'], timeout: '0' }).catch(() => 'gone');
  const sleeping = async (r: typeof rt) => Buffer.from((await r.ExecSync!({ container_id: c, cmd: ['ps'], timeout: '10' })).stdout).toString().includes('sleep 4321');
  await waitFor('the exec to run', () => sleeping(rt), 15_000);

  first.kill('SIGKILL');
  assert.equal(await orphan, 'gone');
  await first.child;
  const before = (await logLines(log)).length;
  const second = await startDaemon({ dir: first.dir });
  t.after(() => second.cleanup());
  const rt2 = second.client.runtime;
  assert.equal((await rt2.PodSandboxStatus!({ pod_sandbox_id: pod })).status.state, 'SANDBOX_READY');
  assert.equal((await rt2.ContainerStatus!({ container_id: c })).status.state, 'CONTAINER_RUNNING');
  await waitFor('the left-over exec to be killed', async () => !(await sleeping(rt2)), 15_000);
  await waitFor('ticks after the restart', async () => (await logLines(log)).length >= before + 3, 30_000);
  // Nothing was lost across the restart: the ticks are consecutive.
  assertConsecutive((await logLines(log)).map((l) => Number(/tick (\d+)/.exec(l)?.[1])), (n) => `tick ${n}\n`.length, 0);
  // The burst: everything in the log, then its exit recorded.
  await waitFor('the burst to exit', async () => (await rt2.ContainerStatus!({ container_id: burst })).status.state === 'CONTAINER_EXITED', 60_000);
  const bs = (await rt2.ContainerStatus!({ container_id: burst })).status;
  assert.deepEqual([bs.exit_code, bs.reason], [0, 'Completed']);
  const twice = assertConsecutive((await logLines(burstLog)).map((l) => Number(/^stdout (\d+)$/.exec(l)?.[1])), (n) => `${n}\n`.length, 1, 250_000);
  t.diagnostic(`burst lines logged twice across the restart: ${twice}`);

  // The VM dies (a crash, an OOM kill of QEMU): the pod goes NOTREADY, its container EXITED.
  const ps = await rt2.PodSandboxStatus!({ pod_sandbox_id: pod, verbose: true });
  const vmPid = JSON.parse(ps.info.info).vmPid as number;
  process.kill(vmPid, 'SIGKILL');
  await waitFor('the pod to become NOTREADY', async () => (await rt2.PodSandboxStatus!({ pod_sandbox_id: pod })).status.state === 'SANDBOX_NOTREADY', 15_000);
  const cs = (await rt2.ContainerStatus!({ container_id: c })).status;
  assert.equal(cs.state, 'CONTAINER_EXITED');
  assert.match(cs.message, /VM exited/);
  await rt2.RemovePodSandbox!({ pod_sandbox_id: pod });
  assert.deepEqual(await vmProcessesUnder(first.dir), []);
  await second.cleanup();
});

test('five pods at once', async (t) => {
  const d = await daemon(t, 'five');
  const rt = d.client.runtime;
  await d.client.image.PullImage!({ image: { image } });
  const logDir = join(d.dir, 'logs');
  const names = ['p0', 'p1', 'p2', 'p3', 'p4'];
  // Every start is waited for, failed or not, so that a failure leaves no call running into the cleanup.
  const started = await Promise.allSettled(names.map(async (n) => {
    const config = podConfig(n, join(logDir, n));
    const { pod_sandbox_id } = await rt.RunPodSandbox!({ config }, { timeoutMs: 180_000 });
    const { container_id } = await rt.CreateContainer!({ pod_sandbox_id, config: containerConfig('main', ['sh', '-c', `echo I am ${n}; sleep 1000`]), sandbox_config: config }, { timeoutMs: 120_000 });
    await rt.StartContainer!({ container_id });
    return { n, pod: pod_sandbox_id as string, c: container_id as string };
  }));
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
  const pods = started.map((r) => (r as PromiseFulfilledResult<{ n: string; pod: string; c: string }>).value);
  const ips = new Set<string>();
  for (const p of pods) {
    await waitFor(`${p.n} output`, async () => (await logLines(join(logDir, p.n, 'main/0.log'))).includes(`stdout I am ${p.n}`), 60_000);
    ips.add((await rt.PodSandboxStatus!({ pod_sandbox_id: p.pod })).status.network.ip);
  }
  assert.equal(ips.size, 5, 'every pod has its own IP');
  assert.equal((await rt.ListPodSandbox!({ filter: { state: { state: 'SANDBOX_READY' } } })).items.length, 5);
  // The Stream* calls (KEP-5825): what the List* calls answer, one item a message, filters honoured.
  type Msg = Record<string, { id?: string; attributes?: { id: string } }[]>;
  const streamed = async (rpc: string, field: string, req: Record<string, unknown>) => {
    const msgs = (await d.client.runtimeStream[rpc]!(req)) as Msg[];
    assert.ok(msgs.every((m) => m[field]!.length === 1), `${rpc}: one item a message`);
    return msgs.map((m) => m[field]![0]!.id ?? m[field]![0]!.attributes!.id).sort();
  };
  const podIds = pods.map((p) => p.pod).sort();
  assert.deepEqual(await streamed('StreamPodSandboxes', 'pod_sandboxes', { filter: { state: { state: 'SANDBOX_READY' } } }), podIds);
  assert.deepEqual(await streamed('StreamPodSandboxes', 'pod_sandboxes', { filter: { state: { state: 'SANDBOX_NOTREADY' } } }), []);
  assert.deepEqual(await streamed('StreamContainers', 'containers', { filter: { pod_sandbox_id: pods[0]!.pod } }), [pods[0]!.c]);
  assert.deepEqual(await streamed('StreamContainerStats', 'container_stats', {}), pods.map((p) => p.c).sort());
  assert.deepEqual(await streamed('StreamPodSandboxStats', 'pod_sandbox_stats', {}), podIds);
  await Promise.all(pods.map((p) => rt.RemovePodSandbox!({ pod_sandbox_id: p.pod }, { timeoutMs: 120_000 })));
  assert.deepEqual(await vmProcessesUnder(d.dir), []);
});

test('frakti run: output, exit code, and nothing left', async (t) => {
  const rdir = join(dir, 'run');
  await mkdir(rdir, { recursive: true });
  t.after(() => rm(rdir, { recursive: true, force: true }));
  // No CNI config: frakti's own bridge network, as on a fresh machine. Its bridge goes if this test made it.
  const bridgeBefore = (await execa('ip', ['link', 'show', 'frakti0'], { reject: false })).exitCode === 0;
  t.after(async () => {
    if (!bridgeBefore) await execa('ip', ['link', 'del', 'frakti0'], { reject: false });
  });
  const base = ['run', '--root', join(rdir, 'root'), '--state', join(rdir, 'state'), '--cni-conf-dir', join(rdir, 'cni')];
  const { frakti } = await import('../../helpers/cli-run.js');
  const ok = await frakti([...base, image, '--', 'sh', '-c', 'echo hello from a VM; echo oops >&2; exit 7'], { timeout: 180_000 });
  assert.equal(ok.exitCode, 7, ok.stderr);
  assert.equal(ok.stdout, 'hello from a VM');
  assert.match(ok.stderr, /oops/);
  // -i: our stdin reaches the command and its EOF closes the command's; -t: the command has a terminal.
  const piped = await frakti([...base, '-i', image, '--', 'sh', '-c', 'read x; echo "got $x"; cat | wc -c'], { timeout: 180_000, input: 'hello\nmore bytes\n' });
  assert.equal(piped.exitCode, 0, piped.stderr);
  assert.deepEqual(piped.stdout.split('\n').map((l) => l.trim()), ['got hello', '11']);
  const term = await frakti([...base, '-t', image, '--', 'sh', '-c', 'tty; stty size'], { timeout: 180_000 });
  assert.equal(term.exitCode, 0, term.stderr);
  assert.match(term.stdout, /^\/dev\/pts\/\d+\r\n24 80/);
  assert.deepEqual(await processesMentioning(rdir), []);
  assert.deepEqual(await mountsUnder(rdir), []);
  const bad = await frakti([...base], { timeout: 30_000 });
  assert.equal(bad.exitCode, 2);
  assert.match(bad.stderr, /missing IMAGE/);
});
