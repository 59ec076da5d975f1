// The full agent in a real VM: containers and processes created, run,
// signalled and streamed through the real client. One VM for the file.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createConnection } from 'node:net';
import { after, before, test } from 'node:test';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentCallError, AgentError, type GuestContainerSpec } from '../../../src/agent-protocol/index.js';
import { AGENT_MAGIC, encodeFrame, FrameType, HOST_MAGIC, STREAM_WINDOW_BYTES } from '../../../src/agent-protocol/framing.js';
import { pack } from '../../helpers/agent-fake-peer.js';
import { containerSpec, execProc, proc, readAll, startAgentVm, type AgentVm } from '../../helpers/agent-vm.js';

let pod: AgentVm;

const spec = containerSpec;

async function run(cid: string, args: string[], extra: Parameters<typeof execProc>[1] = {}, execId = `x${Math.random().toString(16).slice(2, 10)}`, timeoutMs = 10_000) {
  const p = await pod.agent.exec(cid, execId, execProc(args, extra), { timeoutMs });
  const [stdout, stderr, exit] = await Promise.all([readAll(p.stdout), readAll(p.stderr), pod.agent.wait(cid, execId)]);
  return { stdout: stdout.toString(), stderr: stderr.toString(), exit };
}

async function startContainer(s: GuestContainerSpec) {
  await pod.agent.createContainer(s);
  const started = await pod.agent.startContainer(s.id);
  started.stdout.resume();
  started.stderr.resume();
  return started;
}

before(async () => {
  // Two vCPUs, the second left offline by the kernel: what onlineHotplugged finds after a hotplug.
  pod = await startAgentVm({ cpus: 2, kernelArgs: ['maxcpus=1'] });
  const main = await pod.rootfs('main');
  await startContainer(spec('main', main, { mounts: [{ kind: 'tmpfs', destination: '/scratch', options: ['size=16m'] }] }));
});

after(async () => {
  await pod?.stop();
});

/** A failing test shows the end of the guest console: a stuck or crashed agent says why there. */
async function withConsole(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    const console = await pod.vm.readConsole(8192).catch((e: unknown) => `(console unreadable: ${String(e)})`);
    process.stderr.write(`guest console:\n${console}\n`);
    throw err;
  }
}

test('a container prints, exits with its code, and the output arrives before wait resolves', async () => {
  const root = await pod.rootfs('hello');
  await pod.agent.createContainer(spec('hello', root, { process: proc(['sh', '-c', 'echo hello; echo oops >&2; exit 3']) }));
  const listed = await pod.agent.listContainers();
  assert.equal(listed.find((c) => c.id === 'hello')?.state, 'created');
  const p = await pod.agent.startContainer('hello');
  assert.ok(p.pid > 1);
  const [out, err, exit] = await Promise.all([readAll(p.stdout), readAll(p.stderr), pod.agent.wait('hello', '')]);
  assert.equal(out.toString(), 'hello\n');
  assert.equal(err.toString(), 'oops\n');
  assert.equal(exit.exitCode, 3);
  assert.equal(exit.signal, undefined);
  assert.ok(Math.abs(exit.exitedAt.getTime() - Date.now()) < 60_000);
  const again = await pod.agent.listContainers();
  assert.equal(again.find((c) => c.id === 'hello')?.state, 'exited');
  await pod.agent.removeContainer('hello');
  assert.equal((await pod.agent.listContainers()).find((c) => c.id === 'hello'), undefined);
});

test('exec: exit codes, environment and working directory of the container', async () => {
  assert.equal((await run('main', ['sh', '-c', 'exit 7'])).exit.exitCode, 7);
  assert.equal((await run('main', ['true'])).exit.exitCode, 0);
  const r = await run('main', ['sh', '-c', 'echo $PATH; pwd; hostname']);
  assert.equal(r.stdout, '/bin\n/\nmain\n');
  await assert.rejects(pod.agent.exec('main', 'nope', execProc(['/no/such/binary'])), (e: unknown) => e instanceof AgentCallError && e.errnum === 2 && /execve/.test(e.message));
  await assert.rejects(pod.agent.exec('nosuch', 'x1', execProc(['true'])), (e: unknown) => e instanceof AgentCallError && e.errnum === 2);
});

