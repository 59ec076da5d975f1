// `frakti daemon`: serves the CRI API (runtime.v1) on a unix socket until
// SIGTERM or SIGINT, then stops accepting, lets in-flight calls finish
// within a bound and removes its socket.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { availableParallelism, totalmem } from 'node:os';
import { errorMessage } from '../../lib/errors.js';
import { logger, setLogLevel, type Level } from '../../lib/log.js';
import { FRAKTI_VERSION } from '../../lib/version.js';
import { setAssetRoot } from '../../lib/shipped-files.js';
import { setSpawnerLock } from '../../lib/command.js';
import {
  CriServer,
  ConfigError,
  DEFAULT_OS_RUNTIME_ENDPOINT,
  LOG_LEVELS,
  defaultConfig,
  loadConfigFile,
  runtimeHandlers,
  imageHandlers,
  imageStoreHolder,
  parseMetricsAddress,
  validateConfig,
  type DaemonConfig,
} from '../../cri/index.js';
import { UsageError } from '../cli-error.js';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { MAX_TCG_CACHE_MIB, MEMORY_BLOCK_MIB, MIN_TCG_CACHE_MIB, Vm, chooseAccel, guestAssets, parseAccelChoice, type AccelChoice } from '../../vmm/index.js';
import { waitForAgent } from '../../agent-protocol/index.js';
import { MAX_VM_POOL, PodError, PodManager } from '../../pod/index.js';
import { StreamingServer } from '../../streaming/index.js';
import { choosePodNetwork } from '../../pod/pod-network-source.js';
import { registerPodGauges } from '../../pod/pod-metrics.js';
import { collectProcessMetrics, metrics } from '../../lib/metrics.js';
import { serveMetrics, type MetricsServer } from '../metrics-server.js';
import { OsRuntime, mixedImageHandlers, mixedRuntimeHandlers, type MixedDeps } from '../../mixed/index.js';

/** Memory the guest kernel and agent need above the containers' limits. */
const GUEST_OVERHEAD_MIB = 64;
const MAX_POD_CPUS = 64;
/**
 * Under KVM, how many vCPUs a pod VM can grow to in place. Each possible vCPU
 * costs the guest its per-CPU area (~150 KiB here) from boot on, used or not,
 * so not every host core: 8.
 */
const GROWABLE_POD_CPUS = 8;

/** The host's memory in whole blocks of the size x86 Linux hot-adds memory in. */
function hostMemoryMiB(): number {
  return Math.floor(totalmem() / (MEMORY_BLOCK_MIB * 1024 * 1024)) * MEMORY_BLOCK_MIB;
}

async function vsockUsable(): Promise<boolean> {
  return access('/dev/vhost-vsock', constants.R_OK | constants.W_OK).then(
    () => true,
    () => false,
  );
}
import { DEFAULT_ROOT_DIR, DEFAULT_SOCKET, DEFAULT_STATE_DIR } from '../defaults.js';

export const summary = 'serve the CRI API (runtime.v1) for kubelet and crictl on a unix socket';

