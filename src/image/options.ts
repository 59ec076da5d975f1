// Options of an ImageStore: a typed interface whose comments state the
// defaults, and a validator that rejects unknown keys and wrong types.
import { isAbsolute } from 'node:path';
import { ImageOptionsError } from './errors.js';

export const DEFAULT_IMAGE_ROOT = '/var/lib/frakti/image';

export interface ImageStoreOptions {
  /** Directory of blobs, snapshots and metadata. Default /var/lib/frakti/image. */
  root?: string;
  /** Layer downloads at once per pull. Default 3, range 1..64. */
  maxConcurrentDownloads?: number;
  /** Registries spoken to over plain HTTP ("host" or "host:port"). Loopback (127.0.0.0/8, localhost, ::1) always is. Default none. */
  insecureRegistries?: string[];
  /** Registry host ("docker.io", "registry.local:5000") -> mirror endpoints (URLs) tried first, in order. Default none. */
  mirrors?: Record<string, string[]>;
  /** Extra attempts of a request after a transient failure (network, 5xx, 429). Default 3, range 0..10. */
  maxRetries?: number;
  /** First backoff delay; doubles each attempt, with jitter. Default 250 ms. */
  retryBaseDelayMs?: number;
  /** Bound on a request without progress (connect, headers, or a stalled body). Default 30000 ms. */
  requestTimeoutMs?: number;
  /** Platform picked from multi-platform images, "os/arch[/variant]". Default the host's (linux/amd64 here). */
  platform?: string;
  /** References kept pinned (never garbage-collected), e.g. the pause image. Default none. */
  pinnedImages?: string[];
  /**
   * fsync every unpacked file and directory before a layer is committed, so
   * a power loss right after a pull loses nothing of it. Default true; false
   * only for a store that does not outlive a reboot (a tmpfs).
   */
  syncLayers?: boolean;
}

/** Options with every default filled in. */
export type ResolvedImageStoreOptions = Required<ImageStoreOptions>;

const NODE_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

export function hostPlatform(): string {
  return `linux/${NODE_ARCH[process.arch] ?? process.arch}`;
}

const KEYS = new Set([
  'root',
  'maxConcurrentDownloads',
  'insecureRegistries',
  'mirrors',
  'maxRetries',
  'retryBaseDelayMs',
  'requestTimeoutMs',
  'platform',
  'pinnedImages',
  'syncLayers',
]);

function int(o: Record<string, unknown>, key: string, def: number, min: number, max: number): number {
  const v = o[key];
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ImageOptionsError(`image option ${key}: expected an integer in ${min}..${max}, got ${JSON.stringify(v)}`, key);
  }
  return v;
}

function strings(o: Record<string, unknown>, key: string, maxItems: number): string[] {
  const v = o[key];
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string' || s === '') || v.length > maxItems) {
    throw new ImageOptionsError(`image option ${key}: expected at most ${maxItems} non-empty strings`, key);
  }
  return [...(v as string[])];
}

/** Validates options (unknown keys and wrong types are refused, naming the key) and fills in defaults. */
export function resolveImageStoreOptions(input: ImageStoreOptions = {}): ResolvedImageStoreOptions {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new ImageOptionsError('image options: expected an object');
  const o = input as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KEYS.has(k)) throw new ImageOptionsError(`image option ${k}: unknown key`, k);
  const root = o.root === undefined ? DEFAULT_IMAGE_ROOT : o.root;
  if (typeof root !== 'string' || !isAbsolute(root)) throw new ImageOptionsError(`image option root: expected an absolute path, got ${JSON.stringify(root)}`, 'root');
  const mirrors: Record<string, string[]> = {};
  if (o.mirrors !== undefined) {
    if (typeof o.mirrors !== 'object' || o.mirrors === null || Array.isArray(o.mirrors)) throw new ImageOptionsError('image option mirrors: expected an object', 'mirrors');
    for (const [host, eps] of Object.entries(o.mirrors as Record<string, unknown>)) {
      if (!Array.isArray(eps) || eps.length > 32) throw new ImageOptionsError(`image option mirrors.${host}: expected at most 32 endpoint URLs`, `mirrors.${host}`);
      mirrors[host] = eps.map((e) => {
        let url: URL;
        try {
          url = new URL(String(e));
        } catch {
          throw new ImageOptionsError(`image option mirrors.${host}: '${String(e)}' is not a URL`, `mirrors.${host}`);
        }
        if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ImageOptionsError(`image option mirrors.${host}: '${String(e)}' is not http(s)`, `mirrors.${host}`);
        return url.origin + url.pathname.replace(/\/+$/, '');
      });
    }
  }
  const platform = o.platform === undefined ? hostPlatform() : o.platform;
  if (typeof platform !== 'string' || !/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/.test(platform)) {
    throw new ImageOptionsError(`image option platform: expected "os/arch[/variant]", got ${JSON.stringify(platform)}`, 'platform');
  }
  if (o.syncLayers !== undefined && typeof o.syncLayers !== 'boolean') throw new ImageOptionsError(`image option syncLayers: expected true or false, got ${JSON.stringify(o.syncLayers)}`, 'syncLayers');
  return {
    root,
    maxConcurrentDownloads: int(o, 'maxConcurrentDownloads', 3, 1, 64),
    insecureRegistries: strings(o, 'insecureRegistries', 256),
    mirrors,
    maxRetries: int(o, 'maxRetries', 3, 0, 10),
    retryBaseDelayMs: int(o, 'retryBaseDelayMs', 250, 0, 60_000),
    requestTimeoutMs: int(o, 'requestTimeoutMs', 30_000, 100, 3_600_000),
    platform,
    pinnedImages: strings(o, 'pinnedImages', 256),
    syncLayers: o.syncLayers ?? true,
  };
}