test('SIGTERM and SIGKILL end a process with 128+signal', async () => {
  for (const [sig, code] of [['SIGTERM', 143], ['SIGKILL', 137]] as const) {
    const id = `sig-${sig}`;
    const p = await pod.agent.exec('main', id, execProc(['sleep', '1000']));
    p.stdout.resume();
    p.stderr.resume();
    await sleep(100);
    await pod.agent.signal('main', id, sig);
    const exit = await pod.agent.wait('main', id);
    assert.equal(exit.exitCode, code);
    assert.equal(exit.signal, sig);
  }
});

test('stdin is piped through, with flow control for more than a window', async () => {
  const p = await pod.agent.exec('main', 'stdin1', execProc(['cat'], { stdin: true }));
  assert.ok(p.stdin);
  p.stdin.end('abc');
  assert.equal((await readAll(p.stdout)).toString(), 'abc');
  assert.equal((await pod.agent.wait('main', 'stdin1')).exitCode, 0);

  const big = Buffer.alloc(3 * 1024 * 1024, 'xyz0123456789');
  const q = await pod.agent.exec('main', 'stdin2', execProc(['sha256sum'], { stdin: true }));
  q.stdin!.end(big);
  const sum = (await readAll(q.stdout)).toString().split(' ')[0];
  assert.equal(sum, createHash('sha256').update(big).digest('hex'));
  assert.equal((await pod.agent.wait('main', 'stdin2')).exitCode, 0);
});

test('a terminal process sees its size change', async () => {
  const p = await pod.agent.exec('main', 'tty1', execProc(['sh', '-c', 'stty size; read line; stty size'], { terminal: true, stdin: true }));
  let text = '';
  p.stdout.on('data', (d: Buffer) => (text += d.toString()));
  const deadline = Date.now() + 10_000;
  while (!/\d+ \d+/.test(text) && Date.now() < deadline) await sleep(20);
  await pod.agent.resizeTty('main', 'tty1', 50, 132);
  p.stdin!.write('\n');
  assert.equal((await pod.agent.wait('main', 'tty1')).exitCode, 0);
  assert.match(text, /50 132/);
  await assert.rejects(pod.agent.resizeTty('main', 'stdin1', 10, 10), (e: unknown) => e instanceof AgentCallError && /terminal/.test(e.message));
});

test('50 concurrent execs each get their own output and exit code', async () => {
  // The agent starts them one after the other: on a busy TCG host the last waits long.
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => run('main', ['sh', '-c', `echo n${i}; exit ${i % 5}`], {}, `c${i}`, 60_000)));
  results.forEach((r, i) => {
    assert.equal(r.stdout, `n${i}\n`);
    assert.equal(r.exit.exitCode, i % 5);
  });
});

test('per-container PID namespaces hide processes and mounts of other containers', async () => {
  const a = await pod.rootfs('iso-a');
  const b = await pod.rootfs('iso-b');
  await startContainer(spec('iso-a', a));
  await startContainer(spec('iso-b', b, { mounts: [{ kind: 'tmpfs', destination: '/only-b' }] }));
  const psA = await run('iso-a', ['ps', '-o', 'pid,args']);
  assert.match(psA.stdout, /^\s*1\s+sleep 100000$/m, 'the container init is PID 1 of its namespace');
  assert.equal(psA.stdout.match(/sleep 100000/g)?.length, 1, "iso-b's sleep is invisible in iso-a");
  assert.doesNotMatch((await run('iso-a', ['cat', '/proc/mounts'])).stdout, /only-b/);
  assert.match((await run('iso-b', ['cat', '/proc/mounts'])).stdout, /only-b/);
  assert.equal((await run('iso-a', ['hostname'])).stdout, 'iso-a\n');

  // In the pod's shared PID namespace the two see each other.
  const c = await pod.rootfs('shared-c');
  const d = await pod.rootfs('shared-d');
  await startContainer(spec('shared-c', c, { pidNamespace: 'pod', process: proc(['sleep', '200001']) }));
  await startContainer(spec('shared-d', d, { pidNamespace: 'pod', process: proc(['sleep', '200002']) }));
  const ps = (await run('shared-c', ['ps', '-o', 'args'])).stdout;
  assert.match(ps, /sleep 200001/);
  assert.match(ps, /sleep 200002/);
  for (const id of ['iso-a', 'iso-b', 'shared-c', 'shared-d']) await pod.agent.removeContainer(id);
});