const HELP = `usage: frakti daemon [options]

Serves the Kubernetes CRI API (RuntimeService, ImageService) on a unix socket.
Values come from the defaults, then --config FILE, then these flags.

options:
  --listen SOCKET            CRI socket (default ${DEFAULT_SOCKET})
  --root DIR                 persistent state: images, pod records (default ${DEFAULT_ROOT_DIR})
  --state DIR                volatile state: VM sockets (default ${DEFAULT_STATE_DIR})
  --config FILE              TOML configuration (optional; unknown keys are refused)
  --log-level LEVEL          ${LOG_LEVELS.join(', ')} (default info)
  --default-cpus N           vCPUs of a pod VM without resources (default 1)
  --default-memory-mb N      memory of a pod VM without resources (default 256)
  --max-memory-mb N          how far a pod VM's memory grows when kubelet resizes the
                             pod in place (default 0: the host's memory)
  --tcg-cache-mb N           without KVM: each pod VM's TCG translation cache, 8..1024
                             (default 10; 8 saves ~2 MiB per pod, but busy guests
                             run over ten times slower)
  --vm-pool N                pod VMs kept booted ahead at the default size, each for
                             one pod, never shared (default 1: a pod that comes alone
                             starts without a boot, for one idle VM's memory); 0: none
  --insecure-registry HOST   talk plain HTTP to HOST[:PORT] (repeatable)
  --shutdown-timeout-ms N    bound on finishing calls at shutdown (default 10000)
  --stream-address IP:PORT   streaming server for exec, attach and port-forward
                             (default 127.0.0.1:0: loopback, any free port)
  --stream-idle-timeout-ms N close a streaming connection idle this long (default 14400000)
  --metrics-address ADDR     serve Prometheus metrics at http://ADDR/metrics; HOST:PORT,
                             or PORT alone for loopback (default: not served)
  --os-runtime-endpoint EP   containerd's CRI socket for pods that need the host (privileged,
                             host network/PID/IPC, annotated, or a handler of
                             [os_runtime] handlers); '' for none
                             (default ${DEFAULT_OS_RUNTIME_ENDPOINT})
  --accel auto|kvm|tcg       accelerator; auto probes KVM by booting a guest (default auto)
  --cni-conf-dir DIR         CNI network configs (default /etc/cni/net.d; none there:
                             frakti's own bridge network)
  --cni-bin-dir DIRS         CNI plugin search path, colon-separated (default /opt/cni/bin:/usr/lib/cni)
  --no-default-network       without a CNI config, report NetworkReady false instead of
                             using frakti's own bridge network
  -h, --help`;

export interface PodFlags {
  accel: AccelChoice;
  cniConfDir: string;
  cniBinDirs: string[];
  defaultNetwork: boolean;
}

const log = logger('daemon');

/** A lookup of frakti's records that finds the id (unknown or ambiguous ids throw). */
function holds(lookup: () => string | undefined): boolean {
  try {
    return lookup() !== undefined;
  } catch {
    return false;
  }
}

function intFlag(name: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max) throw new UsageError(`--${name} must be an integer in ${min}..${max}, got '${v}'`);
  return n;
}

