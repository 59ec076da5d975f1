// `frakti qmp` against a real VM: one command, errors, events, the shell.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { Vm, guestAssets } from '../../../src/vmm/index.js';
import { frakti, FRAKTI_BIN } from '../../helpers/cli-run.js';
import { killLeftovers } from '../../helpers/vmm-leaks.js';

let root: string;
let vm: Vm;
const POD = 'pod-qmp-cli';

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'frakti-qmpcli-'));
  const a = guestAssets();
  // TCG always: this test is about the CLI, not the accelerator.
  vm = await Vm.launch({ id: POD, dir: join(root, 'state', 'vm', POD), cpus: 1, memoryMiB: 128, kernel: a.kernel, initrd: a.initrd, accel: 'tcg', channel: { kind: 'serial' } });
});

after(async () => {
  await vm?.stop({ timeoutMs: 5_000 }).catch(() => {});
  const left = await killLeftovers(root);
  await rm(root, { recursive: true, force: true });
  assert.deepEqual(left, []);
});

test('one command by pod id prints the reply as JSON', async () => {
  const r = await frakti(['qmp', '--state', join(root, 'state'), POD, 'query-status']);
  assert.equal(r.exitCode, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { status: 'running', singlestep: false, running: true });
});

test('by socket path, with JSON arguments', async () => {
  const r = await frakti(['qmp', vm.paths.debugQmpSocket, 'qom-get', '{"path":"/machine","property":"type"}']);
  assert.equal(r.exitCode, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout), 'pc-q35-7.2-machine');
});

test('a QMP error is one line and exit code 1', async () => {
  const r = await frakti(['qmp', vm.paths.dir, 'no-such-command']);
  assert.equal(r.exitCode, 1);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.match(r.stderr, /^frakti: QMP no-such-command: CommandNotFound: /);
});

test('wrong calls exit 2 with what is wrong', async () => {
  const cases: [string[], RegExp][] = [
    [['qmp'], /missing TARGET/],
    [['qmp', vm.paths.dir, 'query-status', '{not json'], /arguments are not JSON/],
    [['qmp', vm.paths.dir, 'query-status', '[1]'], /must be a JSON object/],
    [['qmp', '--state', join(root, 'state'), 'no-such-pod', 'query-status'], /no VM for pod 'no-such-pod'/],
    [['qmp', '--bogus', 'x'], /Unknown option '--bogus'/],
  ];
  for (const [args, re] of cases) {
    const r = await frakti(args);
    assert.equal(r.exitCode, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
});

test('--events prints events as they arrive', async () => {
  const child = execa(FRAKTI_BIN, ['qmp', vm.paths.dir, '--events'], { reject: false });
  try {
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const connectedBy = Date.now() + 10_000;
    while (!/following events/.test(err) && Date.now() < connectedBy) await new Promise((r) => setTimeout(r, 20));
    assert.match(err, /following events/);
    // Cause two events through the daemon's own monitor.
    await vm.qmp.execute('stop');
    await vm.qmp.execute('cont');
    const deadline = Date.now() + 5_000;
    while (!/RESUME/.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const events = out.trim().split('\n').map((l) => JSON.parse(l).event);
    assert.deepEqual(events.slice(0, 2), ['STOP', 'RESUME']);
  } finally {
    child.kill('SIGINT');
    const r = await child;
    assert.equal(r.exitCode, 0);
  }
});

test('the interactive shell runs commands from its input', async () => {
  const r = await execa(FRAKTI_BIN, ['qmp', vm.paths.dir], {
    input: 'query-status\nquery-name\nnope\nquit\n',
    reject: false,
    env: { FRAKTI_QMP_HISTORY: join(root, 'history') },
  });
  assert.equal(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /"status": "running"/);
  assert.match(r.stdout, /"name": "frakti-pod-qmp-cli"/);
  assert.match(r.stdout, /error: QMP nope: CommandNotFound/);
});

test('console prints what the guest wrote on its serial port', async () => {
  // The agent announces itself on the console once it is up; reading consumes, so collect.
  let seen = '';
  const deadline = Date.now() + 30_000;
  while (!/frakti-agent: ready/.test(seen) && Date.now() < deadline) {
    const r = await frakti(['console', '--state', join(root, 'state'), POD]);
    assert.equal(r.exitCode, 0, r.stderr);
    seen += r.stdout;
    await new Promise((res) => setTimeout(res, 200));
  }
  assert.match(seen, /frakti-agent: ready/);
  const bad = await frakti(['console']);
  assert.equal(bad.exitCode, 2);
  assert.match(bad.stderr, /missing TARGET/);
});
