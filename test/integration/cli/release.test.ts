// The single executable of `make release`, run where nothing but it is
// visible: a private mount namespace with the checkout (node_modules, dist,
// build/guest), the kernel cache and every Node binary hidden under tmpfs, so
// only Debian's QEMU, virtiofsd and CNI plugins are left. There `frakti
// check` passes, `frakti run` prints hello from an imported image, and the
// daemon, started from the ExecStart of the unit `frakti install` writes,
// serves a pod and keeps it across its own restart. Outside: the extracted
// assets are verified and rewritten when tampered, also with two processes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { buildBusyboxImage } from '../../helpers/image-registry.js';
import { criClient, waitFor, writeTestNetwork, type CriClient } from '../../helpers/cri-client.js';
import { killLeftovers, processesMentioning } from '../../helpers/vmm-leaks.js';
import { SHIPPED_NAMES, buildManifest, checkoutPath } from '../../../src/lib/shipped-files.js';

const CHECKOUT = fileURLToPath(new URL('../../../../', import.meta.url));
const RELEASE = join(CHECKOUT, 'build/release/frakti');
const CMD_TIMEOUT_MS = 180_000;
const GUEST_FILES = ['vmlinux', 'initrd.img', 'bare-initrd.img', 'release', 'source-version', 'config-hash'];

let work: string;
let bin: string;
let holder: ChildProcess | undefined;
let bridge: string;
// The checkout's files are what the release embeds.
const manifest = buildManifest((name) => readFileSync(checkoutPath(name)));

/** Node binaries and libraries on this machine: what the namespace hides. */
function nodePaths(): { files: string[]; dirs: string[] } {
  // Real paths: a bind mount onto a symlink lands on its target (npm's points into a hidden folder).
  const files = new Set<string>([realpathSync(process.execPath)]);
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    for (const name of ['node', 'nodejs', 'npm', 'npx']) {
      const p = join(dir, name);
      if (existsSync(p)) files.add(realpathSync(p));
    }
  }
  const dirs = ['/usr/lib/node_modules', '/usr/local/lib/node_modules', '/usr/share/nodejs', '/usr/include/node', join(homedir(), '.cache/frakti'), process.env.FRAKTI_CACHE_DIR ?? ''].filter((d) => d && existsSync(d));
  // Files inside hidden directories go with them.
  return { files: [...files].filter((f) => !dirs.some((d) => f.startsWith(d + '/')) && !f.startsWith(CHECKOUT)), dirs };
}

/** Starts the process that holds the hidden namespace; every command enters it with nsenter. */
async function startHolder(): Promise<ChildProcess> {
  const { files, dirs } = nodePaths();
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const script = [
    'set -e',
    `mount -t tmpfs -o size=1m,mode=0755 frakti-hidden ${q(CHECKOUT)}`,
    `touch ${q(join(CHECKOUT, '.hidden'))}`,
    ...dirs.map((d) => `mount -t tmpfs -o size=1m frakti-hidden ${q(d)}`),
    ...files.map((f) => `mount --bind ${q(join(CHECKOUT, '.hidden'))} ${q(f)}`),
    'echo hidden',
    'exec sleep infinity',
  ].join('\n');
  const child = spawn('unshare', ['--mount', '--propagation', 'private', '--', 'bash', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`namespace setup failed (exit ${code}): ${err}`)));
  });
  return child;
}

/** Runs a command inside the hidden namespace. */
function inside(cmd: string[], opts: { timeout?: number; buffer?: boolean } = {}) {
  return execa('nsenter', ['-t', String(holder!.pid), '-m', '--', ...cmd], { cwd: work, reject: false, timeout: opts.timeout ?? CMD_TIMEOUT_MS, stdin: 'ignore', buffer: opts.buffer ?? true });
}

const dirs = () => ({ root: join(work, 'root'), state: join(work, 'state'), cni: join(work, 'cni') });

before(async () => {
  assert.ok(existsSync(RELEASE), `${RELEASE} is missing: run make release (make test builds it)`);
  work = await mkdtemp('/tmp/frakti-rel-');
  bin = join(work, 'bin', 'frakti');
  await mkdir(join(work, 'bin'));
  await copyFile(RELEASE, bin);
  await execa('chmod', ['755', bin]);
  const image = await buildBusyboxImage(work);
  await execa('tar', ['-C', image.layout, '-cf', join(work, 'busybox.tar'), '.']);
  bridge = await writeTestNetwork(dirs().cni, join(work, 'ipam'));
  holder = await startHolder();
});

