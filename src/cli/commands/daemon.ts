// `frakti daemon`: serves the CRI API (runtime.v1) on a unix socket until
// SIGTERM or SIGINT, then stops accepting, lets in-flight calls finish
// within a bound and removes its socket.
import { mkdir } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { errorMessage } from '../../lib/errors.js';
import { logger, setLogLevel, type Level } from '../../lib/log.js';
import { FRAKTI_VERSION } from '../../lib/version.js';
import {
  CriServer,
  ConfigError,
  LOG_LEVELS,
  defaultConfig,
  loadConfigFile,
  runtimeHandlers,
  imageHandlers,
  imageStoreHolder,
  validateConfig,
  type DaemonConfig,
} from '../../cri/index.js';
import { UsageError } from '../cli-error.js';
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
  --insecure-registry HOST   talk plain HTTP to HOST[:PORT] (repeatable)
  --shutdown-timeout-ms N    bound on finishing calls at shutdown (default 10000)
  -h, --help`;

const log = logger('daemon');

function intFlag(name: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max) throw new UsageError(`--${name} must be an integer in ${min}..${max}, got '${v}'`);
  return n;
}

/** Defaults, then the config file, then the flags. */
export async function resolveConfig(argv: string[]): Promise<DaemonConfig | 'help'> {
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
        'insecure-registry': { type: 'string', multiple: true },
        'shutdown-timeout-ms': { type: 'string' },
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
  cfg.shutdownTimeoutMs = intFlag('shutdown-timeout-ms', values['shutdown-timeout-ms'], 0, 600_000) ?? cfg.shutdownTimeoutMs;
  if (values['insecure-registry']) cfg.image.insecureRegistries.push(...values['insecure-registry']);
  try {
    validateConfig(cfg);
  } catch (err) {
    // A bad flag is a wrong call (exit 2); a bad file stays a ConfigError (exit 1).
    if (err instanceof ConfigError && values.config === undefined) throw new UsageError(err.message);
    throw err;
  }
  return cfg;
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
  const cfg = await resolveConfig(argv);
  if (cfg === 'help') {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  setLogLevel(cfg.logLevel);
  const signalled = waitForSignal();
  // The socket is claimed before anything touches --root or --state, so a
  // second daemon on the same socket stops here without disturbing the first.
  const images = imageStoreHolder(cfg);
  const server = await CriServer.listen({
    socketPath: cfg.listen,
    maxMessageBytes: cfg.maxMessageBytes,
    shutdownTimeoutMs: cfg.shutdownTimeoutMs,
    runtime: runtimeHandlers({ verboseInfo: () => ({ config: JSON.stringify(cfg) }) }),
    image: imageHandlers(images.get),
  });
  try {
    await mkdir(cfg.root, { recursive: true, mode: 0o700 });
    await mkdir(cfg.state, { recursive: true, mode: 0o700 });
    await images.open();
    server.gate.setReady();
    log.info('frakti daemon ready', { version: FRAKTI_VERSION, socket: cfg.listen, root: cfg.root, state: cfg.state });
    const sig = await signalled;
    log.info('stopping', { signal: sig });
  } finally {
    await server.stop();
    await closeWithin(images.close(), cfg.shutdownTimeoutMs);
  }
  log.info('stopped');
  return 0;
}
