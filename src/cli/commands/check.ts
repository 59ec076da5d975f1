// `frakti check`: can this host run pod VMs? One line per item, the fatal
// ones marked, what to install; exit 1 when pods cannot run here.
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { chooseAccel, guestAssets, kernelInfo, parseAccelChoice } from '../../vmm/index.js';
import { errorMessage } from '../../lib/errors.js';
import { setAssetRoot } from '../../lib/shipped-files.js';
import { UsageError } from '../cli-error.js';
import { DEFAULT_ROOT_DIR, DEFAULT_SOCKET } from '../defaults.js';
import { DEFAULT_OS_RUNTIME_ENDPOINT } from '../../cri/index.js';
import { OsRuntime } from '../../mixed/index.js';

export const summary = 'report whether this host can run pod VMs, and what to install';

const HELP = `usage: frakti check [--accel auto|kvm|tcg] [--root DIR] [--os-runtime-endpoint EP] [--listen SOCKET] [--json]

Checks the accelerator (KVM is probed by booting a guest), QEMU, virtiofsd,
vhost-vsock, the bundled guest kernel and initrd, cgroups, CNI plugins, and
the OS-container runtime for pods that need the host (containerd's CRI at EP,
default ${DEFAULT_OS_RUNTIME_ENDPOINT}; '' for none), and, when frakti's daemon
answers at SOCKET (default ${DEFAULT_SOCKET}), its pool of pod VMs booted ahead.
The single executable writes its guest files under DIR/assets first (--root,
default ${DEFAULT_ROOT_DIR}, as for the daemon).
Exit code 0 when pods can run here, 1 when something required is missing.`;

export type CheckLevel = 'ok' | 'warn' | 'fail';
export interface CheckItem {
  name: string;
  level: CheckLevel;
  detail: string;
  /** What to do about it, for warn and fail. */
  fix?: string;
}

const CNI_DIRS = ['/opt/cni/bin', '/usr/lib/cni'];
const CNI_PLUGINS = ['bridge', 'host-local', 'loopback', 'portmap'];

async function exists(path: string, mode = constants.F_OK): Promise<boolean> {
  return access(path, mode).then(
    () => true,
    () => false,
  );
}

async function versionLine(cmd: string, args: string[]): Promise<string | undefined> {
  const res = await execa(cmd, args, { reject: false, timeout: 5_000 });
  return res.exitCode === 0 ? res.stdout.split('\n')[0]?.trim() : undefined;
}

/** The OS-container runtime: optional (VM pods run without it), so never fail. */
export async function osRuntimeCheck(endpoint: string): Promise<CheckItem> {
  const name = 'os runtime';
  if (!endpoint) return { name, level: 'ok', detail: 'none configured: pods that need the host (hostNetwork, privileged) are refused' };
  let os: OsRuntime;
  try {
    os = new OsRuntime(endpoint);
  } catch (err) {
    return { name, level: 'warn', detail: errorMessage(err), fix: 'give --os-runtime-endpoint as unix:///PATH' };
  }
  const fix = 'apt-get install containerd runc, with restrict_oom_score_adj = true in its CRI config where frakti lacks CAP_SYS_RESOURCE';
  if (!os.present()) return { name, level: 'warn', detail: `no socket at ${os.socketPath}: pods that need the host (hostNetwork, privileged) cannot run`, fix };
  try {
    const v = await os.call('runtime', 'Version', { version: 'v1' }, undefined, 5000);
    return { name, level: 'ok', detail: `${v.runtime_name} ${v.runtime_version} (CRI ${v.runtime_api_version}) at ${endpoint}: pods that need the host run there` };
  } catch (err) {
    return { name, level: 'warn', detail: errorMessage(err), fix };
  } finally {
    os.close();
  }
}

/** The running daemon's pool of VMs booted ahead, from its CRI Status (verbose). */
export async function vmPoolCheck(socket: string): Promise<CheckItem> {
  const name = 'vm pool';
  const daemon = new OsRuntime(`unix://${socket}`);
  try {
    if (!daemon.present()) return { name, level: 'ok', detail: `no daemon at ${socket}: its pool is shown while it runs` };
    const st = await daemon.call('runtime', 'Status', { verbose: true }, undefined, 5000);
    const raw = (st.info as Record<string, string> | undefined)?.vm_pool;
    if (!raw) return { name, level: 'ok', detail: 'off (--vm-pool 0): every pod boots its VM' };
    const p = JSON.parse(raw) as { size: number; ready: number; booting: number; lastError?: string };
    const detail = `${p.ready} of ${p.size} ready, ${p.booting} booting`;
    if (p.lastError) return { name, level: 'warn', detail: `${detail}; the last boot failed: ${p.lastError}`, fix: 'pods boot their own VMs meanwhile; see the daemon log' };
    return { name, level: 'ok', detail };
  } catch (err) {
    return { name, level: 'warn', detail: `the daemon at ${socket} did not answer: ${errorMessage(err)}` };
  } finally {
    daemon.close();
  }
}

