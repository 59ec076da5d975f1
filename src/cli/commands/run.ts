// `frakti run IMAGE [-- CMD ARGS...]`: one VM-isolated command now. Pulls
// the image if it is not there, runs a pod VM with one container, prints the
// container's output, exits with its exit code, and removes everything.
import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { ImageStore } from '../../image/index.js';
import { waitForAgent } from '../../agent-protocol/index.js';
import { MAX_TCG_CACHE_MIB, MIN_TCG_CACHE_MIB, Vm, chooseAccel, guestAssets, parseAccelChoice } from '../../vmm/index.js';
import { PodError, PodManager } from '../../pod/index.js';
import { choosePodNetwork } from '../../pod/pod-network-source.js';
import { errorMessage } from '../../lib/errors.js';
import { setAssetRoot } from '../../lib/shipped-files.js';
import { UsageError } from '../cli-error.js';
import { DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS } from '../../cri/index.js';
import { DEFAULT_ROOT_DIR, DEFAULT_STATE_DIR } from '../defaults.js';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';

export const summary = 'run one command in a fresh pod VM and print its output';

const HELP = `usage: frakti run [options] IMAGE [-- CMD ARGS...]

Pulls IMAGE if needed, boots a pod VM, runs the command (or the image's
default), prints its output, exits with its exit code, and cleans up.

options:
  -i, --interactive    pass this terminal's stdin to the command (closed at EOF)
  -t, --tty            give the command a terminal (with -i and a terminal here:
                       raw keys, the window size follows)
  -e, --env K=V        environment variable (repeatable)
  -w, --workdir DIR    working directory
  -u, --user UID       run as this user id
      --cpus N         vCPUs of the VM (default 1)
      --memory-mb N    memory of the VM in MiB (default 256)
      --accel MODE     auto, kvm or tcg (default auto)
      --tcg-cache-mb N without KVM: the VM's translation cache, 8..1024 (default 10;
                       more makes a busy command faster)
      --root DIR       persistent state (default ${DEFAULT_ROOT_DIR})
      --state DIR      volatile state (default ${DEFAULT_STATE_DIR})
      --cni-conf-dir D (default /etc/cni/net.d; empty: frakti's own bridge)
  -h, --help`;

function positiveInt(v: string | undefined, name: string, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`${name} must be an integer in 1..${max}`);
  return n;
}

