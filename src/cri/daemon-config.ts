// The daemon's configuration: built-in defaults, then an optional TOML file
// (laid out like containerd's config.toml), then command-line flags; the
// later wins. Every key of the file also has a flag or a default, so the
// daemon runs with no file at all. Unknown keys and wrong types are refused
// with the key named ("image.registry.mirrors.docker.io.endpoints: unknown key").
//
//   version = 1
//   root = "/var/lib/frakti"           # --root
//   state = "/run/frakti"              # --state
//   [grpc]
//   address = "/run/frakti/frakti.sock"  # --listen
//   max_message_bytes = 16777216
//   shutdown_timeout_ms = 10000        # --shutdown-timeout-ms
//   [debug]
//   level = "info"                     # --log-level
//   [stream]
//   address = "127.0.0.1:0"            # --stream-address (exec/attach/port-forward URLs; port 0: any free)
//   idle_timeout_ms = 14400000         # --stream-idle-timeout-ms
//   [metrics]
//   address = "127.0.0.1:9101"         # --metrics-address (Prometheus /metrics; off unless set; a bare port is loopback)
//   [pod]
//   default_cpus = 1                   # --default-cpus
//   default_memory_mb = 256            # --default-memory-mb
//   max_memory_mb = 0                  # --max-memory-mb (how far a pod VM's memory grows in place; 0: the host's)
//   tcg_cache_mb = 10                  # --tcg-cache-mb (only without KVM: memory per pod against speed)
//   vm_pool = 1                        # --vm-pool (pod VMs booted ahead; 0: none)
//   [image]
//   max_concurrent_downloads = 3
//   insecure_registries = ["registry.local:5000"]   # --insecure-registry (repeatable)
//   [image.registry.mirrors."docker.io"]
//   endpoint = ["https://mirror.example.com"]
import { readFile } from 'node:fs/promises';
import { DEFAULT_TCG_CACHE_MIB, MAX_TCG_CACHE_MIB, MIN_TCG_CACHE_MIB } from '../vmm/index.js';
import { DEFAULT_VM_POOL, MAX_VM_POOL } from '../pod/index.js';
import { DEFAULT_STREAM_ADDRESS, DEFAULT_STREAM_IDLE_TIMEOUT_MS, StreamAddressError, parseStreamAddress } from '../streaming/index.js';
import { isAbsolute } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { FraktiError, errorMessage } from '../lib/errors.js';
import type { Level } from '../lib/log.js';

export const CONFIG_VERSION = 1;
/** A config file is a few KiB; anything bigger is a mistake. */
const MAX_CONFIG_BYTES = 1024 * 1024;

export const LOG_LEVELS: readonly Level[] = ['error', 'warn', 'info', 'debug'];

export interface DaemonConfig {
  /** Persistent state (images, pod records). Default /var/lib/frakti. */
  root: string;
  /** Volatile state (VM sockets, pid files). Default /run/frakti. */
  state: string;
  /** CRI socket. Default /run/frakti/frakti.sock. */
  listen: string;
  /** Default info. */
  logLevel: Level;
  /** Largest CRI message in either direction. Default 16 MiB. */
  maxMessageBytes: number;
  /** Bound on finishing in-flight calls at shutdown. Default 10000. */
  shutdownTimeoutMs: number;
  /** IP:PORT of the streaming server (Exec, Attach, PortForward URLs). Default 127.0.0.1:0. */
  streamAddress: string;
  /** A streaming connection without traffic this long is closed. Default 4 h. */
  streamIdleTimeoutMs: number;
  /** HOST:PORT (or PORT: loopback) of the Prometheus endpoint; empty: none. Default empty. */
  metricsAddress: string;
  /** vCPUs of a pod VM when the pod gives no resources. Default 1. */
  defaultCpus: number;
  /** Memory of a pod VM when the pod gives no resources. Default 256. */
  defaultMemoryMb: number;
  /** How far a pod VM's memory can grow in an in-place resize; 0: the host's memory. Default 0. */
  maxMemoryMb: number;
  /** Under TCG, each pod VM's translation cache in MiB. Default 10. */
  tcgCacheMb: number;
  /** Pod VMs kept booted ahead at the default size, each for one pod. Default DEFAULT_VM_POOL. */
  vmPool: number;
  image: {
    /** Layer downloads at once per pull. Default 3. */
    maxConcurrentDownloads: number;
    /** Registries spoken to over plain HTTP (host[:port]). Default none (loopback is always allowed). */
    insecureRegistries: string[];
    /** Registry host -> mirror endpoints tried first, in order. Default none. */
    mirrors: Record<string, string[]>;
  };
  /** The OS-container runtime (containerd's CRI) for pods that need the host. */
  osRuntime: {
    /** unix:///PATH or /PATH of its CRI socket; empty: none. Default unix:///run/containerd/containerd.sock. */
    endpoint: string;
    /** RuntimeClass handlers sent to it. Default ["runc"]. */
    handlers: string[];
  };
}

