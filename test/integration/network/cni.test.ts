// The network room against Debian's real CNI plugins (bridge, host-local,
// portmap, loopback) and real network namespaces. Each test removes every
// namespace, veth, bridge and address store it made, also when it fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { natRulesNaming, removeNatLeftovers } from '../../helpers/cni-leftovers.js';
import {
  CniNetwork, createNetns, deleteNetns, execIn, loadDefaultNetwork, netnsExists, netnsPath, podIps, wireTap, type PodNetworkRequest,
} from '../../../src/network/index.js';

const BIN_DIRS = ['/opt/cni/bin', '/usr/lib/cni'];

interface Env {
  dir: string;
  bridge: string;
  subnetPrefix: string;
  network: CniNetwork;
  pods: PodNetworkRequest[];
}

/** A conflist of our own with a bridge and subnet unique to this test. */
async function setup(t: { after(fn: () => unknown): void }, plugins?: object[]): Promise<Env> {
  const tag = randomBytes(3).toString('hex');
  const dir = await mkdtemp(join(tmpdir(), 'frakti-cni-'));
  const bridge = `frt${tag}`;
  const octet = 100 + (parseInt(tag, 16) % 100);
  const subnetPrefix = `10.251.${octet}`;
  const conf = {
    cniVersion: '1.0.0',
    name: `frakti-test-${tag}`,
    plugins: plugins ?? [
      { type: 'bridge', bridge, isGateway: true, ipMasq: true, ipam: { type: 'host-local', ranges: [[{ subnet: `${subnetPrefix}.0/24` }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(dir, 'ipam') } },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
  await mkdir(join(dir, 'conf'));
  await writeFile(join(dir, 'conf', '10-test.conflist'), JSON.stringify(conf));
  const config = await loadDefaultNetwork(join(dir, 'conf'));
  assert.ok(config);
  const env: Env = { dir, bridge, subnetPrefix, network: new CniNetwork({ config, binDirs: BIN_DIRS, cacheDir: join(dir, 'cache') }), pods: [] };
  t.after(async () => {
    for (const p of env.pods) {
      await env.network.del(p).catch(() => {});
      await deleteNetns(p.podId).catch(() => {});
    }
    await execa('ip', ['link', 'del', bridge], { reject: false });
    await rm(dir, { recursive: true, force: true });
  });
  return env;
}

async function pod(env: Env, name: string): Promise<PodNetworkRequest> {
  const podId = `frakti-t-${randomBytes(4).toString('hex')}`;
  const req: PodNetworkRequest = { podId, podName: name, podNamespace: 'default', netnsPath: netnsPath(podId) };
  env.pods.push(req);
  await createNetns(podId);
  return req;
}

test('two namespaces on the bridge get addresses and reach each other over TCP', async (t) => {
  const env = await setup(t);
  const a = await pod(env, 'a');
  const b = await pod(env, 'b');
  const ra = await env.network.add(a);
  const rb = await env.network.add(b);
  const [ipA] = podIps(ra);
  const [ipB] = podIps(rb);
  assert.ok(ipA?.startsWith(env.subnetPrefix + '.'), ipA);
  assert.ok(ipB?.startsWith(env.subnetPrefix + '.'), ipB);
  assert.notEqual(ipA, ipB);
  await env.network.check(a);

  const server = execa('ip', ['netns', 'exec', a.podId, 'busybox', 'nc', '-l', '-p', '7070'], { reject: false, timeout: 10_000 });
  try {
    let got = '';
    for (let i = 0; i < 50 && !got.includes('hello'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      const c = await execa('ip', ['netns', 'exec', b.podId, 'busybox', 'nc', '-w', '2', ipA!, '7070'], { input: 'hello\n', reject: false });
      if (c.exitCode === 0) break;
    }
    got = (await server).stdout;
    assert.equal(got.trim(), 'hello');
  } finally {
    server.kill('SIGKILL');
  }
});

test('DEL is idempotent and leaves no veth or address behind', async (t) => {
  const env = await setup(t);
  const a = await pod(env, 'a');
  await env.network.add(a);
  const vethsBefore = (await execa('ip', ['-j', 'link', 'show', 'master', env.bridge])).stdout;
  assert.equal(JSON.parse(vethsBefore).length, 1);
  // ipMasq made NAT rules that name the pod; DEL must take them away.
  const natRules = async () => (await execa('iptables', ['-t', 'nat', '-S'])).stdout.split('\n').filter((l) => l.includes(a.podId));
  assert.ok((await natRules()).length > 0);
  await env.network.del(a);
  assert.deepEqual(await natRules(), []);
  await env.network.del(a);
  assert.equal(JSON.parse((await execa('ip', ['-j', 'link', 'show', 'master', env.bridge])).stdout).length, 0);
  assert.equal(await env.network.cachedResult(a.podId), undefined);
  // A pod that was never added deletes fine too.
  const never = await pod(env, 'never');
  await env.network.del(never);
  await deleteNetns(a.podId);
  assert.equal(await netnsExists(a.podId), false);
});

test('a pod whose DEL never ran: the test daemons\' sweep finds its NAT rules (ipMasq and port mapping) by network and removes them', async (t) => {
  const env = await setup(t);
  const a = await pod(env, 'a');
  a.portMappings = [{ hostPort: 40000 + (parseInt(a.podId.slice(-4), 16) % 20000), containerPort: 80, protocol: 'tcp' }];
  await env.network.add(a);
  const network = env.network.name;
  const before = await natRulesNaming(network);
  assert.ok(before.some((l) => l.includes('MASQUERADE')), 'the ipMasq chain is there');
  assert.ok(before.some((l) => l.includes('DNAT')), 'the port mapping is there');
  const removed = await removeNatLeftovers(network);
  assert.deepEqual(removed.sort(), before.sort());
  assert.deepEqual(await natRulesNaming(network), []);
  // The pod's own chains went too: nothing jumps to or names them.
  const chains = (await execa('iptables', ['-t', 'nat', '-S'])).stdout.split('\n').filter((l) => /^-N CNI-(DN-)?[0-9a-f]+$/.test(l));
  for (const c of chains) assert.ok(!before.some((l) => l.endsWith(`-j ${c.slice(3)}`)), `${c} is gone`);
});

test('a plugin that fails gives its own message', async (t) => {
  const env = await setup(t, [{ type: 'bridge', bridge: 'frtbad', ipam: { type: 'host-local', ranges: [[{ subnet: 'not-a-subnet' }]] } }]);
  const a = await pod(env, 'a');
  await assert.rejects(env.network.add(a), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'CNI_PLUGIN');
    assert.match(err.message, /^CNI ADD bridge: .*not-a-subnet/);
    return true;
  });
  // DEL of the same broken config fails the same way, saying so; the namespace still goes.
  await assert.rejects(env.network.del(a), /CNI DEL for pod .*not-a-subnet/);
  await execa('ip', ['link', 'del', 'frtbad'], { reject: false });
});

test('a missing plugin is named', async (t) => {
  const env = await setup(t, [{ type: 'no-such-plugin' }]);
  const a = await pod(env, 'a');
  await assert.rejects(env.network.add(a), /CNI plugin 'no-such-plugin' not found in \/opt\/cni\/bin:\/usr\/lib\/cni/);
});

test('the tap is wired to eth0 with redirects both ways', async (t) => {
  const env = await setup(t);
  const a = await pod(env, 'a');
  const r = await env.network.add(a);
  const w = await wireTap(a.podId);
  assert.equal(w.tap, 'tap0');
  assert.deepEqual(w.iface.addresses, [`${podIps(r)[0]}/24`]);
  assert.equal(w.iface.mac.toLowerCase(), r.interfaces.find((i) => i.name === 'eth0')?.mac?.toLowerCase());
  assert.ok(w.routes.some((x) => x.dst === 'default' && x.gateway === `${env.subnetPrefix}.1`));
  for (const [from, to] of [['eth0', 'tap0'], ['tap0', 'eth0']] as const) {
    const filters = await execIn(a.podId, 'tc', ['filter', 'show', 'dev', from, 'parent', 'ffff:']);
    assert.match(filters, new RegExp(`Egress Redirect to device ${to}`));
  }
});