test('user and group switch, capabilities bounded', async () => {
  const r = await run('main', ['sh', '-c', 'id -u; id -g; id -G; grep -E "^Cap(Bnd|Eff)" /proc/self/status'], { uid: 1000, gid: 1000, additionalGids: [2000, 3000] });
  const [uid, gid, groups] = r.stdout.split('\n');
  assert.equal(uid, '1000');
  assert.equal(gid, '1000');
  assert.deepEqual(groups!.split(' ').sort(), ['1000', '2000', '3000']);
  // 7 capabilities asked: CHOWN(0) DAC_OVERRIDE(1) FOWNER(3) KILL(5) SETGID(6) SETUID(7) NET_BIND_SERVICE(10)
  assert.match(r.stdout, /CapBnd:\s+00000000000004eb/);
  assert.match(r.stdout, /CapEff:\s+0000000000000000/, 'a non-root user has no effective capabilities');
  const root = await run('main', ['grep', 'CapEff', '/proc/self/status']);
  assert.match(root.stdout, /CapEff:\s+00000000000004eb/);
});

test('a read-only rootfs refuses writes; its tmpfs mounts do not', async () => {
  const root = await pod.rootfs('ro');
  await startContainer(spec('ro', root, { readonlyRootfs: true, mounts: [{ kind: 'tmpfs', destination: '/tmp' }] }));
  const w = await run('ro', ['touch', '/newfile']);
  assert.notEqual(w.exit.exitCode, 0);
  assert.match(w.stderr, /Read-only file system/);
  assert.equal((await run('ro', ['touch', '/tmp/ok'])).exit.exitCode, 0);
  await pod.agent.removeContainer('ro');
});

test('100 MiB of output arrives whole with bounded memory on both sides', async () => {
  const root = await pod.rootfs('dbg');
  await startContainer(spec('dbg', root, { mounts: [
    { kind: 'bind', source: '/proc', destination: '/guestproc', readonly: true },
    { kind: 'bind', source: '/sys/fs/cgroup', destination: '/guestcg', readonly: true },
    { kind: 'bind', source: '/etc/resolv.conf', destination: '/etc/resolv.conf', readonly: true },
    { kind: 'bind', source: '/etc/hosts', destination: '/etc/hosts', readonly: true },
  ] }));
  const total = 100 * 1024 * 1024;
  // A 4 MiB random file in the rootfs, printed 25 times (busybox `yes` makes only ~2 MB/s under TCG).
  const blob = randomBytes(4 * 1024 * 1024);
  await writeFile(join(pod.share, 'main', 'blob'), blob);
  const expected = createHash('sha256');
  for (let i = 0; i < 25; i++) expected.update(blob);
  const p = await pod.agent.exec('main', 'big', execProc(['sh', '-c', 'for i in $(seq 25); do cat /blob; done']));
  p.stderr.resume();
  const hash = createHash('sha256');
  let got = 0;
  let peakRss = 0;
  const rss0 = process.memoryUsage().rss;
  const t0 = Date.now();
  for await (const c of p.stdout) {
    hash.update(c as Buffer);
    got += (c as Buffer).length;
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }
  const secs = (Date.now() - t0) / 1000;
  assert.equal((await pod.agent.wait('main', 'big')).exitCode, 0);
  assert.equal(got, total);
  assert.equal(hash.digest('hex'), expected.digest('hex'));
  const growthMiB = (peakRss - rss0) / 1024 / 1024;
  const hwm = (await run('dbg', ['grep', 'VmHWM', '/guestproc/1/status'])).stdout;
  const hwmKiB = Number(/VmHWM:\s+(\d+)/.exec(hwm)?.[1]);
  console.log(`# 100 MiB in ${secs.toFixed(1)} s (${(100 / secs).toFixed(1)} MiB/s); host RSS growth ${growthMiB.toFixed(1)} MiB; agent VmHWM ${hwmKiB} KiB`);
  assert.ok(growthMiB < 64, `host RSS grew by ${growthMiB} MiB`);
  assert.ok(hwmKiB > 0 && hwmKiB < 16 * 1024, `agent VmHWM ${hwmKiB} KiB`);
});