/** Defaults, then the config file, then the flags. */
export async function resolveConfig(argv: string[]): Promise<{ cfg: DaemonConfig; pod: PodFlags } | 'help'> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        listen: { type: 'string' },
        root: { type: 'string' },
        state: { type: 'string' },
        config: { type: 'string' },
        'log-level': { type: 'string' },
        'default-cpus': { type: 'string' },
        'default-memory-mb': { type: 'string' },
        'max-memory-mb': { type: 'string' },
        'tcg-cache-mb': { type: 'string' },
        'vm-pool': { type: 'string' },
        'insecure-registry': { type: 'string', multiple: true },
        'shutdown-timeout-ms': { type: 'string' },
        'stream-address': { type: 'string' },
        'stream-idle-timeout-ms': { type: 'string' },
        'metrics-address': { type: 'string' },
        'os-runtime-endpoint': { type: 'string' },
        accel: { type: 'string', default: 'auto' },
        'cni-conf-dir': { type: 'string', default: '/etc/cni/net.d' },
        'cni-bin-dir': { type: 'string', default: '/opt/cni/bin:/usr/lib/cni' },
        'no-default-network': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    throw new UsageError(`${errorMessage(err)} (see frakti daemon --help)`);
  }
  if (values.help) return 'help';
  let cfg = defaultConfig({ root: DEFAULT_ROOT_DIR, state: DEFAULT_STATE_DIR, listen: DEFAULT_SOCKET });
  if (values.config !== undefined) cfg = await loadConfigFile(values.config, cfg);
  if (values.listen !== undefined) cfg.listen = values.listen;
  if (values.root !== undefined) cfg.root = values.root;
  if (values.state !== undefined) cfg.state = values.state;
  const level = values['log-level'];
  if (level !== undefined) {
    if (!(LOG_LEVELS as string[]).includes(level)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got '${level}'`);
    cfg.logLevel = level as Level;
  }
  cfg.defaultCpus = intFlag('default-cpus', values['default-cpus'], 1, 256) ?? cfg.defaultCpus;
  cfg.defaultMemoryMb = intFlag('default-memory-mb', values['default-memory-mb'], 64, 1024 * 1024) ?? cfg.defaultMemoryMb;
  cfg.maxMemoryMb = intFlag('max-memory-mb', values['max-memory-mb'], 0, 1024 * 1024) ?? cfg.maxMemoryMb;
  cfg.tcgCacheMb = intFlag('tcg-cache-mb', values['tcg-cache-mb'], MIN_TCG_CACHE_MIB, MAX_TCG_CACHE_MIB) ?? cfg.tcgCacheMb;
  cfg.vmPool = intFlag('vm-pool', values['vm-pool'], 0, MAX_VM_POOL) ?? cfg.vmPool;
  cfg.shutdownTimeoutMs = intFlag('shutdown-timeout-ms', values['shutdown-timeout-ms'], 0, 600_000) ?? cfg.shutdownTimeoutMs;
  if (values['stream-address'] !== undefined) cfg.streamAddress = values['stream-address'];
  cfg.streamIdleTimeoutMs = intFlag('stream-idle-timeout-ms', values['stream-idle-timeout-ms'], 1000, 7 * 24 * 3600 * 1000) ?? cfg.streamIdleTimeoutMs;
  if (values['insecure-registry']) cfg.image.insecureRegistries.push(...values['insecure-registry']);
  if (values['metrics-address'] !== undefined) cfg.metricsAddress = values['metrics-address'];
  if (values['os-runtime-endpoint'] !== undefined) cfg.osRuntime.endpoint = values['os-runtime-endpoint'];
  try {
    validateConfig(cfg);
  } catch (err) {
    // A bad flag is a wrong call (exit 2); a bad file stays a ConfigError (exit 1).
    if (err instanceof ConfigError && values.config === undefined) throw new UsageError(err.message);
    throw err;
  }
  let accel: AccelChoice;
  try {
    accel = parseAccelChoice(values.accel!);
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
  const cniBinDirs = values['cni-bin-dir']!.split(':').filter(Boolean);
  if (cniBinDirs.length === 0) throw new UsageError('--cni-bin-dir needs at least one directory');
  return { cfg, pod: { accel, cniConfDir: values['cni-conf-dir']!, cniBinDirs, defaultNetwork: !values['no-default-network'] } };
}

/** Resolves on the first SIGTERM or SIGINT; a second one exits at once. */
function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let seen = false;
    const on = (sig: NodeJS.Signals) => {
      if (seen) {
        log.warn('second signal: exiting without waiting', { signal: sig });
        process.exit(130);
      }
      seen = true;
      resolve(sig);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}

/** Waits for `p` at most timeoutMs: shutdown must end even if a store hangs. */
async function closeWithin(p: Promise<void>, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const r = await Promise.race([p.then(() => 'closed' as const), timedOut]);
  clearTimeout(timer);
  if (r === 'timeout') log.warn('the image store did not close in time; exiting anyway', { timeout_ms: timeoutMs });
}

export async function run(argv: string[]): Promise<number> {
  const resolved = await resolveConfig(argv);
  if (resolved === 'help') {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const { cfg, pod: podFlags } = resolved;
  setLogLevel(cfg.logLevel);
  // The single executable extracts api.proto, the guest and the relay under
  // ROOT/assets (atomic per file, so a second daemon on the same root is harmless).
  setAssetRoot(cfg.root);
  const signalled = waitForSignal();
  // The socket is claimed before anything touches --root or --state, so a
  // second daemon on the same socket stops here without disturbing the first.
  const images = imageStoreHolder(cfg);
  let pods: PodManager | undefined;
  let streaming: StreamingServer | undefined;
  let metricsServer: MetricsServer | undefined;
  const networkSource = { confDir: podFlags.cniConfDir, binDirs: podFlags.cniBinDirs, rootDir: cfg.root, fallbackToDefault: podFlags.defaultNetwork };
  const mixed: MixedDeps = {
    os: cfg.osRuntime.endpoint ? new OsRuntime(cfg.osRuntime.endpoint) : undefined,
    osHandlers: cfg.osRuntime.handlers,
    ownsPod: (id) => holds(() => pods?.resolvePodId(id)),
    ownsContainer: (id) => holds(() => pods?.resolveContainerId(id)),
  };
  const fraktiImages = imageHandlers(images.get);
  const server = await CriServer.listen({
    socketPath: cfg.listen,
    maxMessageBytes: cfg.maxMessageBytes,
    shutdownTimeoutMs: cfg.shutdownTimeoutMs,
    runtime: mixedRuntimeHandlers(runtimeHandlers({
      verboseInfo: () => {
        const pool = pods?.poolStatus();
        return { config: JSON.stringify(cfg), ...(pool ? { vm_pool: JSON.stringify(pool) } : {}) };
      },
      network: async () => {
        const n = await choosePodNetwork(networkSource);
        return { ready: n.ready, reason: n.reason, message: n.message };
      },
      pods: {
        pods: () => {
          if (!pods) throw new Error('the pod manager is not started');
          return pods;
        },
        sizing: { defaultCpus: cfg.defaultCpus, defaultMemoryMiB: cfg.defaultMemoryMb, guestOverheadMiB: GUEST_OVERHEAD_MIB, maxCpus: MAX_POD_CPUS, maxMemoryMiB: hostMemoryMiB() },
      },
      streaming: () => {
        if (!streaming) throw new Error('the streaming server is not started');
        return streaming;
      },
    }), mixed, fraktiImages),
    image: mixedImageHandlers(fraktiImages, mixed),
  });
  try {
    await mkdir(cfg.root, { recursive: true, mode: 0o700 });
    await mkdir(cfg.state, { recursive: true, mode: 0o700 });
    setSpawnerLock(join(cfg.state, 'spawner.lock'));
    await images.open();
    const guest = guestAssets();
    const accel = await chooseAccel(podFlags.accel, { kernel: guest.kernel, bareInitrd: guest.bareInitrd });
    if (accel.accel === 'tcg') log.warn(accel.reason);
    else log.info('accelerator', { accel: accel.accel, reason: accel.reason });
    pods = new PodManager(
      { rootDir: cfg.root, stateDir: cfg.state, guest, accel: accel.accel, tcgCacheMiB: cfg.tcgCacheMb, vmPool: cfg.vmPool, defaultCpus: cfg.defaultCpus, defaultMemoryMiB: cfg.defaultMemoryMb,
        // Room for in-place resizes: address space, and possible vCPUs, until used.
        maxMemoryMiB: cfg.maxMemoryMb || hostMemoryMiB(), maxCpus: Math.min(GROWABLE_POD_CPUS, availableParallelism()), vsock: await vsockUsable() },
      {
        images: images.get(),
        network: async () => {
          const n = await choosePodNetwork(networkSource);
          if (!n.network) throw new PodError('FAILED_PRECONDITION', `no pod network: ${n.message}`);
          return n.network;
        },
        launchVm: (spec, opts) => Vm.launch(spec, opts),
        attachVm: (dir) => Vm.attach(dir),
        waitForAgent: (endpoint, o) => waitForAgent(endpoint, o),
      },
    );
    await pods.start();
    const manager = pods;
    streaming = await StreamingServer.listen({ address: cfg.streamAddress, idleTimeoutMs: cfg.streamIdleTimeoutMs, backend: () => manager });
    if (cfg.metricsAddress) {
      collectProcessMetrics();
      registerPodGauges(metrics, () => manager);
      metricsServer = await serveMetrics(metrics, parseMetricsAddress(cfg.metricsAddress));
    }
    server.gate.setReady();
    log.info('frakti daemon ready', { version: FRAKTI_VERSION, socket: cfg.listen, root: cfg.root, state: cfg.state, streaming: streaming.baseUrl, metrics: metricsServer?.url, osRuntime: cfg.osRuntime.endpoint || 'none' });
    const sig = await signalled;
    log.info('stopping', { signal: sig });
  } finally {
    await server.stop();
    mixed.os?.close();
    await metricsServer?.stop();
    await streaming?.stop();
    // Pod VMs keep running: a restarted daemon re-attaches to them.
    await pods?.close();
    await closeWithin(images.close(), cfg.shutdownTimeoutMs);
  }
  log.info('stopped');
  return 0;
}