export const DEFAULT_OS_RUNTIME_ENDPOINT = 'unix:///run/containerd/containerd.sock';

/** Where things live by default; the CLI owns these (src/cli/defaults.ts). */
export interface DefaultPaths {
  root: string;
  state: string;
  listen: string;
}

export function defaultConfig(paths: DefaultPaths): DaemonConfig {
  return {
    ...paths,
    logLevel: 'info',
    maxMessageBytes: 16 * 1024 * 1024,
    shutdownTimeoutMs: 10_000,
    streamAddress: DEFAULT_STREAM_ADDRESS,
    streamIdleTimeoutMs: DEFAULT_STREAM_IDLE_TIMEOUT_MS,
    metricsAddress: '',
    defaultCpus: 1,
    defaultMemoryMb: 256,
    maxMemoryMb: 0,
    tcgCacheMb: DEFAULT_TCG_CACHE_MIB,
    vmPool: DEFAULT_VM_POOL,
    image: { maxConcurrentDownloads: 3, insecureRegistries: [], mirrors: {} },
    osRuntime: { endpoint: DEFAULT_OS_RUNTIME_ENDPOINT, handlers: ['runc'] },
  };
}

export class ConfigError extends FraktiError {
  constructor(message: string, fields: Record<string, unknown> = {}) {
    super('CONFIG_INVALID', message, fields);
  }
}

// --- the file's schema --------------------------------------------------

type Spec =
  | { kind: 'path' }
  | { kind: 'string' }
  | { kind: 'int'; min: number; max: number }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'strings'; maxItems: number }
  | { kind: 'table'; fields: Record<string, Spec> }
  | { kind: 'map'; value: Spec; maxEntries: number };

const SCHEMA: Spec = {
  kind: 'table',
  fields: {
    version: { kind: 'int', min: CONFIG_VERSION, max: CONFIG_VERSION },
    root: { kind: 'path' },
    state: { kind: 'path' },
    grpc: {
      kind: 'table',
      fields: {
        address: { kind: 'path' },
        max_message_bytes: { kind: 'int', min: 64 * 1024, max: 1024 * 1024 * 1024 },
        shutdown_timeout_ms: { kind: 'int', min: 0, max: 600_000 },
      },
    },
    debug: { kind: 'table', fields: { level: { kind: 'enum', values: LOG_LEVELS } } },
    stream: {
      kind: 'table',
      fields: {
        address: { kind: 'string' },
        idle_timeout_ms: { kind: 'int', min: 1000, max: 7 * 24 * 3600 * 1000 },
      },
    },
    metrics: { kind: 'table', fields: { address: { kind: 'string' } } },
    pod: {
      kind: 'table',
      fields: {
        default_cpus: { kind: 'int', min: 1, max: 256 },
        default_memory_mb: { kind: 'int', min: 64, max: 1024 * 1024 },
        max_memory_mb: { kind: 'int', min: 0, max: 1024 * 1024 },
        tcg_cache_mb: { kind: 'int', min: MIN_TCG_CACHE_MIB, max: MAX_TCG_CACHE_MIB },
        vm_pool: { kind: 'int', min: 0, max: MAX_VM_POOL },
      },
    },
    os_runtime: {
      kind: 'table',
      fields: {
        endpoint: { kind: 'string' },
        handlers: { kind: 'strings', maxItems: 32 },
      },
    },
    image: {
      kind: 'table',
      fields: {
        max_concurrent_downloads: { kind: 'int', min: 1, max: 64 },
        insecure_registries: { kind: 'strings', maxItems: 256 },
        registry: {
          kind: 'table',
          fields: {
            mirrors: {
              kind: 'map',
              maxEntries: 256,
              value: { kind: 'table', fields: { endpoint: { kind: 'strings', maxItems: 32 } } },
            },
          },
        },
      },
    },
  },
};