test('stats, resource updates visible in the cgroup, guest stats', async () => {
  const st = await pod.agent.containerStats('main');
  assert.ok(st.cpuUsageNs > 0n);
  assert.ok(st.memoryUsageBytes > 0 && st.memoryWorkingSetBytes <= st.memoryUsageBytes);
  assert.ok(st.pids >= 1);
  await pod.agent.updateResources('main', { memoryLimitBytes: 64 * 1024 * 1024, pidsLimit: 100, cpuQuota: 50_000, cpuPeriod: 100_000, cpuShares: 512 });
  const cg = await run('dbg', ['sh', '-c', 'cd /guestcg/frakti/main && cat memory.max pids.max cpu.max cpu.weight']);
  assert.equal(cg.stdout, '67108864\n100\n50000 100000\n20\n');
  const g = await pod.agent.guestStats();
  assert.ok(g.memTotalBytes > 256 * 1024 * 1024 && g.memAvailableBytes < g.memTotalBytes);
  assert.equal(g.cpus, 1);
});

test('sandbox setup: resolv.conf, hosts and sysctls of the guest', async () => {
  assert.equal((await run('dbg', ['cat', '/etc/resolv.conf'])).stdout, 'nameserver 10.9.9.9\n');
  assert.equal((await run('dbg', ['cat', '/etc/hosts'])).stdout, '127.0.0.1 localhost\n');
  assert.equal((await run('dbg', ['cat', '/proc/sys/net/ipv4/ip_forward'])).stdout, '1\n');
  await assert.rejects(
    pod.agent.setupSandbox({ hostname: 'x', resolvConf: '', hosts: '', sysctls: { 'kernel/../../etc': '1' }, shares: [] }),
    (e: unknown) => e instanceof AgentError && e.code === 'AGENT_OPTIONS',
  );
  await assert.rejects(
    pod.agent.setupSandbox({ hostname: 'x', resolvConf: '', hosts: '', sysctls: { 'no.such.sysctl': '1' }, shares: [] }),
    (e: unknown) => e instanceof AgentCallError && /sysctl no.such.sysctl/.test(e.message) && e.errnum === 2,
  );
});

test('network: the NIC found by MAC gets MTU, addresses and routes over netlink', async () => {
  // The test VM has no NIC of its own; lo (MAC 00:00:00:00:00:00) stands in.
  await pod.agent.configureNetwork({
    interfaces: [{ mac: '00:00:00:00:00:00', mtu: 65000, addresses: ['10.250.0.1/24', 'fd00:250::1/64'] }],
    routes: [{ dst: '10.251.0.0/24', gateway: '10.250.0.2', device: 'lo' }],
  });
  const r = await run('main', ['sh', '-c', 'cat /sys/class/net/lo/mtu; ip addr show lo; ip route; ip -6 addr show lo']);
  assert.match(r.stdout, /^65000$/m);
  assert.match(r.stdout, /inet 10\.250\.0\.1\/24/);
  assert.match(r.stdout, /10\.251\.0\.0\/24 via 10\.250\.0\.2 dev lo/);
  assert.match(r.stdout, /inet6 fd00:250::1\/64/);
  await assert.rejects(
    pod.agent.configureNetwork({ interfaces: [{ mac: '02:00:00:00:00:99', mtu: 1500, addresses: [] }], routes: [] }),
    (e: unknown) => e instanceof AgentCallError && /find the NIC with MAC 02:00:00:00:00:99/.test(e.message),
  );
});

