// The pool of pod VMs booted ahead (--vm-pool): a pod takes a pool VM and
// gets everything a cold pod gets (network, hostPort, hostname, DNS, its
// memory); two pods never get one VM, nor share a namespace, a share, a
// virtiofsd or kernel random state; the pool refills; a pod that does not
// fit boots cold; a frakti killed with pool VMs booting and ready leaves
// nothing once restarted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { busyboxFixture } from '../../helpers/busybox-fixture.js';
import { startDaemon, waitFor, type RunningDaemon } from '../../helpers/cri-client.js';
import { daemonLeavingNothing } from '../../helpers/e2e-daemon.js';
import { processesMentioning } from '../../helpers/vmm-leaks.js';
import { frakti } from '../../helpers/cli-run.js';
import { auditLeaks, nodeBaseline } from '../../faults/leak-audit.js';
import { ipIn } from '../../../src/network/index.js';
import { podNetnsName } from '../../../src/pod/pod-network.js';

let dir: string;
let image: string;

busyboxFixture('frakti-pool-', (f) => {
  ({ dir, image } = f);
});

interface Pool {
  size: number;
  ready: number;
  booting: number;
}

async function pool(d: RunningDaemon): Promise<Pool | undefined> {
  const st = await d.client.runtime.Status!({ verbose: true });
  return st.info.vm_pool ? (JSON.parse(st.info.vm_pool) as Pool) : undefined;
}

/** The VM folders under the daemon's state: pool VMs' and pods' alike, by the first 16 digits of their id. */
const vmDirs = async (d: RunningDaemon) => new Set(await readdir(join(d.state, 'vm')).catch(() => [] as string[]));

async function bridgeGateway(d: RunningDaemon): Promise<string> {
  const conf = JSON.parse(await readFile(join(d.dir, 'cni', '10-test.conflist'), 'utf8')) as { plugins: { ipam?: { ranges: { subnet: string }[][] } }[] };
  return conf.plugins[0]!.ipam!.ranges[0]![0]!.subnet.replace(/\.0\/24$/, '.1');
}

function tcpRead(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    let out = '';
    const timer = setTimeout(() => (s.destroy(), reject(new Error(`no answer from ${host}:${port}`))), 5_000);
    s.on('data', (b) => (out += b.toString()));
    s.on('end', () => (clearTimeout(timer), resolve(out)));
    s.on('error', (e) => (clearTimeout(timer), reject(e)));
    s.end('ping\n');
  });
}

async function runPod(d: RunningDaemon, name: string, extra: Record<string, unknown> = {}) {
  const rt = d.client.runtime;
  const config = {
    metadata: { name, uid: `uid-${name}`, namespace: 'pool', attempt: 0 },
    hostname: `${name}-host`,
    log_directory: join(d.dir, 'logs', name),
    dns_config: { servers: ['10.96.0.10'], searches: ['pool.svc.cluster.local'], options: ['ndots:2'] },
    linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
    ...extra,
  };
  const t0 = Date.now();
  const { pod_sandbox_id: pod } = await rt.RunPodSandbox!({ config }, { timeoutMs: 120_000 });
  const ms = Date.now() - t0;
  const { container_id: c } = await rt.CreateContainer!({
    pod_sandbox_id: pod,
    config: { metadata: { name: 'main', attempt: 0 }, image: { image }, command: ['sh', '-c', 'while true; do echo pong | nc -l -p 8080; done'], log_path: 'main.log' },
    sandbox_config: config,
  }, { timeoutMs: 120_000 });
  await rt.StartContainer!({ container_id: c });
  const exec = async (script: string) => Buffer.from((await rt.ExecSync!({ container_id: c, cmd: ['sh', '-c', script], timeout: '30' })).stdout).toString();
  return { pod, c, ms, exec };
}