function typeName(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  if (typeof v === 'object') return v instanceof Date ? 'a date' : 'a table';
  return `a ${typeof v}`;
}

function check(spec: Spec, v: unknown, key: string): void {
  const fail = (what: string) => {
    throw new ConfigError(`${key}: ${what}`, { key });
  };
  switch (spec.kind) {
    case 'path':
      if (typeof v !== 'string') fail(`expected a string path, got ${typeName(v)}`);
      if (!isAbsolute(v as string)) fail(`must be an absolute path, got '${v as string}'`);
      return;
    case 'string':
      if (typeof v !== 'string') fail(`expected a string, got ${typeName(v)}`);
      return;
    case 'int': {
      // smol-toml gives integers as numbers (or bigint past 2^53, which is out of range anyway).
      if (typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v))) {
        const n = Number(v);
        if (n < spec.min || n > spec.max) fail(`${String(v)} is out of range ${spec.min}..${spec.max}`);
        return;
      }
      return fail(`expected an integer, got ${typeName(v)}`);
    }
    case 'enum':
      if (typeof v !== 'string' || !spec.values.includes(v)) fail(`expected one of ${spec.values.join(', ')}, got ${JSON.stringify(v)}`);
      return;
    case 'strings':
      if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) fail(`expected an array of strings, got ${typeName(v)}`);
      if ((v as unknown[]).length > spec.maxItems) fail(`at most ${spec.maxItems} entries`);
      return;
    case 'table': {
      if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Date) return fail(`expected a table, got ${typeName(v)}`);
      for (const [k, sub] of Object.entries(v)) {
        const childKey = key ? `${key}.${k}` : k;
        const s = spec.fields[k];
        if (!s) throw new ConfigError(`${childKey}: unknown key`, { key: childKey });
        check(s, sub, childKey);
      }
      return;
    }
    case 'map': {
      if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Date) return fail(`expected a table, got ${typeName(v)}`);
      const entries = Object.entries(v);
      if (entries.length > spec.maxEntries) fail(`at most ${spec.maxEntries} entries`);
      for (const [k, sub] of entries) check(spec.value, sub, `${key}.${k}`);
      return;
    }
  }
}

/* eslint-disable @typescript-eslint/no-explicit-any */
/** Applies a parsed, validated TOML document over `base`. */
function applyFile(base: DaemonConfig, doc: any): DaemonConfig {
  const c = structuredClone(base);
  if (doc.root !== undefined) c.root = doc.root;
  if (doc.state !== undefined) c.state = doc.state;
  const g = doc.grpc ?? {};
  if (g.address !== undefined) c.listen = g.address;
  if (g.max_message_bytes !== undefined) c.maxMessageBytes = Number(g.max_message_bytes);
  if (g.shutdown_timeout_ms !== undefined) c.shutdownTimeoutMs = Number(g.shutdown_timeout_ms);
  if (doc.debug?.level !== undefined) c.logLevel = doc.debug.level;
  if (doc.stream?.address !== undefined) c.streamAddress = doc.stream.address;
  if (doc.stream?.idle_timeout_ms !== undefined) c.streamIdleTimeoutMs = Number(doc.stream.idle_timeout_ms);
  if (doc.metrics?.address !== undefined) c.metricsAddress = doc.metrics.address;
  const p = doc.pod ?? {};
  if (p.default_cpus !== undefined) c.defaultCpus = Number(p.default_cpus);
  if (p.default_memory_mb !== undefined) c.defaultMemoryMb = Number(p.default_memory_mb);
  if (p.max_memory_mb !== undefined) c.maxMemoryMb = Number(p.max_memory_mb);
  if (p.tcg_cache_mb !== undefined) c.tcgCacheMb = Number(p.tcg_cache_mb);
  if (p.vm_pool !== undefined) c.vmPool = Number(p.vm_pool);
  const i = doc.image ?? {};
  if (i.max_concurrent_downloads !== undefined) c.image.maxConcurrentDownloads = Number(i.max_concurrent_downloads);
  if (i.insecure_registries !== undefined) c.image.insecureRegistries = [...i.insecure_registries];
  for (const [host, m] of Object.entries<any>(i.registry?.mirrors ?? {})) c.image.mirrors[host] = [...(m.endpoint ?? [])];
  if (doc.os_runtime?.endpoint !== undefined) c.osRuntime.endpoint = doc.os_runtime.endpoint;
  if (doc.os_runtime?.handlers !== undefined) c.osRuntime.handlers = [...doc.os_runtime.handlers];
  return c;
}

