// The files `frakti install` writes: the config file documents every key at
// its default (uncommented, it parses back to the defaults), the unit keeps
// pod VMs across a restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'smol-toml';
import { defaultConfig, parseConfigText } from '../../../src/cri/daemon-config.js';
import { configText, crictlText, unitText } from '../../../src/cli/node-install.js';

const defaults = defaultConfig({ root: '/var/lib/frakti', state: '/run/frakti', listen: '/run/frakti/frakti.sock' });

/** Every key of the config file, as daemon-config.ts's schema has them. */
const KEYS = [
  'version', 'root', 'state',
  'grpc.address', 'grpc.max_message_bytes', 'grpc.shutdown_timeout_ms',
  'debug.level',
  'stream.address', 'stream.idle_timeout_ms',
  'metrics.address',
  'pod.default_cpus', 'pod.default_memory_mb', 'pod.max_memory_mb', 'pod.tcg_cache_mb', 'pod.vm_pool',
  'image.max_concurrent_downloads', 'image.insecure_registries',
  'image.registry.mirrors.docker.io.endpoint',
];

function leafKeys(doc: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(doc).flatMap(([k, v]) =>
    typeof v === 'object' && v !== null && !Array.isArray(v) ? leafKeys(v as Record<string, unknown>, `${prefix}${k}.`) : [`${prefix}${k}`],
  );
}

test('as written the config sets nothing: every key is commented out', () => {
  const text = configText(defaults);
  assert.deepEqual(parseConfigText(text, 'config.toml', defaults), defaults);
  assert.deepEqual(leafKeys(parse(text)), []);
});

test('uncommented, the config names every key, documented, at its default', () => {
  const text = configText(defaults);
  const lines = text.split('\n');
  const open = lines.map((l) => l.replace(/^# (?=\[image\.registry|[a-z_]+ = )/, '')).join('\n');
  assert.deepEqual(leafKeys(parse(open)).sort(), [...KEYS].sort());
  const parsed = parseConfigText(open, 'config.toml', defaults);
  assert.deepEqual(parsed, { ...defaults, image: { ...defaults.image, mirrors: { 'docker.io': ['https://mirror.example.com'] } } });
  // Each key's line follows at least one line of explanation.
  lines.forEach((l, i) => {
    if (/^# [a-z_]+ = /.test(l) && !l.startsWith('# endpoint')) assert.match(lines[i - 1]!, /^# (?![a-z_]+ = )\S/, `no explanation above '${l}'`);
  });
});

test('the unit runs the installed executable with the config and spares pod VMs on restart', () => {
  const unit = unitText({ executable: '/usr/local/bin/frakti', configFile: '/etc/frakti/config.toml' });
  assert.match(unit, /^ExecStart=\/usr\/local\/bin\/frakti daemon --config \/etc\/frakti\/config\.toml$/m);
  assert.match(unit, /^KillMode=process$/m);
  assert.doesNotMatch(unit, /^OOMScoreAdjust/m, 'pod VMs would inherit a protection from the OOM killer');
  assert.match(unit, /^Restart=always$/m);
  assert.match(unit, /^WantedBy=multi-user\.target$/m);
});

test("crictl's file points both endpoints at the socket", () => {
  assert.equal(crictlText('/run/frakti/frakti.sock'), 'runtime-endpoint: unix:///run/frakti/frakti.sock\nimage-endpoint: unix:///run/frakti/frakti.sock\ntimeout: 10\n');
});