test('pods take pool VMs: network, hostPort, hostname, DNS and memory as a cold pod; never one VM twice, nothing shared; the pool refills; a pod that does not fit boots cold', { timeout: 10 * 60_000 }, async (t) => {
  const d = await daemonLeavingNothing(t, dir, 'pool', ['--vm-pool', '2']);
  await d.client.image.PullImage!({ image: { image } }, { timeoutMs: 120_000 });
  await waitFor('the pool to fill', async () => (await pool(d))?.ready === 2, 180_000, 250);
  const pooled = await vmDirs(d);
  assert.equal(pooled.size, 2, 'two pool VMs, each with its own VM folder');
  const check = await frakti(['check', '--listen', d.socket, '--os-runtime-endpoint', '']);
  assert.match(check.stdout, /vm pool\s+2 of 2 ready, 0 booting/);

  const hostPort = 21000 + Math.floor(Math.random() * 9000);
  const a = await runPod(d, 'a', { port_mappings: [{ protocol: 'TCP', container_port: 8080, host_port: hostPort }] });
  const b = await runPod(d, 'b', { linux: { resources: { memory_limit_in_bytes: String(512 * 1024 * 1024) }, security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } } });
  t.diagnostic(`RunPodSandbox from the pool: ${a.ms} ms and ${b.ms} ms`);
  assert.ok(pooled.has(a.pod.slice(0, 16)), 'the first pod runs in a pool VM');
  assert.ok(pooled.has(b.pod.slice(0, 16)), 'the second pod runs in the other pool VM');
  assert.notEqual(a.pod, b.pod);

  // What a cold pod gets.
  assert.equal((await a.exec('hostname')).trim(), 'a-host');
  assert.match(await a.exec('cat /etc/resolv.conf'), /nameserver 10\.96\.0\.10[\s\S]*search pool\.svc\.cluster\.local/);
  // The NIC a pool VM booted with took the MAC CNI gave eth0 in the pod's
  // namespace (a ping works without it: the bridge learns any MAC).
  for (const p of [a, b]) {
    const cniMac = (JSON.parse(await ipIn(podNetnsName(p.pod), ['-j', 'link', 'show', 'eth0'])) as { address: string }[])[0]!.address;
    assert.equal((await p.exec('cat /sys/class/net/eth0/address')).trim(), cniMac, `pod ${p.pod}'s NIC has CNI's MAC`);
  }
  const gw = await bridgeGateway(d);
  assert.match(await a.exec(`ping -c 1 -W 5 ${gw} >/dev/null && echo reached`), /reached/);
  await waitFor('the hostPort', async () => (await tcpRead(gw, hostPort)).trim() === 'pong', 30_000, 300);
  const memTotalMiB = (text: string) => Number(/MemTotal:\s+(\d+)/.exec(text)?.[1]) / 1024;
  const memA = memTotalMiB(await a.exec('cat /proc/meminfo'));
  const memB = memTotalMiB(await b.exec('cat /proc/meminfo'));
  t.diagnostic(`guest memory: ${memA.toFixed(0)} MiB (default), ${memB.toFixed(0)} MiB (512 MiB asked)`);
  assert.ok(memB > memA + 200, 'memory beyond the pool size was added');

  // The container took the spare process its pool VM forked while idle
  // (PID and cgroup made ahead); an exec joins that same cgroup. A second
  // container gets a cgroup of its own, and the limit it was created with
  // holds: a 48 MiB buffer under 32 MiB is OOM-killed, outside it is not.
  // The init's and the exec's own: cgroup v2 ("0::") and the devices cgroup, each.
  const cgroupOf = async (exec: (s: string) => Promise<string>) => Promise.all(['/proc/1/cgroup', '/proc/self/cgroup'].map(async (f) => (await exec(`cat ${f}`)).trim()));
  const [initCg, execCg] = await cgroupOf(a.exec);
  assert.match(initCg!, /^0::\/frakti\/_spare-\d+$/m, 'the init runs in the cgroup of the spare it took');
  assert.equal(execCg, initCg, 'an exec joins its container\'s cgroup');
  const { container_id: small } = await d.client.runtime.CreateContainer!({
    pod_sandbox_id: a.pod,
    config: { metadata: { name: 'small', attempt: 0 }, image: { image }, command: ['sleep', '3600'], log_path: 'small.log', linux: { resources: { memory_limit_in_bytes: String(32 * 1024 * 1024) } } },
    sandbox_config: { metadata: { name: 'a', uid: 'uid-a', namespace: 'pool', attempt: 0 } },
  }, { timeoutMs: 120_000 });
  await d.client.runtime.StartContainer!({ container_id: small });
  const execIn = async (id: string, script: string) => Buffer.from((await d.client.runtime.ExecSync!({ container_id: id, cmd: ['sh', '-c', script], timeout: '30' })).stdout).toString();
  const [smallInit, smallExec] = await cgroupOf((s) => execIn(small, s));
  assert.notEqual(smallInit, initCg, 'the second container has a cgroup of its own');
  assert.equal(smallExec, smallInit);
  assert.equal((await execIn(small, 'echo $$ $PPID')).trim().split(' ')[1], '0', 'an exec sees its container\'s PID namespace');
  const big = 'dd if=/dev/zero of=/dev/null bs=48M count=1 2>/dev/null; echo rc=$?';
  assert.match(await execIn(small, big), /rc=137/, 'the created limit holds');
  assert.match(await a.exec(big), /rc=0/, 'the first container has no such limit');

  // Nothing shared: kernel random state, boot, namespace, share, virtiofsd.
  const rand = 'cat /proc/sys/kernel/random/boot_id; head -c 16 /dev/urandom | od -An -tx1';
  assert.notEqual(await a.exec(rand), await b.exec(rand), 'boot_id and urandom differ');
  const [nsA, nsB] = await Promise.all([a, b].map(async (p) => (await d.client.runtime.PodSandboxStatus!({ pod_sandbox_id: p.pod })).status.network.ip as string));
  assert.notEqual(nsA, nsB);
  const virtiofsd = (await processesMentioning(d.state)).filter((p) => /virtiofsd/.test(p.cmd));
  for (const p of [a, b]) assert.equal(virtiofsd.filter((v) => v.cmd.includes(`/pods/${p.pod}/shared`)).length >= 1, true, `pod ${p.pod} has its own virtiofsd`);

  // Refilled with new VMs, never the ones taken.
  await waitFor('the pool to refill', async () => (await pool(d))?.ready === 2, 180_000, 250);
  const now = await vmDirs(d);
  const fresh = [...now].filter((x) => !pooled.has(x));
  assert.equal(fresh.length, 2, 'two new pool VMs');

  // More vCPUs than a pool VM has (none can be added under TCG): a cold boot.
  const c = await runPod(d, 'c', { linux: { resources: { cpu_quota: '200000', cpu_period: '100000' }, security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } } });
  assert.ok(!now.has(c.pod.slice(0, 16)), 'a pod that does not fit boots its own VM');
  assert.equal((await c.exec('nproc')).trim(), '2');
  const cniMacC = (JSON.parse(await ipIn(podNetnsName(c.pod), ['-j', 'link', 'show', 'eth0'])) as { address: string }[])[0]!.address;
  assert.equal((await c.exec('cat /sys/class/net/eth0/address')).trim(), cniMacC, 'a cold pod\'s NIC has CNI\'s MAC too');
  assert.equal((await pool(d))?.ready, 2, 'the pool is left as it was');
  t.diagnostic(`cold RunPodSandbox (2 vCPUs): ${c.ms} ms`);
});

test('kill -9 of frakti with pool VMs ready and booting: the next frakti removes them; nothing leaks', { timeout: 10 * 60_000 }, async (t) => {
  const base = await nodeBaseline();
  const ddir = join(dir, 'killed');
  let d = await startDaemon({ dir: ddir, args: ['--vm-pool', '2'] });
  t.after(async () => {
    await d.cleanup();
    await rm(ddir, { recursive: true, force: true });
  });
  await waitFor('a pool VM ready and one booting', async () => {
    const p = await pool(d);
    return p?.ready === 1 && p.booting === 1;
  }, 180_000, 100);
  // The second VM is part way through its boot.
  await new Promise((r) => setTimeout(r, 300));
  const before = await vmDirs(d);
  d.kill('SIGKILL');
  await d.stop();
  d = await startDaemon({ dir: ddir, args: ['--vm-pool', '0'] });
  assert.deepEqual([...(await vmDirs(d))], [], 'the VM folders are gone');
  for (const v of before) assert.deepEqual(await processesMentioning(`/vm/${v}/`), [], `the processes of pool VM ${v} are gone`);
  assert.equal(await pool(d), undefined, 'no pool: --vm-pool 0');
  assert.deepEqual(await auditLeaks(d, base), []);
});