/** Parses and validates the text of a config file; `source` names it in errors. */
export function parseConfigText(text: string, source: string, base: DaemonConfig): DaemonConfig {
  let doc: unknown;
  try {
    doc = parseToml(text);
  } catch (err) {
    const where = err instanceof TomlError ? ` (line ${err.line}, column ${err.column})` : '';
    throw new ConfigError(`${source}: not valid TOML${where}: ${errorMessage(err).split('\n')[0]}`, { source });
  }
  try {
    check(SCHEMA, doc, '');
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${source}: ${err.message}`, { source, ...err.fields });
    throw err;
  }
  return applyFile(base, doc);
}

export async function loadConfigFile(path: string, base: DaemonConfig): Promise<DaemonConfig> {
  let text: Buffer;
  try {
    text = await readFile(path);
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${errorMessage(err)}`, { path });
  }
  if (text.length > MAX_CONFIG_BYTES) throw new ConfigError(`${path}: larger than ${MAX_CONFIG_BYTES} bytes`, { path });
  return parseConfigText(text.toString('utf8'), path, base);
}

/** Cross-field checks that hold however the values were given. */
export function validateConfig(c: DaemonConfig): void {
  for (const [name, v] of [['root', c.root], ['state', c.state], ['listen', c.listen]] as const) {
    if (!isAbsolute(v)) throw new ConfigError(`${name} must be an absolute path, got '${v}'`, { key: name });
  }
  try {
    parseStreamAddress(c.streamAddress);
  } catch (err) {
    if (err instanceof StreamAddressError) throw new ConfigError(err.message, { key: 'stream.address' });
    throw err;
  }
  if (c.metricsAddress) {
    try {
      parseMetricsAddress(c.metricsAddress);
    } catch (err) {
      throw new ConfigError(errorMessage(err), { key: 'metrics.address' });
    }
  }
  if (c.osRuntime.endpoint) {
    try {
      osRuntimeSocketPath(c.osRuntime.endpoint);
    } catch (err) {
      throw new ConfigError(errorMessage(err), { key: 'os_runtime.endpoint' });
    }
  }
  for (const h of c.osRuntime.handlers) {
    if (!/^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/.test(h)) throw new ConfigError(`os_runtime.handlers: '${h}' is not a RuntimeClass handler name (a DNS label)`, { key: 'os_runtime.handlers' });
  }
  // A unix socket path longer than sun_path (108 bytes) cannot be bound.
  if (Buffer.byteLength(c.listen) > 107) throw new ConfigError(`listen socket path is longer than 107 bytes: ${c.listen}`, { key: 'listen' });
}

/** The socket path of an OS runtime endpoint: unix:///PATH or /PATH. */
export function osRuntimeSocketPath(endpoint: string): string {
  const path = endpoint.startsWith('unix://') ? endpoint.slice('unix://'.length) : endpoint;
  if (!isAbsolute(path) || Buffer.byteLength(path) > 107) throw new Error(`os runtime endpoint '${endpoint}' is not unix:///ABSOLUTE/PATH (at most 107 bytes)`);
  return path;
}

/**
 * The metrics endpoint's address: "HOST:PORT", "[V6]:PORT", or a bare
 * "PORT" / ":PORT", which means loopback (an operator who wants it on the
 * network says so). Port 0 takes any free port.
 */
export function parseMetricsAddress(addr: string): { host: string; port: number } {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):)?(\d{1,5})$/.exec(addr);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new Error(`metrics address '${addr}' is not HOST:PORT or PORT`);
  const host = (m[1] ?? '').replace(/^\[|\]$/g, '');
  return { host: host || '127.0.0.1', port };
}