after(async () => {
  holder?.kill('SIGKILL');
  // Whatever a failed test left running (QEMU, virtiofsd, a daemon) mentions work/.
  if (work) await killLeftovers(work);
  if (bridge) await execa('ip', ['link', 'del', bridge], { reject: false });
  if (work) await rm(work, { recursive: true, force: true });
});

test('inside the namespace only the executable is left: no checkout, no node', async () => {
  const ls = await inside(['ls', '-A', CHECKOUT]);
  assert.equal(ls.stdout.trim(), '.hidden');
  const node = await inside(['bash', '-c', '! node --version 2>/dev/null && ! nodejs --version 2>/dev/null && ! npm --version 2>/dev/null']);
  assert.equal(node.exitCode, 0, `a node runs in the namespace: ${node.stdout}`);
  assert.equal((await inside(['test', '-e', join(CHECKOUT, 'node_modules')])).exitCode, 1);
  const v = await inside([bin, '--version']);
  assert.equal(v.exitCode, 0, v.stderr);
  assert.equal(v.stderr, '');
  // --help loads every command's code: no warning of a module the executable lacks.
  const help = await inside([bin, '--help']);
  assert.equal(help.exitCode, 0);
  assert.equal(help.stderr, '');
  const release = (await readFile(checkoutPath('release'), 'utf8')).trim();
  assert.match(v.stdout, new RegExp(`^frakti \\d+\\.\\d+\\.\\d+\\nguest kernel ${release.replace(/\./g, '\\.')} \\(source .+, config [0-9a-f]+\\)\\nassets sha256:${manifest.hash}\\nnode v20\\.`));
});

test('frakti check passes and frakti run prints hello from an imported image', async () => {
  const { root, state, cni } = dirs();
  const check = await inside([bin, 'check', '--root', root]);
  assert.equal(check.exitCode, 0, check.stdout + check.stderr);
  assert.match(check.stdout, new RegExp(`ok +guest kernel +${join(root, 'assets', manifest.hash, 'vmlinux')}`));
  const imp = await inside([bin, 'image', 'import', '--root', root, '--tag', 'local/busybox:1', join(work, 'busybox.tar')]);
  assert.equal(imp.exitCode, 0, imp.stderr);
  const run = await inside([bin, 'run', '--root', root, '--state', state, '--cni-conf-dir', cni, 'local/busybox:1', '--', 'echo', 'hello']);
  assert.equal(run.exitCode, 0, run.stderr);
  assert.equal(run.stdout, 'hello');
  assert.deepEqual((await processesMentioning(state)).map((p) => p.cmd), []);
  // The pod's network and rootfs commands went through the shipped spawner, placed beside the other assets.
  assert.ok(existsSync(join(root, 'assets', manifest.hash, 'frakti-spawner')), 'frakti-spawner was extracted and used');
});