test('a failing step names itself, and the agent keeps serving', async () => {
  const root = await pod.rootfs('bad1');
  await assert.rejects(
    pod.agent.createContainer(spec('bad1', root, { mounts: [{ kind: 'bind', source: '/no/such/dir', destination: '/x', readonly: false }] })),
    (e: unknown) => e instanceof AgentCallError && e.errnum === 2 && /bind source `\/no\/such\/dir` of container bad1/.test(e.message),
  );
  await assert.rejects(pod.agent.createContainer(spec('bad2', '/no/such/rootfs')), (e: unknown) => e instanceof AgentCallError && /container bad2/.test(e.message));
  assert.equal((await pod.agent.listContainers()).some((c) => c.id.startsWith('bad')), false);
  assert.equal((await run('main', ['echo', 'ok'])).stdout, 'ok\n');
});

test('an OOM kill in a container is reported as an event', async () => {
  const root = await pod.rootfs('oom');
  await startContainer(spec('oom', root, { resources: { memoryLimitBytes: 24 * 1024 * 1024 } }));
  const oom = once(pod.agent, 'oom');
  const r = await run('oom', ['sh', '-c', 'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo survived']);
  assert.notEqual(r.exit.exitCode, 0);
  assert.deepEqual(await oom, ['oom']);
  await pod.agent.removeContainer('oom');
});

test('port forward reaches a listener inside the pod', async () => {
  const p = await pod.agent.exec('main', 'nc', execProc(['sh', '-c', 'echo hello-from-guest | nc -l -p 8080']));
  p.stdout.resume();
  p.stderr.resume();
  let s: NodeJS.ReadWriteStream | undefined;
  for (let i = 0; i < 100 && !s; i++) {
    try {
      s = await pod.agent.portForward(8080);
    } catch (e) {
      if (!(e instanceof AgentCallError && e.errnum === 111)) throw e;
      await sleep(50);
    }
  }
  assert.ok(s, 'nc never listened');
  s.end();
  assert.equal((await readAll(s)).toString(), 'hello-from-guest\n');
  assert.equal((await pod.agent.wait('main', 'nc')).exitCode, 0);
  await assert.rejects(pod.agent.portForward(1), (e: unknown) => e instanceof AgentCallError && e.errnum === 111);
});

test('offline CPUs (as after a hotplug) are onlined', async () => {
  assert.equal((await pod.agent.guestStats()).cpus, 1);
  assert.equal((await pod.agent.onlineHotplugged()).cpus, 1);
  assert.equal((await pod.agent.guestStats()).cpus, 2);
  assert.equal((await pod.agent.onlineHotplugged()).cpus, 0);
});

test('output on its way when the host drops comes again after AttachIo: a gap-free whole', () => withConsole(async () => {
  const expected = Array.from({ length: 300_000 }, (_, i) => `${i + 1}\n`).join('');
  const p = await pod.agent.exec('main', 'seq', execProc(['seq', '1', '300000']));
  p.stderr.resume();
  // Take some output, then stop reading and drop the channel: what the agent
  // sent meanwhile (in our buffer, in QEMU, in the socket) never reaches us.
  const taken: Buffer[] = [];
  let takenBytes = 0;
  let stopped = false;
  await new Promise<void>((resolve) => {
    p.stdout.on('data', (c: Buffer) => {
      if (stopped) return;
      taken.push(Buffer.from(c));
      takenBytes += c.length;
      if (takenBytes >= 200_000) {
        stopped = true;
        p.stdout.pause();
        resolve();
      }
    });
  });
  await sleep(300); // the agent fills our credit meanwhile
  const agent = await pod.reconnect();
  const io = await agent.attachIo('main', 'seq');
  io.stderr.resume();
  const [after, exit] = await Promise.all([readAll(io.stdout), agent.wait('main', 'seq')]);
  assert.equal(exit.exitCode, 0);
  const before = Buffer.concat(taken).toString();
  const rest = after.toString();
  assert.ok(expected.startsWith(before), 'what we took is the start of the output');
  assert.ok(expected.endsWith(rest), 'after AttachIo the output goes on to its end');
  // Nothing missing between the two connections; at most what we took without
  // our acknowledgement reaching the agent comes twice.
  const overlap = before.length + rest.length - expected.length;
  assert.ok(overlap >= 0, `${-overlap} bytes lost between the connections`);
  assert.ok(overlap <= STREAM_WINDOW_BYTES, `${overlap} bytes sent twice`);
}));

