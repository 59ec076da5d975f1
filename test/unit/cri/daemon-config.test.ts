import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, defaultConfig, parseConfigText, parseMetricsAddress, validateConfig } from '../../../src/cri/daemon-config.js';

const base = () => defaultConfig({ root: '/var/lib/frakti', state: '/run/frakti', listen: '/run/frakti/frakti.sock' });

test('an empty file keeps every default', () => {
  assert.deepEqual(parseConfigText('', 'cfg.toml', base()), base());
});

test('a full file sets every key', () => {
  const c = parseConfigText(
    `version = 1
root = "/srv/frakti"
state = "/run/f2"
[grpc]
address = "/run/f2/cri.sock"
max_message_bytes = 8388608
shutdown_timeout_ms = 3000
[debug]
level = "debug"
[stream]
address = "[::1]:10010"
idle_timeout_ms = 60000
[pod]
default_cpus = 2
default_memory_mb = 512
max_memory_mb = 4096
tcg_cache_mb = 12
vm_pool = 3
[image]
max_concurrent_downloads = 5
insecure_registries = ["reg.local:5000"]
[image.registry.mirrors."docker.io"]
endpoint = ["https://mirror.example.com"]
`,
    'cfg.toml',
    base(),
  );
  assert.equal(c.root, '/srv/frakti');
  assert.equal(c.state, '/run/f2');
  assert.equal(c.listen, '/run/f2/cri.sock');
  assert.equal(c.maxMessageBytes, 8388608);
  assert.equal(c.shutdownTimeoutMs, 3000);
  assert.equal(c.logLevel, 'debug');
  assert.equal(c.streamAddress, '[::1]:10010');
  assert.equal(c.streamIdleTimeoutMs, 60000);
  assert.equal(c.defaultCpus, 2);
  assert.equal(c.defaultMemoryMb, 512);
  assert.equal(c.maxMemoryMb, 4096);
  assert.equal(c.tcgCacheMb, 12);
  assert.equal(c.vmPool, 3);
  assert.deepEqual(c.image, { maxConcurrentDownloads: 5, insecureRegistries: ['reg.local:5000'], mirrors: { 'docker.io': ['https://mirror.example.com'] } });
});

test('unknown keys are refused with the key named', () => {
  const bad = (text: string, key: RegExp) =>
    assert.throws(() => parseConfigText(text, 'cfg.toml', base()), (e: unknown) => e instanceof ConfigError && key.test(e.message) && e.message.startsWith('cfg.toml: '));
  bad('roots = "/x"', /^cfg.toml: roots: unknown key$/);
  bad('[grpc]\nadress = "/x"', /grpc.adress: unknown key/);
  bad('[image.registry.mirrors."docker.io"]\nendpoints = []', /image.registry.mirrors.docker.io.endpoints: unknown key/);
});

test('wrong types and ranges are refused with the key named', () => {
  const bad = (text: string, msg: RegExp) => assert.throws(() => parseConfigText(text, 'cfg.toml', base()), msg);
  bad('root = 5', /root: expected a string path, got a number/);
  bad('root = "relative"', /root: must be an absolute path/);
  bad('version = 2', /version: 2 is out of range 1..1/);
  bad('[pod]\ndefault_cpus = 1.5', /pod.default_cpus: expected an integer/);
  bad('[pod]\ndefault_cpus = 0', /pod.default_cpus: 0 is out of range/);
  bad('[debug]\nlevel = "loud"', /debug.level: expected one of error, warn, info, debug/);
  bad('grpc = 3', /grpc: expected a table/);
  bad('[image]\ninsecure_registries = [1]', /image.insecure_registries: expected an array of strings/);
  bad('root = ', /not valid TOML \(line 1/);
  bad('[stream]\nidle_timeout_ms = 5', /stream.idle_timeout_ms: 5 is out of range/);
  bad('[pod]\ntcg_cache_mb = 2048', /pod.tcg_cache_mb: 2048 is out of range 8..1024/);
  bad('[pod]\nvm_pool = 65', /pod.vm_pool: 65 is out of range 0..64/);
});

test('cross-field checks: absolute paths, socket path length', () => {
  const c = base();
  c.listen = '/' + 'x'.repeat(120);
  assert.throws(() => validateConfig(c), /longer than 107 bytes/);
  c.listen = 'rel.sock';
  assert.throws(() => validateConfig(c), /listen must be an absolute path/);
  const d = base();
  d.streamAddress = 'localhost:10010';
  assert.throws(() => validateConfig(d), (e: unknown) => e instanceof ConfigError && /stream address must be IP:PORT/.test(e.message));
});

test('metrics.address: HOST:PORT, [V6]:PORT, or a bare port meaning loopback; anything else refused', () => {
  const base = defaultConfig({ root: '/r', state: '/s', listen: '/s/f.sock' });
  assert.equal(base.metricsAddress, '', 'off unless set');
  assert.equal(parseConfigText('[metrics]\naddress = "9101"\n', 'f.toml', base).metricsAddress, '9101');
  assert.throws(() => validateConfig({ ...base, metricsAddress: 'nope' }), (e: unknown) => e instanceof ConfigError && /metrics address 'nope'/.test(e.message));
  assert.deepEqual(parseMetricsAddress('9101'), { host: '127.0.0.1', port: 9101 });
  assert.deepEqual(parseMetricsAddress(':9101'), { host: '127.0.0.1', port: 9101 });
  assert.deepEqual(parseMetricsAddress('0.0.0.0:9101'), { host: '0.0.0.0', port: 9101 });
  assert.deepEqual(parseMetricsAddress('[::1]:9101'), { host: '::1', port: 9101 });
  for (const bad of ['', 'host', '1:2:3', '127.0.0.1:70000', 'http://x:1']) assert.throws(() => parseMetricsAddress(bad), /not HOST:PORT/, bad);
});

test('os_runtime: containerd at its usual socket by default; endpoint and handlers settable; bad values refused', () => {
  assert.deepEqual(base().osRuntime, { endpoint: 'unix:///run/containerd/containerd.sock', handlers: ['runc'] });
  const c = parseConfigText('[os_runtime]\nendpoint = "/run/k3s/containerd/containerd.sock"\nhandlers = ["runc", "host"]\n', 'cfg.toml', base());
  assert.deepEqual(c.osRuntime, { endpoint: '/run/k3s/containerd/containerd.sock', handlers: ['runc', 'host'] });
  validateConfig(c);
  const off = parseConfigText('[os_runtime]\nendpoint = ""\n', 'cfg.toml', base());
  validateConfig(off);
  assert.throws(() => parseConfigText('[os_runtime]\nendpoints = ""\n', 'cfg.toml', base()), /os_runtime.endpoints: unknown key/);
  const rel = base();
  rel.osRuntime.endpoint = 'tcp://10.0.0.1:1234';
  assert.throws(() => validateConfig(rel), (e: unknown) => e instanceof ConfigError && /os runtime endpoint 'tcp:\/\/10.0.0.1:1234' is not unix:\/\/\/ABSOLUTE\/PATH/.test(e.message));
  const handler = base();
  handler.osRuntime.handlers = ['Not A Label'];
  assert.throws(() => validateConfig(handler), /os_runtime.handlers: 'Not A Label' is not a RuntimeClass handler name/);
});
