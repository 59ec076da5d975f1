// A container's security context inside a pod VM, checked as a user would
// from inside: masked and read-only paths, the pod's sysctls, setuid and
// no_new_privs. Real daemon, real QEMU.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { status } from '@grpc/grpc-js';
import { busyboxLayers, pushImage, startRegistry, writeImage, writeLayoutIndex, type LayerEntry, type Registry } from '../../helpers/image-registry.js';
import { grpcError, type RunningDaemon } from '../../helpers/cri-client.js';
import { daemonLeavingNothing } from '../../helpers/e2e-daemon.js';

let dir: string;
let reg: Registry;
let image: string;
let usr1Image: string;
let netImage: string;

/** Debian's iptables (legacy), with the libraries and xtables modules it loads, for an image. */
async function iptablesLayer(): Promise<LayerEntry[]> {
  const libDir = '/usr/lib/x86_64-linux-gnu';
  const file = async (path: string, mode = 0o755): Promise<LayerEntry> => ({ name: path.slice(1), content: await readFile(await realpath(path)), mode });
  const libs = ['libc.so.6', 'ld-linux-x86-64.so.2', 'libxtables.so.12', 'libip4tc.so.2', 'libip6tc.so.2'];
  const modules = ['libxt_REDIRECT.so', 'libxt_tcp.so', 'libxt_udp.so', 'libxt_owner.so', 'libxt_standard.so'];
  return [
    { name: 'usr/', type: 'directory' }, { name: 'usr/lib/', type: 'directory' }, { name: 'usr/lib/x86_64-linux-gnu/', type: 'directory' },
    { name: 'usr/lib/x86_64-linux-gnu/xtables/', type: 'directory' }, { name: 'usr/sbin/', type: 'directory' },
    ...(await Promise.all(libs.map((l) => file(`${libDir}/${l}`)))),
    ...(await Promise.all(modules.map((m) => file(`${libDir}/xtables/${m}`)))),
    { name: 'lib', type: 'symlink', linkname: 'usr/lib' },
    { name: 'lib64/', type: 'directory' },
    { name: 'lib64/ld-linux-x86-64.so.2', type: 'symlink', linkname: `${libDir}/ld-linux-x86-64.so.2` },
    await file('/usr/sbin/xtables-legacy-multi'),
    { name: 'bin/iptables', type: 'symlink', linkname: '/usr/sbin/xtables-legacy-multi' },
    { name: 'bin/brctl', type: 'symlink', linkname: 'busybox' },
    { name: 'bin/ip', type: 'symlink', linkname: 'busybox' },
    { name: 'run/', type: 'directory' },
  ];
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'frakti-sec-'));
  reg = await startRegistry();
  image = `${reg.host}/sec:latest`;
  const tool = async (name: string) => {
    const out = join(dir, name);
    await execa('musl-gcc', ['-O2', '-static', '-o', out, fileURLToPath(new URL(`../../../../test/fixtures/${name}.c`, import.meta.url))]);
    return readFile(out);
  };
  const layers = await busyboxLayers();
  layers.push([
    { name: 'bin/', type: 'directory' },
    { name: 'bin/euid', content: await tool('euid'), mode: 0o4755, uid: 0, gid: 0 },
    { name: 'bin/sysprobe', content: await tool('sysprobe'), mode: 0o755 },
  ]);
  const layout = join(dir, 'layout');
  const m = await writeImage(layout, { layers, config: { Cmd: ['sh'], WorkingDir: '/' } });
  await writeLayoutIndex(layout, m, 'latest');
  await pushImage(layout, image);
  // The same image with STOPSIGNAL SIGUSR1.
  usr1Image = `${reg.host}/sec:usr1`;
  const layout2 = join(dir, 'layout-usr1');
  const m2 = await writeImage(layout2, { layers, config: { Cmd: ['sh'], WorkingDir: '/', StopSignal: 'SIGUSR1' } });
  await writeLayoutIndex(layout2, m2, 'latest');
  await pushImage(layout2, usr1Image);
  netImage = `${reg.host}/sec:net`;
  const layout3 = join(dir, 'layout-net');
  const m3 = await writeImage(layout3, { layers: [...layers, await iptablesLayer()], config: { Cmd: ['sh'], WorkingDir: '/' } });
  await writeLayoutIndex(layout3, m3, 'latest');
  await pushImage(layout3, netImage);
});

after(async () => {
  await reg?.stop();
  await rm(dir, { recursive: true, force: true });
});

