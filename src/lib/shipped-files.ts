// Every file frakti ships beside its JavaScript, and the one place that finds
// them: the two .proto files, the guest kernel with its build facts, the
// initrds and the vsock relay. Two sources, one table:
// - a checkout: the file in the source or build tree (this module runs from
//   dist/src/lib/, so the tree is three levels up);
// - the single executable of `make release` (a Node SEA): an asset inside the
//   executable, written out on first use to ROOT/assets/<set hash>/NAME, since
//   protobuf loaders, QEMU and virtiofsd want real paths. The folder is 0700
//   and owned by us; each file is written to a temporary name, checked
//   against its SHA-256 and renamed into place, so concurrent frakti
//   processes never see a partial file. A file already there is hashed
//   before it is used (once per process): a tampered or partial one is
//   rewritten.
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, unlinkSync, writeSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliDecompressSync } from 'node:zlib';
import * as sea from 'node:sea';
import { FraktiError, errorMessage } from './errors.js';

/** Asset name -> where the file is in a checkout, and the mode it is extracted with. */
export const SHIPPED_FILES = {
  'api.proto': { checkout: 'src/cri/api.proto', mode: 0o600 },
  'agent.proto': { checkout: 'src/agent-protocol/agent.proto', mode: 0o600 },
  // The guest files keep their build/guest names: a folder holding them is a guest dir.
  vmlinux: { checkout: 'build/guest/vmlinux', mode: 0o600 },
  'initrd.img': { checkout: 'build/guest/initrd.img', mode: 0o600 },
  'bare-initrd.img': { checkout: 'build/guest/bare-initrd.img', mode: 0o600 },
  release: { checkout: 'build/guest/release', mode: 0o600 },
  'source-version': { checkout: 'build/guest/source-version', mode: 0o600 },
  'config-hash': { checkout: 'build/guest/config-hash', mode: 0o600 },
  'frakti-vsock-relay': { checkout: 'build/bin/frakti-vsock-relay', mode: 0o700 },
  'frakti-spawner': { checkout: 'build/bin/frakti-spawner', mode: 0o700 },
} as const;

export type ShippedName = keyof typeof SHIPPED_FILES;
export const SHIPPED_NAMES = Object.keys(SHIPPED_FILES).sort() as ShippedName[];

/** The SEA asset describing the others; written by scripts/build-release.mjs. */
export const MANIFEST_ASSET = 'manifest.json';

export interface AssetManifest {
  /** SHA-256 (hex) over the names and hashes of every file: names the extraction folder. */
  hash: string;
  /** Hash and size of each file as extracted; `stored` says how the asset holds it. */
  files: Record<string, { sha256: string; size: number; stored?: AssetEncoding }>;
}

/** 'br': brotli (the uncompressed PVH kernel shrinks from ~15 MiB to ~2 MiB). */
export type AssetEncoding = 'raw' | 'br';

/** Decodes an asset as stored in the executable. */
export function decodeAsset(data: Uint8Array, stored: AssetEncoding = 'raw'): Uint8Array {
  return stored === 'br' ? brotliDecompressSync(data) : data;
}

export class ShippedFileError extends FraktiError {
  constructor(message: string, fields: Record<string, unknown> = {}, cause?: unknown) {
    super('SHIPPED_FILE', message, fields, { cause });
  }
}

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** The manifest of a set of files; `read` gives each file's bytes. */
export function buildManifest(read: (name: ShippedName) => Uint8Array): AssetManifest {
  const files: AssetManifest['files'] = {};
  for (const name of SHIPPED_NAMES) {
    const data = read(name);
    files[name] = { sha256: sha256(data), size: data.byteLength };
  }
  const hash = createHash('sha256');
  for (const name of SHIPPED_NAMES) hash.update(`${files[name]!.sha256}  ${name}\n`);
  return { hash: hash.digest('hex'), files };
}

// --- where we run from ----------------------------------------------------

/** True inside the single executable built by `make release`. */
export function isSingleExecutable(): boolean {
  return sea.isSea();
}

/** The checkout's top directory (dist/src/lib -> ../../../). */
export function checkoutDir(): string {
  return fileURLToPath(new URL('../../../', import.meta.url));
}

/** A shipped file's path in the checkout. */
export function checkoutPath(name: ShippedName): string {
  return join(checkoutDir(), SHIPPED_FILES[name].checkout);
}

let assetRoot: string | undefined;
let manifestCache: AssetManifest | undefined;
const verified = new Map<ShippedName, string>();

/**
 * Where the executable writes its assets: ROOT/assets/<hash>/. Each command
 * that needs a shipped file calls this with its --root before the first
 * lookup; a checkout ignores it.
 */
export function setAssetRoot(rootDir: string): void {
  if (assetRoot !== rootDir) verified.clear();
  assetRoot = rootDir;
}