export async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        interactive: { type: 'boolean', short: 'i', default: false },
        tty: { type: 'boolean', short: 't', default: false },
        env: { type: 'string', short: 'e', multiple: true, default: [] },
        workdir: { type: 'string', short: 'w' },
        user: { type: 'string', short: 'u' },
        cpus: { type: 'string' },
        'memory-mb': { type: 'string' },
        accel: { type: 'string', default: 'auto' },
        'tcg-cache-mb': { type: 'string' },
        root: { type: 'string', default: DEFAULT_ROOT_DIR },
        state: { type: 'string', default: DEFAULT_STATE_DIR },
        'cni-conf-dir': { type: 'string', default: '/etc/cni/net.d' },
        'cni-bin-dir': { type: 'string', default: '/opt/cni/bin:/usr/lib/cni' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
  const { values: v, positionals } = parsed;
  if (v.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const [image, ...cmd] = positionals;
  if (!image) throw new UsageError('missing IMAGE (see frakti run --help)');
  const env = v.env!.map((kv): [string, string] => {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new UsageError(`--env wants K=V, got '${kv}'`);
    return [kv.slice(0, eq), kv.slice(eq + 1)];
  });
  const uid = v.user === undefined ? undefined : Number(v.user);
  if (uid !== undefined && (!Number.isInteger(uid) || uid < 0)) throw new UsageError('--user must be a numeric uid');
  const cpus = positiveInt(v.cpus, '--cpus', 64) ?? 1;
  const memoryMiB = positiveInt(v['memory-mb'], '--memory-mb', 1024 * 1024) ?? 256;
  const tcgCacheMiB = positiveInt(v['tcg-cache-mb'], '--tcg-cache-mb', MAX_TCG_CACHE_MIB);
  if (tcgCacheMiB !== undefined && tcgCacheMiB < MIN_TCG_CACHE_MIB) throw new UsageError(`--tcg-cache-mb must be an integer in ${MIN_TCG_CACHE_MIB}..${MAX_TCG_CACHE_MIB}`);
  let accelChoice;
  try {
    accelChoice = parseAccelChoice(v.accel!);
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }

  setAssetRoot(v.root!);
  const guest = guestAssets();
  const accel = await chooseAccel(accelChoice, { kernel: guest.kernel, bareInitrd: guest.bareInitrd });
  if (accel.accel === 'tcg' && accelChoice === 'auto') process.stderr.write(`frakti run: ${accel.reason}\n`);
  const images = await ImageStore.open({ root: join(v.root!, 'image') });
  // A one-shot pod keeps its records apart from the daemon's, and removes them.
  const runId = randomBytes(6).toString('hex');
  const runRoot = join(v.root!, 'run', runId);
  const runState = join(v.state!, 'run', runId);
  await mkdir(runRoot, { recursive: true, mode: 0o700 });
  const logDir = await mkdtemp(join(runRoot, 'logs-'));
  const binDirs = v['cni-bin-dir']!.split(':').filter(Boolean);
  const manager = new PodManager(
    { rootDir: runRoot, stateDir: runState, guest, accel: accel.accel, tcgCacheMiB, defaultCpus: cpus, defaultMemoryMiB: memoryMiB, vsock: await vsockAvailable() },
    {
      images,
      network: async () => {
        const choice = await choosePodNetwork({ confDir: v['cni-conf-dir']!, binDirs, rootDir: v.root! });
        if (!choice.network) throw new PodError('FAILED_PRECONDITION', `no pod network: ${choice.message}`);
        return choice.network;
      },
      launchVm: (spec, opts) => Vm.launch(spec, opts),
      attachVm: (dir) => Vm.attach(dir),
      waitForAgent: (endpoint, o) => waitForAgent(endpoint, o),
    },
  );
  await manager.start();

  let podId: string | undefined;
  let stopInput = () => {};
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    if (podId) void manager.stopPodSandbox(podId).catch(() => {});
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    if (!(await images.status(image))) await images.pull(image);
    const name = `run-${runId}`;
    podId = await manager.runPodSandbox({
      metadata: { name, uid: runId, namespace: 'frakti-run', attempt: 0 },
      hostname: name, logDirectory: logDir, dns: { servers: [], searches: [], options: [] }, portMappings: [],
      labels: {}, annotations: {}, pidMode: 'pod', sysctls: {}, cpus, memoryMiB, runtimeHandler: '',
    });
    const ctr = await manager.createContainer(podId, {
      name: 'main', attempt: 0, imageRef: image, imageId: '', command: cmd, args: [], env, workingDir: v.workdir ?? '',
      user: { uid, additionalGids: [] }, mounts: [], logPath: join(logDir, 'main.log'), tty: v.tty!, stdin: v.interactive!, stdinOnce: v.interactive!,
      labels: {}, annotations: {}, readonlyRootfs: false, privileged: false, capabilities: { add: [], drop: [] }, noNewPrivileges: false, resources: {},
      // As `docker run`: the default seccomp profile and masked paths.
      seccomp: { type: 'runtime-default' }, maskedPaths: DEFAULT_MASKED_PATHS, readonlyPaths: DEFAULT_READONLY_PATHS,
    });
    manager.tapOutput(ctr, (stream, chunk) => (stream === 'stdout' ? process.stdout : process.stderr).write(chunk));
    await manager.startContainer(ctr);
    stopInput = connectTerminal(manager, ctr, { stdin: v.interactive!, tty: v.tty! });
    await manager.waitExited(ctr);
    const status = manager.container(ctr).status;
    if (interrupted) return 130;
    return status.exitCode ?? 255;
  } finally {
    stopInput();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (podId) await manager.removePodSandbox(podId).catch((err) => process.stderr.write(`frakti run: cleanup: ${errorMessage(err)}\n`));
    await manager.close();
    await images.close();
    await rm(runRoot, { recursive: true, force: true });
    await rm(runState, { recursive: true, force: true });
  }
}

/**
 * Feeds our stdin to the container (-i) and, with -t on a terminal, puts it
 * in raw mode (keys such as ^C go to the container) and follows the window
 * size. Returns the undo, which leaves our terminal as it found it.
 */
function connectTerminal(manager: PodManager, ctr: string, opts: { stdin: boolean; tty: boolean }): () => void {
  if (!opts.stdin && !opts.tty) return () => {};
  let session;
  try {
    session = manager.attach(ctr, { stdin: opts.stdin });
  } catch {
    return () => {}; // it has already exited
  }
  // Output reaches us through the output tap; this session carries input and size only.
  session.stdout.resume();
  session.stderr.resume();
  const undo: Array<() => void> = [() => session.detach()];
  if (opts.tty && process.stdout.isTTY) {
    const follow = () => void session.resize(process.stdout.columns, process.stdout.rows).catch(() => {});
    follow();
    process.stdout.on('resize', follow);
    undo.push(() => process.stdout.off('resize', follow));
  }
  if (opts.stdin && session.stdin) {
    if (opts.tty && process.stdin.isTTY) {
      process.stdin.setRawMode(true);
      undo.push(() => process.stdin.setRawMode(false));
    }
    process.stdin.pipe(session.stdin);
    undo.push(() => {
      process.stdin.unpipe();
      process.stdin.pause();
    });
  }
  return () => {
    for (const u of undo.reverse()) u();
  };
}

async function vsockAvailable(): Promise<boolean> {
  return access('/dev/vhost-vsock', constants.R_OK | constants.W_OK).then(
    () => true,
    () => false,
  );
}