function podConfig(name: string, logDir: string, sysctls: Record<string, string> = {}) {
  return {
    metadata: { name, uid: `uid-${name}`, namespace: 'default', attempt: 0 },
    hostname: name,
    log_directory: logDir,
    linux: { sysctls, security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
  };
}

async function exec(d: RunningDaemon, ctr: string, script: string) {
  const r = await d.client.runtime.ExecSync!({ container_id: ctr, cmd: ['sh', '-c', script], timeout: '30' });
  return { out: Buffer.from(r.stdout).toString(), err: Buffer.from(r.stderr).toString(), code: r.exit_code as number };
}

test('masked and read-only paths, the pod\'s sysctls, setuid with and without no_new_privs', async (t) => {
  const d = await daemonLeavingNothing(t, dir, 'sec');
  const rt = d.client.runtime;
  await d.client.image.PullImage!({ image: { image } }, { timeoutMs: 120_000 });
  const bad = await grpcError(rt.RunPodSandbox!({ config: podConfig('bad', '/tmp', { 'vm.swappiness': '10' }) }));
  assert.equal(bad.code, status.INVALID_ARGUMENT);
  assert.match(bad.details, /sysctl vm\.swappiness is not one of the pod's namespaces/);

  const config = podConfig('sec', join(d.dir, 'logs'), { 'kernel.shm_rmid_forced': '1', 'kernel.msgmax': '12345' });
  const { pod_sandbox_id: pod } = await rt.RunPodSandbox!({ config }, { timeoutMs: 120_000 });
  const ctr = async (name: string, sc: Record<string, unknown>) => {
    const { container_id: c } = await rt.CreateContainer!({
      pod_sandbox_id: pod,
      config: { metadata: { name, attempt: 0 }, image: { image }, command: ['sleep', '100000'], linux: { security_context: sc } },
      sandbox_config: config,
    }, { timeoutMs: 120_000 });
    await rt.StartContainer!({ container_id: c });
    return c;
  };

  // No lists from the client: containerd's defaults.
  const plain = await ctr('plain', {});
  assert.equal((await exec(d, plain, 'cat /proc/timer_list; cat /proc/keys; ls -A /sys/firmware; echo end')).out, 'end\n', 'masked paths show nothing');
  const ro = await exec(d, plain, 'echo 0 > /proc/sys/kernel/shm_rmid_forced');
  assert.notEqual(ro.code, 0);
  assert.match(ro.err, /Read-only file system/);
  // The pod's IPC sysctls are the containers' (they share the pod's IPC namespace).
  assert.equal((await exec(d, plain, 'cat /proc/sys/kernel/shm_rmid_forced /proc/sys/kernel/msgmax')).out, '1\n12345\n');

  // The lists kubelet sends are taken as they are.
  const listed = await ctr('listed', { masked_paths: ['/etc/passwd'], readonly_paths: ['/tmp'] });
  assert.equal((await exec(d, listed, 'cat /etc/passwd; echo end')).out, 'end\n');
  assert.match((await exec(d, listed, 'touch /tmp/x')).err, /Read-only file system/);
  assert.equal((await exec(d, listed, 'out=$(cat /proc/timer_list); test -n "$out" && echo shown')).out, 'shown\n', 'only the paths asked for are masked');

  // A setuid-root binary run by uid 1000: root without no_new_privs, not with it.
  const escalates = await ctr('escalates', { run_as_user: { value: '1000' }, no_new_privs: false });
  assert.equal((await exec(d, escalates, '/bin/euid')).out, 'uid=1000 euid=0\n');
  const nnp = await ctr('nnp', { run_as_user: { value: '1000' }, no_new_privs: true });
  assert.equal((await exec(d, nnp, '/bin/euid')).out, 'uid=1000 euid=1000\n');

  // A non-root process keeps an ambient capability across execve, and only that one.
  const caps = async (c: string) => Object.fromEntries([...(await exec(d, c, 'cat /proc/self/status')).out.matchAll(/^(Cap\w+):\s+([0-9a-f]+)$/gm)].map((m) => [m[1], m[2]]));
  const amb = await ctr('ambient', { run_as_user: { value: '1000' }, capabilities: { add_capabilities: [], drop_capabilities: [], add_ambient_capabilities: ['NET_BIND_SERVICE'] } });
  const held = await caps(amb);
  assert.equal(held.CapAmb, '0000000000000400');
  assert.equal(held.CapEff, '0000000000000400', 'CAP_NET_BIND_SERVICE effective for uid 1000');
  assert.equal((await caps(nnp)).CapEff, '0000000000000000', 'without ambient, uid 1000 holds none');
});

test('StopContainer sends the image\'s STOPSIGNAL, or the one the client names, and returns once the process is gone', async (t) => {
  const d = await daemonLeavingNothing(t, dir, 'stop');
  const rt = d.client.runtime;
  for (const i of [image, usr1Image]) await d.client.image.PullImage!({ image: { image: i } }, { timeoutMs: 120_000 });
  const config = podConfig('stop', join(d.dir, 'logs'));
  const { pod_sandbox_id: pod } = await rt.RunPodSandbox!({ config }, { timeoutMs: 120_000 });
  const trapper = ['sh', '-c', 'trap "echo got USR1; exit 3" USR1; trap "echo got HUP; exit 4" HUP; trap "echo got TERM; exit 5" TERM; while true; do sleep 0.2; done'];
  const run = async (name: string, img: string, extra: Record<string, unknown> = {}) => {
    const { container_id: c } = await rt.CreateContainer!({
      pod_sandbox_id: pod,
      config: { metadata: { name, attempt: 0 }, image: { image: img }, command: trapper, log_path: `${name}.log`, ...extra },
      sandbox_config: config,
    }, { timeoutMs: 120_000 });
    await rt.StartContainer!({ container_id: c });
    await new Promise((r) => setTimeout(r, 500)); // the traps are set
    const t0 = Date.now();
    await rt.StopContainer!({ container_id: c, timeout: '30' }, { timeoutMs: 60_000 });
    const took = Date.now() - t0;
    const st = (await rt.ContainerStatus!({ container_id: c })).status;
    return { took, exit: st.exit_code as number, signal: st.stop_signal as string };
  };
  const fromImage = await run('image', usr1Image);
  assert.deepEqual([fromImage.exit, fromImage.signal], [3, 'SIGNAL_SIGUSR1']);
  const asked = await run('asked', usr1Image, { stop_signal: 'SIGNAL_SIGHUP' });
  assert.deepEqual([asked.exit, asked.signal], [4, 'SIGNAL_SIGHUP']);
  const plain = await run('plain', image);
  assert.deepEqual([plain.exit, plain.signal], [5, 'SIGNAL_SIGTERM']);
  for (const r of [fromImage, asked, plain]) assert.ok(r.took < 10_000, `StopContainer returned ${r.took} ms after its call, not at the 30 s timeout`);
  const rt2 = await grpcError(rt.CreateContainer!({ pod_sandbox_id: pod, config: { metadata: { name: 'rt', attempt: 0 }, image: { image }, command: ['true'], stop_signal: 'SIGNAL_SIGRTMINPLUS3' }, sandbox_config: config }));
  assert.equal(rt2.code, status.INVALID_ARGUMENT);
  assert.match(rt2.details, /stop signal SIGRTMIN\+3 is not one/);
});

test('seccomp: RuntimeDefault, Unconfined and Localhost profiles hold in the container and its execs; bad profiles are refused', async (t) => {
  const d = await daemonLeavingNothing(t, dir, 'seccomp');
  const rt = d.client.runtime;
  await d.client.image.PullImage!({ image: { image } }, { timeoutMs: 120_000 });
  const noChmod = join(dir, 'no-chmod.json');
  await writeFile(noChmod, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64'], syscalls: [{ names: ['chmod', 'fchmod', 'fchmodat'], action: 'SCMP_ACT_ERRNO' }] }));
  const notJson = join(dir, 'not.json');
  await writeFile(notJson, '{ not json');
  const config = podConfig('seccomp', join(d.dir, 'logs'));
  const { pod_sandbox_id: pod } = await rt.RunPodSandbox!({ config }, { timeoutMs: 120_000 });
  const create = (name: string, sc: Record<string, unknown>) =>
    rt.CreateContainer!({ pod_sandbox_id: pod, config: { metadata: { name, attempt: 0 }, image: { image }, command: ['sleep', '100000'], linux: { security_context: sc } }, sandbox_config: config }, { timeoutMs: 120_000 });
  const ctr = async (name: string, sc: Record<string, unknown>) => {
    const { container_id: c } = await create(name, sc);
    await rt.StartContainer!({ container_id: c });
    return c;
  };
  const mode = async (c: string, pid: string) => /^Seccomp:\s+(\d)/m.exec((await exec(d, c, `cat /proc/${pid}/status`)).out)?.[1];
  const probe = async (c: string, nr: number, arg = 0) => (await exec(d, c, `/bin/sysprobe ${nr} ${arg}`)).out.trim();
  const PERSONALITY = 135;
  const SOCKET = 41;
  const CHMOD = 90;

  const def = await ctr('default', { seccomp: { profile_type: 'RuntimeDefault' } });
  assert.equal(await mode(def, '1'), '2', 'the container\'s own process is filtered');
  assert.equal(await mode(def, 'self'), '2', 'so is an exec');
  assert.equal(await probe(def, PERSONALITY, 3), 'errno 1', 'an unusual personality is refused');
  assert.equal(await probe(def, PERSONALITY, 0), 'ok');
  assert.equal(await probe(def, SOCKET, 40), 'errno 1', 'no vsock socket');
  assert.equal((await exec(d, def, 'echo works')).out, 'works\n');

  const legacy = await ctr('legacy', { seccomp_profile_path: 'runtime/default' });
  assert.equal(await mode(legacy, 'self'), '2');

  const open = await ctr('open', {});
  assert.equal(await mode(open, 'self'), '0', 'nothing asked: unconfined');
  assert.equal(await probe(open, PERSONALITY, 3), 'ok');
  assert.equal(await probe(open, CHMOD), 'errno 14', 'chmod(NULL) fails with EFAULT, not the filter');

  for (const sc of [{ seccomp: { profile_type: 'Localhost', localhost_ref: noChmod } }, { seccomp_profile_path: `localhost/${noChmod}` }]) {
    const c = await ctr(`local${Math.random().toString(16).slice(2, 6)}`, sc);
    assert.equal(await probe(c, CHMOD), 'errno 1', 'the profile blocks chmod');
    assert.equal(await probe(c, PERSONALITY, 3), 'ok', 'and nothing else');
  }

  for (const [sc, msg] of [
    [{ seccomp: { profile_type: 'Localhost', localhost_ref: notJson } }, /seccomp profile .*not\.json: not JSON/],
    [{ seccomp: { profile_type: 'Localhost', localhost_ref: join(dir, 'missing.json') } }, /missing\.json: cannot be read/],
    [{ seccomp_profile_path: 'no-chmod' }, /seccomp profile "no-chmod" is not unconfined, runtime\/default/],
  ] as const) {
    const e = await grpcError(create(`bad${Math.random().toString(16).slice(2, 6)}`, sc));
    assert.equal(e.code, status.INVALID_ARGUMENT, e.details);
    assert.match(e.details, msg);
  }
});

test('NET_ADMIN in the pod: a bridge, and an iptables NAT REDIRECT rule as a service mesh\'s init container writes it, which then redirects', async (t) => {
  const d = await daemonLeavingNothing(t, dir, 'netadmin');
  const rt = d.client.runtime;
  await d.client.image.PullImage!({ image: { image: netImage } }, { timeoutMs: 120_000 });
  const config = podConfig('netadmin', join(d.dir, 'logs'));
  const { pod_sandbox_id: pod } = await rt.RunPodSandbox!({ config }, { timeoutMs: 120_000 });
  const ctr = async (name: string, add: string[]) => {
    const { container_id: c } = await rt.CreateContainer!({
      pod_sandbox_id: pod,
      config: {
        metadata: { name, attempt: 0 },
        image: { image: netImage },
        command: ['sh', '-c', 'while true; do echo redirected | nc -l -p 9090; done'],
        linux: { security_context: { capabilities: { add_capabilities: add, drop_capabilities: [] } } },
      },
      sandbox_config: config,
    }, { timeoutMs: 120_000 });
    await rt.StartContainer!({ container_id: c });
    return c;
  };
  const admin = await ctr('admin', ['NET_ADMIN', 'NET_RAW']);
  const br = await exec(d, admin, 'brctl addbr brtest && ip link set brtest up && ip link show brtest');
  assert.equal(br.code, 0, br.err);
  assert.match(br.out, /brtest/);
  const rule = await exec(d, admin, 'iptables -t nat -A OUTPUT -p tcp --dport 8080 -m owner ! --uid-owner 1337 -j REDIRECT --to-ports 9090 && iptables -t nat -S OUTPUT');
  assert.equal(rule.code, 0, rule.err);
  assert.match(rule.out, /-A OUTPUT -p tcp -m tcp --dport 8080 -m owner ! --uid-owner 1337 -j REDIRECT --to-ports 9090/);
  let got = '';
  for (let i = 0; i < 20 && got !== 'redirected'; i++) {
    got = (await exec(d, admin, 'nc -w 3 127.0.0.1 8080 </dev/null')).out.trim();
    if (got !== 'redirected') await new Promise((r) => setTimeout(r, 250));
  }
  assert.equal(got, 'redirected', 'a connection to 8080 reached the listener on 9090');
  // Without NET_ADMIN the same tools are refused.
  const plain = await ctr('plain', []);
  const refused = await exec(d, plain, 'iptables -t nat -S OUTPUT');
  assert.notEqual(refused.code, 0);
  assert.notEqual((await exec(d, plain, 'brctl addbr brno')).code, 0);
});
