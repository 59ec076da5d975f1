// Unpacks one uncompressed layer tar into an empty directory, in the form
// overlayfs reads as a lower layer: `.wh.NAME` becomes a 0/0 character device
// NAME, `.wh..wh..opq` sets trusted.overlay.opaque=y on its directory.
//
// Names are taken as real tools write them ("/", "/etc/passwd", "./x",
// "a/../b") and resolved inside the directory (entry-path.ts). Nothing
// escapes it: a `..` that climbs out, a path through a symlink (written by an
// earlier entry), and hardlinks to outside or through symlinks are refused
// with UnsafeLayerEntryError naming the entry. Files are created with
// O_EXCL|O_NOFOLLOW after removing what was there, so a symlink in the final
// position is replaced, never followed. The tar may end right after its last
// entry's data, as `umoci insert` writes it (tar-end.ts).
import { constants as C } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, rm, symlink, utimes, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { FraktiError } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { MAX_PATH_BYTES, entryComponents } from './entry-path.js';
import { ContentInvalidError, UnsafeLayerEntryError } from './errors.js';
import { LayerSyncer } from './layer-sync.js';
import { mknod, setXattrs, type NodeKind, type XattrOp } from './special-files.js';
import { completeTarEnd } from './tar-end.js';
import { patchTarStreamPax, paxXattrs } from './tar-pax.js';

patchTarStreamPax();
const log = logger('unpack');

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE = '.wh..wh..opq';
/** Bounds on one layer: entries, the unpacked bytes (a path and a symlink target: MAX_PATH_BYTES). */
export const MAX_LAYER_ENTRIES = 1_000_000;
export const DEFAULT_MAX_UNPACKED_BYTES = 64 * 1024 ** 3;

/** Xattrs a layer may carry. trusted.* (overlayfs's own, e.g. a forged opaque or redirect) and other security.* are dropped. */
function xattrAllowed(name: string): boolean {
  return name.startsWith('user.') || name === 'security.capability';
}

export interface UnpackOptions {
  /** Unpack as root: ownership, device nodes. Default: process.geteuid() === 0. */
  asRoot?: boolean;
  maxUnpackedBytes?: number;
  /** A directory outside destDir for scratch files. */
  scratchDir: string;
  /** Make the layer durable (every file, then every directory fsynced: layer-sync.ts) before returning. Default true. */
  sync?: boolean;
}

export interface UnpackStats {
  entries: number;
  bytes: number;
  whiteouts: number;
}

interface Deferred {
  kind: 'node';
  node: NodeKind;
  major: number;
  minor: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
}

/**
 * tar-stream's own errors (a bad header, a short stream) are plain Errors
 * without a code, unlike those of the network, zlib or the file system: they
 * mean the layer is not a valid tar.
 */
function tarError(err: unknown): unknown {
  const plain = err instanceof Error && err.constructor === Error && !(err instanceof FraktiError) && (err as NodeJS.ErrnoException).code === undefined;
  return plain ? new ContentInvalidError(`layer is not a valid tar archive: ${err.message}`) : err;
}

