// Pod networking end to end with Debian's CNI plugins (bridge, host-local,
// portmap): pods reach each other and are reached from the host, hostPort
// works, DNS and hostname are as asked; a broken config fails cleanly; after
// it all, no namespace, veth, tap or iptables rule of ours is left.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, mkdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { status } from '@grpc/grpc-js';
import { startRegistry, buildBusyboxImage, pushImage, type Registry } from '../../helpers/image-registry.js';
import { startDaemon, grpcError, waitFor, type RunningDaemon } from '../../helpers/cri-client.js';
import { killLeftovers, mountsUnder, vmProcessesUnder } from '../../helpers/vmm-leaks.js';

let dir: string;
let reg: Registry;
let image: string;
let d: RunningDaemon;
const tag = randomBytes(2).toString('hex');
const bridge = `frte${tag}`;
const subnet = `10.252.${parseInt(tag, 16) % 200}`;
const HOST_PORT = 20000 + (parseInt(tag, 16) % 10000);

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'frakti-net-'));
  reg = await startRegistry();
  const built = await buildBusyboxImage(dir);
  image = `${reg.host}/busybox:latest`;
  await pushImage(built.layout, image);
  await mkdir(join(dir, 'cni'));
  await writeFile(join(dir, 'cni', '10-test.conflist'), JSON.stringify({
    cniVersion: '1.0.0',
    name: `frakti-e2e-${tag}`,
    plugins: [
      { type: 'bridge', bridge, isGateway: true, ipMasq: true, hairpinMode: true, ipam: { type: 'host-local', ranges: [[{ subnet: `${subnet}.0/24` }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(dir, 'ipam') } },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  }));
  d = await startDaemon({ dir: join(dir, 'd'), args: ['--cni-conf-dir', join(dir, 'cni')] }).catch(async (err) => {
    await mkdir(join(dir, 'd'), { recursive: true });
    throw err;
  });
  await d.client.image.PullImage!({ image: { image } });
});

after(async () => {
  const rt = d?.client.runtime;
  if (rt) for (const p of (await rt.ListPodSandbox!({}).catch(() => ({ items: [] }))).items) await rt.RemovePodSandbox!({ pod_sandbox_id: p.id }).catch(() => {});
  await d?.cleanup();
  const left = await killLeftovers(dir);
  for (const m of (await mountsUnder(dir)).reverse()) await execa('umount', ['-l', m], { reject: false });
  const ns = (await execa('ip', ['netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith('frakti-'));
  const veths = JSON.parse((await execa('ip', ['-j', 'link', 'show', 'master', bridge], { reject: false })).stdout || '[]') as unknown[];
  const nat = (await execa('iptables-save', ['-t', 'nat'])).stdout.split('\n').filter((l) => l.includes(`frakti-e2e-${tag}`));
  await execa('ip', ['link', 'del', bridge], { reject: false });
  await reg?.stop();
  await rm(dir, { recursive: true, force: true });
  assert.deepEqual(left, [], 'processes left');
  assert.deepEqual(ns, [], 'network namespaces left');
  assert.deepEqual(veths, [], 'veths left on the bridge');
  assert.deepEqual(nat, [], 'iptables rules left');
});

async function runPod(name: string, cmd: string[], extra: Record<string, unknown> = {}) {
  const rt = d.client.runtime;
  const config = {
    metadata: { name, uid: `uid-${name}`, namespace: 'net', attempt: 0 },
    hostname: `${name}-host`,
    log_directory: join(dir, 'logs', name),
    dns_config: { servers: ['10.96.0.10'], searches: ['net.svc.cluster.local'], options: ['ndots:2'] },
    linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
    ...extra,
  };
  const { pod_sandbox_id: pod } = await rt.RunPodSandbox!({ config }, { timeoutMs: 120_000 });
  const { container_id: c } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: { metadata: { name: 'main', attempt: 0 }, image: { image }, command: cmd, log_path: 'main.log' }, sandbox_config: config });
  await rt.StartContainer!({ container_id: c });
  const ip = (await rt.PodSandboxStatus!({ pod_sandbox_id: pod })).status.network.ip as string;
  return { pod, c, ip };
}

const SERVER = ['sh', '-c', 'while true; do echo pong | nc -l -p 8080; done'];

function tcpRead(host: string, port: number, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    let out = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer from ${host}:${port}`));
    }, timeoutMs);
    s.on('data', (b) => (out += b.toString()));
    s.on('end', () => {
      clearTimeout(timer);
      resolve(out);
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.end('ping\n');
  });
}

test('pods on the bridge reach each other; the host reaches a pod and its hostPort', async () => {
  const a = await runPod('a', SERVER, { port_mappings: [{ protocol: 'TCP', container_port: 8080, host_port: HOST_PORT }] });
  const b = await runPod('b', ['sleep', '1000']);
  assert.ok(a.ip.startsWith(`${subnet}.`) && b.ip.startsWith(`${subnet}.`));
  const rt = d.client.runtime;
  await waitFor('pod b to reach pod a over TCP', async () => {
    const r = await rt.ExecSync!({ container_id: b.c, cmd: ['sh', '-c', `echo ping | nc -w 2 ${a.ip} 8080`], timeout: '10' });
    return Buffer.from(r.stdout).toString().trim() === 'pong';
  }, 30_000, 300);
  await waitFor('the host to reach pod a', async () => (await tcpRead(a.ip, 8080)).trim() === 'pong', 30_000, 300);
  // hostPort: DNAT for traffic to a host address (the bridge's gateway is one).
  await waitFor('the hostPort mapping', async () => (await tcpRead(`${subnet}.1`, HOST_PORT)).trim() === 'pong', 30_000, 300);
});

test('resolv.conf and hostname inside the container are as the pod asked', async () => {
  const p = await runPod('dns', ['sleep', '1000']);
  const rt = d.client.runtime;
  const r = await rt.ExecSync!({ container_id: p.c, cmd: ['sh', '-c', 'cat /etc/resolv.conf; hostname; cat /etc/hostname; cat /etc/hosts'], timeout: '10' });
  const out = Buffer.from(r.stdout).toString();
  assert.match(out, /^nameserver 10\.96\.0\.10$/m);
  assert.match(out, /^search net\.svc\.cluster\.local$/m);
  assert.match(out, /^options ndots:2$/m);
  assert.equal(out.split('\n').filter((l) => l === 'dns-host').length, 2);
  assert.match(out, new RegExp(`^${p.ip.replace(/\./g, '\\.')}\\tdns-host$`, 'm'));
});

test('a broken CNI config fails RunPodSandbox with the plugin message and leaves nothing', async (t) => {
  const bdir = join(dir, 'broken');
  await mkdir(join(bdir, 'cni'), { recursive: true });
  await writeFile(join(bdir, 'cni', '10-bad.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'bad', plugins: [{ type: 'bridge', bridge: `frtb${tag}`, ipam: { type: 'host-local', ranges: [[{ subnet: 'not-a-subnet' }]] } }] }));
  const bd = await startDaemon({ dir: join(bdir, 'd'), args: ['--cni-conf-dir', join(bdir, 'cni')] });
  t.after(async () => {
    await bd.cleanup();
    await execa('ip', ['link', 'del', `frtb${tag}`], { reject: false });
  });
  const netnsNow = async () => (await execa('ip', ['netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith('frakti-')).sort();
  const nsBefore = await netnsNow();
  const e = await grpcError(bd.client.runtime.RunPodSandbox!({ config: { metadata: { name: 'x', uid: 'u', namespace: 'n', attempt: 0 }, log_directory: join(bdir, 'logs') } }, { timeoutMs: 60_000 }));
  // The node's CNI setup failed, not the request, and not frakti: UNKNOWN, as containerd answers.
  assert.equal(e.code, status.UNKNOWN);
  assert.match(e.details, /CNI ADD bridge: .*not-a-subnet/);
  assert.deepEqual((await bd.client.runtime.ListPodSandbox!({})).items, [], 'no pod record is left');
  assert.deepEqual(await netnsNow(), nsBefore, 'no network namespace is left');
  assert.deepEqual(await vmProcessesUnder(bdir), [], 'no VM was started');
});