// With two vCPUs the guest may see the old host's hang-up only after it
// answered the new host's HELLO: about one reconnect in 150 hit that before
// the port kept its session across it.
test('quick reconnects, each asked something at once, while a process writes: every call is answered', () => withConsole(async () => {
  assert.equal((await pod.agent.guestStats()).cpus, 2, 'the race needs a second vCPU');
  const p = await pod.agent.exec('main', 'chatter', execProc(['sh', '-c', 'while true; do echo chatter; sleep 0.02; done']));
  p.stderr.resume();
  let agent = pod.agent;
  for (let i = 0; i < 150; i++) {
    agent = await pod.reconnect();
    const main = (await agent.listContainers({ timeoutMs: 10_000 })).find((c) => c.id === 'main');
    assert.ok(main?.runningExecs.includes('chatter'), `reconnect ${i}: the writer is listed`);
  }
  await agent.signal('main', 'chatter', 'SIGKILL');
  const io = await agent.attachIo('main', 'chatter');
  io.stdout.resume();
  io.stderr.resume();
  assert.equal((await agent.wait('main', 'chatter')).exitCode, 137);
}));

/** A raw host on the agent's port. `hello` says HELLO with a new nonce and
 * waits for the answer: the offset just past the agent's marker, or -1. */
async function rawHost() {
  const endpoint = pod.vm.agentEndpoint();
  assert.equal(endpoint.kind, 'unix');
  const raw = createConnection({ path: endpoint.kind === 'unix' ? endpoint.path : '' });
  await once(raw, 'connect');
  let buf = Buffer.alloc(0);
  raw.on('data', (d: Buffer) => (buf = Buffer.concat([buf, d])));
  /** `splitMs`: the HELLO frame follows its magic after this long, in a write of its own. */
  const hello = async (waitMs: number, splitMs = 0) => {
    const nonce = randomBytes(16);
    const frame = encodeFrame({ type: FrameType.HELLO, streamId: 0, flags: 0, payload: pack('Hello', { protocolVersion: 1, nonce }) });
    if (splitMs > 0) {
      raw.write(HOST_MAGIC);
      await sleep(splitMs);
      raw.write(frame);
    } else {
      raw.write(Buffer.concat([HOST_MAGIC, frame]));
    }
    const marker = Buffer.concat([AGENT_MAGIC, nonce]);
    for (let i = 0; i < waitMs / 25 && buf.indexOf(marker) < 0; i++) await sleep(25);
    const at = buf.indexOf(marker);
    return at < 0 ? -1 : at + marker.length;
  };
  /** A REQUEST header announcing `len` payload bytes. */
  const requestHeader = (len: number) => {
    const header = Buffer.alloc(12);
    header.writeUInt32BE(len, 0);
    header.writeUInt32BE(1, 4);
    header.writeUInt8(FrameType.REQUEST, 8);
    return header;
  };
  // 100 bytes of an announced 4 KiB.
  const halfFrame = Buffer.concat([requestHeader(4096), Buffer.alloc(100, 0x41)]);
  return { raw, hello, requestHeader, halfFrame, received: () => buf };
}