export async function runChecks(accelChoice: 'auto' | 'kvm' | 'tcg', osRuntimeEndpoint = DEFAULT_OS_RUNTIME_ENDPOINT, socket = DEFAULT_SOCKET): Promise<CheckItem[]> {
  const items: CheckItem[] = [];
  let assets;
  try {
    assets = guestAssets();
  } catch (err) {
    // Only the single executable can fail here: writing its assets out.
    assets = guestAssets('/nonexistent');
    items.push({ name: 'guest files', level: 'fail', detail: errorMessage(err), fix: 'run as root, or give a writable --root' });
  }

  const qemu = await versionLine('qemu-system-x86_64', ['--version']);
  items.push(qemu ? { name: 'qemu', level: 'ok', detail: qemu } : { name: 'qemu', level: 'fail', detail: 'qemu-system-x86_64 not found', fix: 'apt-get install qemu-system-x86' });

  const vfs = await versionLine('/usr/lib/qemu/virtiofsd', ['--version']);
  items.push(vfs ? { name: 'virtiofsd', level: 'ok', detail: vfs } : { name: 'virtiofsd', level: 'fail', detail: '/usr/lib/qemu/virtiofsd not found', fix: 'apt-get install qemu-system-common' });

  const fw = await exists('/usr/share/qemu/qboot.rom');
  items.push(fw ? { name: 'firmware', level: 'ok', detail: '/usr/share/qemu/qboot.rom' } : { name: 'firmware', level: 'fail', detail: 'qboot.rom not found', fix: 'apt-get install qemu-system-data' });

  const ki = await kernelInfo(assets.dir);
  items.push(
    ki
      ? { name: 'guest kernel', level: 'ok', detail: `${assets.kernel}: ${ki.release} (source ${ki.sourceVersion}, config ${ki.configHash})` }
      : { name: 'guest kernel', level: 'fail', detail: `${assets.kernel} not found`, fix: 'run make in the frakti tree, or set FRAKTI_GUEST_DIR' },
  );
  for (const [name, path] of [['initrd', assets.initrd], ['bare initrd', assets.bareInitrd]] as const) {
    const st = await stat(path).catch(() => undefined);
    items.push(st ? { name, level: 'ok', detail: `${path} (${(st.size / 1024).toFixed(0)} KiB)` } : { name, level: 'fail', detail: `${path} not found`, fix: 'run make in the frakti tree' });
  }

  if (qemu && ki && (await exists(assets.bareInitrd))) {
    const d = await chooseAccel(accelChoice, { kernel: assets.kernel, bareInitrd: assets.bareInitrd });
    items.push({ name: 'accelerator', level: d.accel === 'kvm' ? 'ok' : 'warn', detail: `${d.accel}: ${d.reason}`, ...(d.accel === 'tcg' ? { fix: 'pods run, slowly; a host with working KVM runs them fast' } : {}) });
  } else {
    items.push({ name: 'accelerator', level: 'fail', detail: 'not probed: QEMU or the guest kernel is missing' });
  }

  const vsock = await exists('/dev/vhost-vsock', constants.R_OK | constants.W_OK);
  items.push(vsock ? { name: 'vhost-vsock', level: 'ok', detail: '/dev/vhost-vsock: agent channel over vsock' } : { name: 'vhost-vsock', level: 'ok', detail: 'no /dev/vhost-vsock: agent channel over virtio-serial' });

  items.push(await cgroupCheck());

  const found: string[] = [];
  const missing: string[] = [];
  for (const p of CNI_PLUGINS) {
    const dir = (await Promise.all(CNI_DIRS.map(async (d) => ((await exists(`${d}/${p}`, constants.X_OK)) ? d : undefined)))).find(Boolean);
    (dir ? found : missing).push(dir ? `${p} (${dir})` : p);
  }
  items.push(missing.length === 0 ? { name: 'cni plugins', level: 'ok', detail: found.join(', ') } : { name: 'cni plugins', level: 'warn', detail: `missing: ${missing.join(', ')}`, fix: 'apt-get install containernetworking-plugins' });
  items.push(await osRuntimeCheck(osRuntimeEndpoint));
  items.push(await vmPoolCheck(socket));
  return items;
}

async function cgroupCheck(): Promise<CheckItem> {
  try {
    const mounts = await readFile('/proc/mounts', 'utf8');
    const v2 = mounts.split('\n').some((l) => / \/sys\/fs\/cgroup(\/unified)? cgroup2 /.test(l));
    const v1 = mounts.split('\n').some((l) => / cgroup /.test(l));
    const kind = v1 && v2 ? 'hybrid (v1 + v2)' : v2 ? 'v2' : v1 ? 'v1' : 'none';
    return kind === 'none' ? { name: 'cgroups', level: 'warn', detail: 'no cgroup mounted', fix: 'mount cgroup2 at /sys/fs/cgroup' } : { name: 'cgroups', level: 'ok', detail: kind };
  } catch (err) {
    return { name: 'cgroups', level: 'warn', detail: errorMessage(err) };
  }
}

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { accel: { type: 'string', default: 'auto' }, root: { type: 'string', default: DEFAULT_ROOT_DIR }, 'os-runtime-endpoint': { type: 'string', default: DEFAULT_OS_RUNTIME_ENDPOINT }, listen: { type: 'string', default: DEFAULT_SOCKET }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } } }));
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  let accel;
  try {
    accel = parseAccelChoice(values.accel!);
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
  if (!values.root!.startsWith('/')) throw new UsageError(`--root must be an absolute path, got '${values.root!}'`);
  setAssetRoot(values.root!);
  const items = await runChecks(accel, values['os-runtime-endpoint'], values.listen);
  const ready = !items.some((i) => i.level === 'fail');
  if (values.json) {
    process.stdout.write(JSON.stringify({ ready, items }, null, 2) + '\n');
  } else {
    for (const i of items) {
      process.stdout.write(`${i.level.padEnd(4)}  ${i.name.padEnd(13)} ${i.detail}${i.fix ? `\n${''.padEnd(20)}-> ${i.fix}` : ''}\n`);
    }
    process.stdout.write(ready ? 'frakti can run pods on this host\n' : 'frakti cannot run pods on this host: fix the lines marked fail\n');
  }
  return ready ? 0 : 1;
}