test('the installed unit passes systemd-analyze verify; its ExecStart serves a pod, which outlives a restart', async (t) => {
  const { root, state, cni } = dirs();
  const inst = join(work, 'inst');
  const install = await inside([bin, 'install', '--bin-dir', join(inst, 'bin'), '--etc-dir', join(inst, 'etc'), '--unit-dir', join(inst, 'systemd')]);
  assert.equal(install.exitCode, 0, install.stderr);
  const unitFile = join(inst, 'systemd', 'frakti.service');
  assert.match(install.stdout, /crictl --runtime-endpoint unix:\/\/\/run\/frakti\/frakti\.sock/);
  assert.match(await readFile(join(inst, 'etc', 'crictl.yaml'), 'utf8'), /^runtime-endpoint: unix:\/\/\/run\/frakti\/frakti\.sock$/m);
  const verify = await execa('systemd-analyze', ['verify', unitFile], { reject: false });
  assert.equal(verify.exitCode, 0, verify.stderr);
  assert.equal(verify.stderr.split('\n').filter((l) => l.includes('frakti.service')).join('\n'), '', 'no complaint about the unit');
  const unit = await readFile(unitFile, 'utf8');
  assert.match(unit, /^KillMode=process$/m);
  const execStart = /^ExecStart=(.+)$/m.exec(unit)![1]!.split(' ');
  assert.equal(execStart[0], join(inst, 'bin', 'frakti'));

  // The test's own folders instead of /var/lib/frakti and /run/frakti (flags win over the config file).
  const socket = join(work, 'frakti.sock');
  const flags = ['--root', root, '--state', state, '--listen', socket, '--cni-conf-dir', cni];
  let daemon: ReturnType<typeof inside> | undefined;
  let client: CriClient | undefined;
  const start = async () => {
    daemon = inside([...execStart, ...flags], { timeout: 0, buffer: false });
    daemon.stdout?.resume();
    let log = '';
    daemon.stderr?.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-20_000)));
    await waitFor(`frakti daemon ready (log: ${log})`, async () => /frakti daemon ready/.test(log), 60_000, 100);
    client = criClient(socket);
  };
  const stop = async () => {
    client?.close();
    daemon?.kill('SIGTERM');
    await daemon;
  };
  t.after(async () => {
    const rt = client?.runtime;
    for (const p of (await rt?.ListPodSandbox!({}).catch(() => ({ items: [] })))?.items ?? []) await rt!.RemovePodSandbox!({ pod_sandbox_id: p.id }).catch(() => {});
    await stop();
  });

  await start();
  const rt = client!.runtime;
  const config = {
    metadata: { name: 'rel', uid: 'uid-rel', namespace: 'default', attempt: 0 },
    hostname: 'rel',
    log_directory: join(work, 'logs'),
    linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
  };
  const { pod_sandbox_id: pod } = await rt.RunPodSandbox!({ config }, { timeoutMs: CMD_TIMEOUT_MS });
  const { container_id: c } = await rt.CreateContainer!(
    { pod_sandbox_id: pod, config: { metadata: { name: 'c', attempt: 0 }, image: { image: 'local/busybox:1' }, command: ['sleep', '3600'], log_path: 'c.log' }, sandbox_config: config },
    { timeoutMs: CMD_TIMEOUT_MS },
  );
  await rt.StartContainer!({ container_id: c });
  const ex = await rt.ExecSync!({ container_id: c, cmd: ['echo', 'hello'], timeout: '30' }, { timeoutMs: 60_000 });
  assert.equal(Buffer.from(ex.stdout).toString(), 'hello\n');

  // What KillMode=process keeps: the daemon goes, its pod VM stays (its pool VM does not), the next daemon takes it back.
  await stop();
  assert.equal((await processesMentioning(state)).filter((p) => /qemu-system/.test(p.cmd)).length, 1, 'the pod VM outlives the daemon');
  await start();
  const rt2 = client!.runtime;
  assert.equal((await rt2.PodSandboxStatus!({ pod_sandbox_id: pod })).status.state, 'SANDBOX_READY');
  const ex2 = await rt2.ExecSync!({ container_id: c, cmd: ['echo', 'again'], timeout: '30' }, { timeoutMs: 60_000 });
  assert.equal(Buffer.from(ex2.stdout).toString(), 'again\n');
  await rt2.StopPodSandbox!({ pod_sandbox_id: pod }, { timeoutMs: CMD_TIMEOUT_MS });
  await rt2.RemovePodSandbox!({ pod_sandbox_id: pod }, { timeoutMs: CMD_TIMEOUT_MS });
  // The installed default keeps a pool VM booted ahead: it goes with the daemon.
  await stop();
  assert.deepEqual((await processesMentioning(state)).filter((p) => /qemu-system|virtiofsd/.test(p.cmd)).map((p) => p.cmd), []);
});

/** The guest files of an asset folder, each checked against the checkout's hash. */
async function assertExtracted(root: string): Promise<void> {
  const dir = join(root, 'assets', manifest.hash);
  assert.equal((await stat(dir)).mode & 0o777, 0o700);
  for (const name of GUEST_FILES) {
    const data = await readFile(join(dir, name));
    assert.equal(createHash('sha256').update(data).digest('hex'), manifest.files[name]!.sha256, `${name} as extracted`);
  }
  assert.deepEqual((await readdir(dir)).filter((n) => n.includes('.tmp-')), [], 'no temporary files left');
}

test('two processes extracting at once both succeed; tampered assets are found and rewritten', async () => {
  assert.deepEqual([...SHIPPED_NAMES].filter((n) => !manifest.files[n]), []);
  const root = join(work, 'root2');
  const both = await Promise.all([1, 2].map(() => execa(bin, ['check', '--root', root], { reject: false, timeout: CMD_TIMEOUT_MS })));
  for (const r of both) assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  await assertExtracted(root);

  const dir = join(root, 'assets', manifest.hash);
  const kernel = await readFile(join(dir, 'vmlinux'));
  kernel[4096] = kernel[4096]! ^ 0xff;
  await writeFile(join(dir, 'vmlinux'), kernel); // same size, one byte off
  await truncate(join(dir, 'initrd.img'), 1000);
  await rm(join(dir, 'bare-initrd.img'));
  await symlink('/etc/hostname', join(dir, 'bare-initrd.img'));
  const again = await execa(bin, ['check', '--root', root], { reject: false, timeout: CMD_TIMEOUT_MS });
  assert.equal(again.exitCode, 0, again.stdout + again.stderr);
  await assertExtracted(root);
});