function manifest(): AssetManifest {
  manifestCache ??= JSON.parse(sea.getAsset(MANIFEST_ASSET, 'utf8')) as AssetManifest;
  return manifestCache;
}

/** The asset folder of this executable under `rootDir`. */
export function assetDir(rootDir: string, hash: string): string {
  return join(rootDir, 'assets', hash);
}

/** A real path to a shipped file: the checkout's, or the verified extracted copy. */
export function shippedFile(name: ShippedName): string {
  if (!isSingleExecutable()) return checkoutPath(name);
  const known = verified.get(name);
  if (known) return known;
  if (!assetRoot) throw new ShippedFileError(`internal: ${name} looked up before the root directory was set`, { name });
  const m = manifest();
  const expected = m.files[name];
  if (!expected) throw new ShippedFileError(`${name} is not in this executable's assets`, { name });
  const { sha256: hash, size, stored } = expected;
  const path = ensureAsset(assetDir(assetRoot, m.hash), name, { sha256: hash, size, mode: SHIPPED_FILES[name].mode }, () => readAsset(name, stored));
  verified.set(name, path);
  return path;
}

/** A small shipped file's text, read without extracting anything (for --version). */
export function shippedText(name: ShippedName): string {
  if (!isSingleExecutable()) return readFileSync(checkoutPath(name), 'utf8');
  return Buffer.from(readAsset(name, manifest().files[name]?.stored)).toString('utf8');
}

function readAsset(name: ShippedName, stored: AssetEncoding | undefined): Uint8Array {
  // getRawAsset: a view of the executable's memory, no copy.
  return decodeAsset(new Uint8Array(sea.getRawAsset(name) as ArrayBuffer), stored);
}

/** The asset set's hash: the executable's, or what `make release` would embed from this checkout. */
export function shippedHash(): string {
  return isSingleExecutable() ? manifest().hash : buildManifest((name) => readFileSync(checkoutPath(name))).hash;
}

// --- extraction -----------------------------------------------------------

export interface ExpectedFile {
  sha256: string;
  size: number;
  mode: number;
}

const TEMP_MARK = '.tmp-';

/**
 * Makes `dir/name` hold exactly the expected bytes: an existing regular file
 * with the right size, hash and mode is kept; anything else is replaced by
 * `content()` written to a temporary file, fsynced, checked and renamed.
 * Safe against other processes doing the same at the same time. Returns the path.
 */
export function ensureAsset(dir: string, name: string, expected: ExpectedFile, content: () => Uint8Array): string {
  ensurePrivateDir(dir);
  const path = join(dir, name);
  if (matches(path, expected)) return path;
  const tmp = `${path}${TEMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const data = content();
    const fd = openSync(tmp, 'wx', expected.mode);
    try {
      for (let off = 0; off < data.byteLength; ) off += writeSync(fd, data, off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    // What reached the disk, not what we meant to write, is checked.
    if (!matches(tmp, expected)) throw new ShippedFileError(`${tmp}: written content does not match its SHA-256 ${expected.sha256}`, { path: tmp });
    renameSync(tmp, path);
    syncDir(dir);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      /* never created, or renamed */
    }
    if (err instanceof ShippedFileError) throw err;
    throw new ShippedFileError(`cannot write ${path}: ${errorMessage(err)}`, { path }, err);
  }
  return path;
}

function matches(path: string, expected: ExpectedFile): boolean {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return false;
  }
  if (!st.isFile() || st.size !== expected.size || st.uid !== process.geteuid?.()) return false;
  if (sha256(readFileSync(path)) !== expected.sha256) return false;
  // Right bytes, wrong mode: only the mode needs fixing.
  if ((st.mode & 0o7777) !== expected.mode) chmodSync(path, expected.mode);
  return true;
}

/** Creates `dir` (and its parent, the assets folder) as 0700 folders of ours; refuses one owned by someone else. */
function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const d of [join(dir, '..'), dir]) {
    const st = lstatSync(d);
    if (!st.isDirectory()) throw new ShippedFileError(`${d} is not a directory`, { path: d });
    if (st.uid !== process.geteuid?.()) throw new ShippedFileError(`${d} is owned by uid ${st.uid}, not by us: refusing to use it for frakti's assets`, { path: d });
    if ((st.mode & 0o7777) !== 0o700) chmodSync(d, 0o700);
  }
  removeDeadTemps(dir);
}

/** Temporary files left by an extraction that crashed (its pid is gone). */
function removeDeadTemps(dir: string): void {
  for (const entry of readdirSync(dir)) {
    const m = /\.tmp-(\d+)-[0-9a-f]+$/.exec(entry);
    if (!m || pidAlive(Number(m[1]))) continue;
    try {
      unlinkSync(join(dir, entry));
    } catch {
      /* another process removed it first */
    }
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