export async function unpackLayer(input: Readable, destDir: string, opts: UnpackOptions): Promise<UnpackStats> {
  const asRoot = opts.asRoot ?? process.geteuid?.() === 0;
  const maxBytes = opts.maxUnpackedBytes ?? DEFAULT_MAX_UNPACKED_BYTES;
  const stats: UnpackStats = { entries: 0, bytes: 0, whiteouts: 0 };
  /** Relative paths known to be real directories (not symlinks) in destDir. */
  const dirs = new Set<string>(['']);
  const dirTimes = new Map<string, Date>();
  const nodes = new Map<string, Deferred>();
  const xattrs = new Map<string, XattrOp[]>();
  const syncer = (opts.sync ?? true) ? new LayerSyncer() : undefined;

  const forget = (rel: string) => {
    const prefix = rel + '/';
    for (const set of [dirs, dirTimes, nodes, xattrs] as (Set<string> | Map<string, unknown>)[]) {
      for (const k of set.keys()) if (k === rel || k.startsWith(prefix)) set.delete(k);
    }
  };

  /** Makes sure every parent of `parts` is a real directory, creating missing ones. */
  const ensureParents = async (entry: string, parts: string[]) => {
    let rel = '';
    for (let i = 0; i < parts.length - 1; i++) {
      rel = rel ? `${rel}/${parts[i]}` : parts[i]!;
      if (dirs.has(rel)) continue;
      const st = await lstat(join(destDir, rel)).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)));
      if (!st) {
        await mkdir(join(destDir, rel), { mode: 0o755 });
      } else if (st.isSymbolicLink()) {
        throw new UnsafeLayerEntryError(entry, `its path goes through the symlink '${rel}'`);
      } else if (!st.isDirectory()) {
        throw new UnsafeLayerEntryError(entry, `its parent '${rel}' is not a directory`);
      }
      dirs.add(rel);
      nodes.delete(rel);
    }
  };

  /** Removes whatever is at rel (unless it is a directory and keepDir). */
  const clear = async (rel: string, keepDir: boolean) => {
    const st = await lstat(join(destDir, rel)).catch(() => undefined);
    if (!st) return;
    if (keepDir && st.isDirectory()) return;
    await rm(join(destDir, rel), { recursive: true, force: true });
    forget(rel);
  };

  const setMeta = async (abs: string, h: tar.Header, symlinkEntry: boolean) => {
    if (asRoot) await lchown(abs, h.uid ?? 0, h.gid ?? 0);
    // chown clears set-id bits, so the mode comes after it. Symlinks have no mode of their own.
    if (!symlinkEntry) await chmod(abs, (h.mode ?? 0o644) & 0o7777);
    const mtime = h.mtime ?? new Date(0);
    if (symlinkEntry) await lutimes(abs, mtime, mtime);
    else await utimes(abs, mtime, mtime);
  };

  const extract = tar.extract();
  const handle = async (h: tar.Header, body: Readable): Promise<void> => {
    if (++stats.entries > MAX_LAYER_ENTRIES) throw new UnsafeLayerEntryError(h.name, `layer has more than ${MAX_LAYER_ENTRIES} entries`);
    const parts = entryComponents(h.name);
    if (parts.length === 0) return; // "/", "./": the layer root keeps our mode, as containerd skips an entry that resolves to the root.
    const base = parts[parts.length - 1]!;
    const rel = parts.join('/');
    const xa = [...paxXattrs(h.pax as Record<string, string> | undefined)].filter(([n]) => xattrAllowed(n));

    if (base === OPAQUE) {
      await ensureParents(h.name, parts);
      const dir = parts.slice(0, -1).join('/');
      if (dir === '') return; // an opaque root means nothing for a lower layer
      xattrs.set(dir, [...(xattrs.get(dir) ?? []).filter((o) => o.name !== 'trusted.overlay.opaque'), { path: dir, name: 'trusted.overlay.opaque', value: Buffer.from('y') }]);
      return;
    }
    if (base.startsWith(WHITEOUT_PREFIX)) {
      if (base.startsWith(WHITEOUT_PREFIX + WHITEOUT_PREFIX)) return; // aufs internals (.wh..wh.plnk etc.)
      const victim = base.slice(WHITEOUT_PREFIX.length);
      if (victim === '' || victim === '.' || victim === '..') throw new UnsafeLayerEntryError(h.name, 'whiteout of nothing');
      await ensureParents(h.name, parts);
      const target = [...parts.slice(0, -1), victim].join('/');
      await clear(target, false);
      nodes.set(target, { kind: 'node', node: 'char', major: 0, minor: 0, mode: 0, uid: 0, gid: 0, mtime: h.mtime ?? new Date(0) });
      stats.whiteouts++;
      return;
    }

    await ensureParents(h.name, parts);
    const abs = join(destDir, rel);
    switch (h.type) {
      case 'directory': {
        await clear(rel, true);
        await mkdir(abs, { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => (e.code === 'EEXIST' ? undefined : Promise.reject(e)));
        dirs.add(rel);
        if (asRoot) await lchown(abs, h.uid ?? 0, h.gid ?? 0);
        await chmod(abs, (h.mode ?? 0o755) & 0o7777);
        dirTimes.set(rel, h.mtime ?? new Date(0));
        break;
      }
      case 'file':
      case 'contiguous-file': {
        await clear(rel, false);
        const size = h.size ?? 0;
        if (stats.bytes + size > maxBytes) throw new UnsafeLayerEntryError(h.name, `layer unpacks to more than ${maxBytes} bytes`);
        stats.bytes += size;
        const fh = await open(abs, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
        try {
          await writeAll(fh, body);
          await setMeta(abs, h, false);
        } catch (err) {
          await fh.close();
          throw err;
        }
        if (syncer) await syncer.add(fh);
        else await fh.close();
        break;
      }
      case 'symlink': {
        const target = h.linkname ?? '';
        if (target === '' || target.includes('\0') || Buffer.byteLength(target) > MAX_PATH_BYTES) throw new UnsafeLayerEntryError(h.name, 'symlink target is empty or invalid');
        await clear(rel, false);
        // A symlink may point anywhere: it is only ever resolved inside the container.
        await symlink(target, abs);
        await setMeta(abs, h, true);
        break;
      }
      case 'link': {
        const tparts = entryComponents(h.linkname ?? '', 'hardlink target', h.name);
        if (tparts.length === 0) throw new UnsafeLayerEntryError(h.name, 'hardlink to the layer root');
        const trel = tparts.join('/');
        let prefix = '';
        for (const p of tparts.slice(0, -1)) {
          prefix = prefix ? `${prefix}/${p}` : p;
          if (!dirs.has(prefix)) throw new UnsafeLayerEntryError(h.name, `hardlink target '${h.linkname}' is not inside a directory of this layer`);
        }
        const tst = await lstat(join(destDir, trel)).catch(() => undefined);
        if (!tst) throw new UnsafeLayerEntryError(h.name, `hardlink target '${h.linkname}' is not in this layer`);
        if (tst.isDirectory()) throw new UnsafeLayerEntryError(h.name, `hardlink target '${h.linkname}' is a directory`);
        if (trel === rel) break;
        await clear(rel, false);
        await link(join(destDir, trel), abs);
        break;
      }
      case 'character-device':
      case 'block-device':
      case 'fifo': {
        await clear(rel, false);
        const node: NodeKind = h.type === 'fifo' ? 'fifo' : h.type === 'character-device' ? 'char' : 'block';
        nodes.set(rel, { kind: 'node', node, major: h.devmajor ?? 0, minor: h.devminor ?? 0, mode: (h.mode ?? 0o644) & 0o7777, uid: h.uid ?? 0, gid: h.gid ?? 0, mtime: h.mtime ?? new Date(0) });
        break;
      }
      default:
        throw new UnsafeLayerEntryError(h.name, `unsupported entry type ${String(h.type)}`);
    }
    if (xa.length) xattrs.set(rel, xa.map(([name, value]) => ({ path: rel, name, value })));
  };

  /** The entry being handled, and the first error an entry failed with. */
  let current: Promise<void> = Promise.resolve();
  let entryErr: unknown;
  extract.on('entry', (h, body, next) => {
    // A cancelled pull destroys the extract while an entry is being handled;
    // its body then errors with nobody reading it. The pipeline reports the
    // failure; this listener only keeps that error from crashing the process.
    body.on('error', () => {});
    current = handle(h, body as unknown as Readable).then(
      () => {
        body.resume();
        next();
      },
      (err) => {
        entryErr ??= err;
        body.resume();
        next(err);
      },
    );
  });
  try {
    await pipeline(input, completeTarEnd(), extract as unknown as NodeJS.WritableStream);
    await applyDeferred(destDir, { asRoot, nodes, xattrs, dirTimes, scratchDir: opts.scratchDir });
    await syncer?.finish(destDir, dirs);
  } catch (err) {
    // Nothing is still writing, and no file handle is open, once a failed unpack returns (the caller removes the directory).
    await current;
    await syncer?.drain().catch(() => {});
    // An entry's own failure (a full disk) is the cause: the pipeline may have seen only the extract closing early.
    throw tarError(entryErr ?? err);
  }
  return stats;
}

/** Writes every byte of body at the start of fh. */
async function writeAll(fh: FileHandle, body: Readable): Promise<void> {
  for await (const chunk of body as AsyncIterable<Buffer>) {
    for (let off = 0; off < chunk.length; ) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
  }
}

interface DeferredWork {
  asRoot: boolean;
  nodes: Map<string, Deferred>;
  xattrs: Map<string, XattrOp[]>;
  dirTimes: Map<string, Date>;
  scratchDir: string;
}

/** What waits for the whole tar, in an order that keeps what is set: nodes, then xattrs, then directory times. */
async function applyDeferred(destDir: string, w: DeferredWork): Promise<void> {
  const { asRoot, nodes, xattrs, dirTimes } = w;
  for (const [rel, n] of nodes) {
    if (n.node !== 'fifo' && !(n.major === 0 && n.minor === 0) && !asRoot) {
      log.warn('skipping device node (not root)', { path: rel });
      continue;
    }
    await mknod(destDir, rel, n.node, n.major, n.minor);
    const abs = join(destDir, rel);
    if (asRoot) await lchown(abs, n.uid, n.gid);
    if (n.mode) await chmod(abs, n.mode);
    await utimes(abs, n.mtime, n.mtime);
  }
  const ops = [...xattrs.values()].flat();
  if (ops.length && !asRoot && ops.some((o) => o.name.startsWith('trusted.') || o.name.startsWith('security.'))) {
    log.warn('unpacking as non-root: trusted/security xattrs (opaque directories) are skipped');
  }
  await setXattrs(destDir, asRoot ? ops : ops.filter((o) => o.name.startsWith('user.')), w.scratchDir);
  // Deepest first, so setting a child's time does not disturb its parent's.
  for (const rel of [...dirTimes.keys()].sort((a, b) => b.length - a.length)) {
    const t = dirTimes.get(rel)!;
    await utimes(join(destDir, rel), t, t);
  }
}