test('a reconnect keeps a running process and its held output; a bad frame is refused and the agent keeps serving', () => withConsole(async () => {
  const sleeper = await pod.agent.exec('main', 'sleeper', execProc(['sleep', '600']));
  sleeper.stdout.resume();
  sleeper.stderr.resume();
  const p = await pod.agent.exec('main', 'ticker', execProc(['sh', '-c', 'i=0; while [ $i -lt 30 ]; do echo line$i; i=$((i+1)); sleep 0.05; done']));
  p.stderr.resume();
  let before = '';
  for await (const c of p.stdout) {
    before += (c as Buffer).toString();
    if (before.includes('line3\n')) break;
  }
  const agent = await pod.reconnect();
  await sleep(2500); // the process finishes meanwhile; its output waits in the agent
  const io = await agent.attachIo('main', 'ticker');
  io.stderr.resume();
  const [afterText, exit] = await Promise.all([readAll(io.stdout), agent.wait('main', 'ticker')]);
  assert.equal(exit.exitCode, 0);
  const lines = afterText.toString().trim().split('\n');
  assert.equal(lines.at(-1), 'line29');
  const nums = lines.map((l) => Number(l.slice(4)));
  assert.deepEqual(nums, nums.slice().sort((x, y) => x - y));
  assert.equal(nums.length, nums.at(-1)! - nums[0]! + 1, 'held output arrives without gaps');
  const main = (await agent.listContainers()).find((c) => c.id === 'main');
  assert.equal(main?.state, 'running');
  assert.ok(main?.runningExecs.includes('sleeper'), 'a running exec is listed');
  assert.ok(!main?.runningExecs.includes('ticker'), 'an exited exec is not listed as running');
  await agent.signal('main', 'sleeper', 'SIGKILL');
  assert.equal((await agent.wait('main', 'sleeper')).exitCode, 137);

  // A raw host that sends an oversized frame is refused with GOAWAY ...
  agent.close();
  const { raw, hello, requestHeader, received } = await rawHost();
  const at = await hello(5000);
  assert.ok(at >= 0, 'agent answered the raw handshake');
  raw.write(requestHeader(64 * 1024 * 1024));
  const isGoaway = () => {
    const buf = received();
    let off = at;
    while (off + 12 <= buf.length) {
      const len = buf.readUInt32BE(off);
      if (buf.readUInt8(off + 8) === FrameType.GOAWAY) return true;
      off += 12 + len;
    }
    return false;
  };
  for (let i = 0; i < 200 && !isGoaway(); i++) await sleep(25);
  assert.ok(isGoaway(), 'GOAWAY after an oversized frame');
  raw.destroy();
  // ... and the agent keeps serving the next host, containers intact.
  const next = await pod.reconnect();
  assert.equal((await next.listContainers()).find((c) => c.id === 'main')?.state, 'running');
  assert.equal((await run('main', ['echo', 'still here'])).stdout, 'still here\n');
}));

test('a host that leaves in the middle of a frame: the next host is served at once', () => withConsole(async () => {
  pod.agent.close();
  const { raw, hello, halfFrame } = await rawHost();
  assert.ok((await hello(5000)) >= 0, 'agent answered the raw handshake');
  raw.end(halfFrame);
  await once(raw, 'close');
  await sleep(300); // the guest sees the hang-up: the half frame goes with the session
  const next = await pod.reconnect({ once: true });
  assert.equal((await next.listContainers({ timeoutMs: 10_000 })).find((c) => c.id === 'main')?.state, 'running');
}));

// What the guest sees when the next host comes before it noticed the hang-up:
// the new host's magic and HELLO inside the half frame, then nothing.
test('a half frame holding a new host\'s magic and HELLO stalls: the agent starts over at the magic', () => withConsole(async () => {
  pod.agent.close();
  const { raw, hello, halfFrame } = await rawHost();
  assert.ok((await hello(5000)) >= 0, 'agent answered the raw handshake');
  raw.write(halfFrame);
  assert.ok((await hello(10_000)) >= 0, 'agent answered the HELLO that followed the half frame');
  // Again, with the HELLO arriving a while after its magic: the agent waits until the bytes stop.
  raw.write(halfFrame);
  assert.ok((await hello(10_000, 400)) >= 0, 'agent answered a HELLO that came in two parts');
  raw.destroy();
  const next = await pod.reconnect();
  assert.equal((await next.listContainers({ timeoutMs: 10_000 })).find((c) => c.id === 'main')?.state, 'running');
  assert.equal((await run('main', ['echo', 'served'])).stdout, 'served\n');
}));
