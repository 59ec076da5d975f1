// The real `frakti daemon` as kubelet and crictl meet it: started as a
// child process, called over its unix socket through a client generated
// from our api.proto.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { FRAKTI_VERSION } from '../../../src/lib/version.js';
import { frakti } from '../../helpers/cli-run.js';
import { grpcError, startDaemon } from '../../helpers/cri-client.js';

test('Version, Status and RuntimeConfig answer as a CRI runtime should', async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const v = await d.client.runtime.Version!({ version: 'v1' });
  assert.deepEqual(v, { version: '0.1.0', runtime_name: 'frakti', runtime_version: FRAKTI_VERSION, runtime_api_version: 'v1' });

  const s = await d.client.runtime.Status!({ verbose: true });
  const cond = Object.fromEntries(s.status.conditions.map((c: { type: string }) => [c.type, c]));
  assert.equal(cond.RuntimeReady.status, true);
  assert.equal(cond.NetworkReady.status, true);
  assert.equal(JSON.parse(s.info.config).listen, d.socket);

  const rc = await d.client.runtime.RuntimeConfig!({});
  assert.equal(rc.linux.cgroup_driver, 'CGROUPFS');

  await d.client.runtime.UpdateRuntimeConfig!({ runtime_config: { network_config: { pod_cidr: '10.244.1.0/24' } } });
  assert.equal((await d.client.runtime.Status!({ verbose: true })).info.pod_cidr, '10.244.1.0/24');
  const bad = await grpcError(d.client.runtime.UpdateRuntimeConfig!({ runtime_config: { network_config: { pod_cidr: 'banana' } } }));
  assert.equal(bad.code, status.INVALID_ARGUMENT);
  assert.match(bad.details, /not a CIDR/);
});

test('an RPC not implemented yet answers UNIMPLEMENTED naming itself', async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const e = await grpcError(d.client.runtime.CheckpointContainer!({ container_id: 'x', location: '/tmp/x' }));
  assert.equal(e.code, status.UNIMPLEMENTED);
  assert.match(e.details, /RuntimeService\/CheckpointContainer is not implemented/);
  // The daemon is still fine afterwards.
  assert.equal((await d.client.runtime.Version!({})).runtime_name, 'frakti');
});

test('the socket is mode 0600, a second daemon on it is refused, SIGTERM removes it', async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const st = await stat(d.socket);
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o600);

  const other = join(d.dir, 'other');
  const second = await frakti(['daemon', '--listen', d.socket, '--root', join(other, 'root'), '--state', join(other, 'state')], { timeout: 30_000 });
  assert.equal(second.exitCode, 1, second.stderr);
  assert.match(second.stderr, new RegExp(`another daemon is already serving ${d.socket}`));
  // It gave up before touching its own --root / --state.
  await assert.rejects(stat(other), /ENOENT/);
  assert.equal((await d.client.runtime.Version!({})).runtime_name, 'frakti');

  assert.equal(await d.stop(), 0);
  await assert.rejects(stat(d.socket), /ENOENT/);
  assert.match(d.stderr(), /"message":"stopped"/);
});

test('after kill -9 the stale socket is replaced by the next daemon', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-cri-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const first = await startDaemon({ dir });
  t.after(() => first.cleanup());
  first.kill('SIGKILL');
  await first.child;
  assert.ok((await stat(first.socket)).isSocket(), 'kill -9 leaves the socket behind');
  const second = await startDaemon({ dir });
  t.after(() => second.cleanup());
  assert.equal((await second.client.runtime.Version!({})).runtime_name, 'frakti');
  assert.match(second.stderr(), /removed stale socket/);
});

test('wrong calls exit 2; a config file with an unknown key exits 1 naming the key', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-cri-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const bad = await frakti(['daemon', '--no-such-flag']);
  assert.equal(bad.exitCode, 2);
  assert.match(bad.stderr, /no-such-flag/);
  const level = await frakti(['daemon', '--log-level', 'loud']);
  assert.equal(level.exitCode, 2);
  assert.match(level.stderr, /--log-level must be one of/);

  const cfg = join(dir, 'frakti.toml');
  await writeFile(cfg, '[grpc]\naddress = "/tmp/x.sock"\nadress = "/tmp/y.sock"\n');
  const r = await frakti(['daemon', '--config', cfg, '--listen', join(dir, 's.sock'), '--root', join(dir, 'root'), '--state', join(dir, 'state')]);
  assert.equal(r.exitCode, 1);
  assert.match(r.stderr, /grpc\.adress: unknown key/);

  const help = await frakti(['daemon', '--help']);
  assert.equal(help.exitCode, 0);
  assert.match(help.stdout, /--listen SOCKET/);
});

test('a config file is read; flags win over it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-cri-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const cfg = join(dir, 'frakti.toml');
  await writeFile(cfg, `version = 1\n[grpc]\nshutdown_timeout_ms = 1234\n[pod]\ndefault_cpus = 2\ndefault_memory_mb = 300\n`);
  const d = await startDaemon({ dir, args: ['--config', cfg, '--default-memory-mb', '400'] });
  t.after(() => d.cleanup());
  const info = JSON.parse((await d.client.runtime.Status!({ verbose: true })).info.config);
  assert.equal(info.shutdownTimeoutMs, 1234);
  assert.equal(info.defaultCpus, 2);
  assert.equal(info.defaultMemoryMb, 400);
});

test('NetworkReady says why not: no CNI config with the default network off, or a plugin missing', async (t) => {
  const off = await startDaemon({ args: ['--no-default-network'], testNetwork: false });
  t.after(() => off.cleanup());
  const c1 = (await off.client.runtime.Status!({})).status.conditions.find((c: { type: string }) => c.type === 'NetworkReady');
  assert.equal(c1.status, false);
  assert.equal(c1.reason, 'NetworkPluginNotReady');
  assert.match(c1.message, /no CNI network config found in /);
  const missing = await startDaemon({ args: ['--cni-bin-dir', '/nonexistent'] });
  t.after(() => missing.cleanup());
  const c2 = (await missing.client.runtime.Status!({})).status.conditions.find((c: { type: string }) => c.type === 'NetworkReady');
  assert.equal(c2.status, false);
  assert.match(c2.message, /CNI plugin 'bridge' not found in \/nonexistent/);
});
