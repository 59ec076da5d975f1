// ImageStore: the one object the rest of frakti uses for images. It ties the
// content store (blobs), the snapshot store (unpacked layers), the image index
// (metadata) and the registry client together, and owns the locks: pulls
// share a read lock that garbage collection takes for writing, so GC never
// removes what a pull in flight is about to refer to.
//
// On disk, under options.root:
//   blobs/sha256/<hex>    manifests, configs, compressed layers
//   snapshots/<hex>/      one unpacked layer per diff id (overlayfs lower dir)
//   images.json           every image record, replaced atomically
//   ingest/, snapshots/.tmp-*   work in progress; leftovers of dead writers are removed on open
import { mkdir, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { ContentStore } from './content-store.js';
import { Mutex, RwLock, SharedFlight, SingleFlight } from './concurrency.js';
import { ImageInUseError, ImageNotFoundError, ImageStoreClosedError, ImageStoreExhaustedError, PullAbortedError, exhaustedOr } from './errors.js';
import { ImageIndex } from './image-index.js';
import { userOf, type ImageConfigBlob } from './manifest.js';
import { resolveImageStoreOptions, type ImageStoreOptions, type ResolvedImageStoreOptions } from './options.js';
import { pullImage, type PulledImage } from './pull.js';
import { formatReference, parseReference, repoName, tryParseReference, type ImageReference } from './reference.js';
import { SnapshotStore } from './snapshot-store.js';
import type { GcResult, ImageFilter, ImageFsInfo, ImageRecord, PullOptions } from './types.js';
import { dirUsage } from '../lib/dir-usage.js';

const log = logger('image');
/** kubelet asks for ImageFsInfo every few seconds; walking the tree that often is waste. */
export const FS_INFO_CACHE_MS = 5_000;
const MAX_HOLDERS_PER_IMAGE = 100_000;

/** Entries an ImageFsInfo walk reads at most (a store of that many files is counted in part). */
const MAX_FS_INFO_ENTRIES = 20_000_000;

export class ImageStore {
  readonly options: ResolvedImageStoreOptions;
  private readonly content: ContentStore;
  private readonly snapshots: SnapshotStore;
  private readonly index: ImageIndex;
  private readonly gcLock = new RwLock();
  private readonly pullFlight = new SharedFlight<ImageRecord>();
  private readonly layerFlight = new SingleFlight<void>();
  private readonly fsInfoMutex = new Mutex();
  private fsInfoCache: { at: number; info: ImageFsInfo } | undefined;
  private closed = false;

  private constructor(options: ResolvedImageStoreOptions) {
    this.options = options;
    this.content = new ContentStore(options.root);
    this.snapshots = new SnapshotStore(options.root, { durable: options.syncLayers });
    this.index = new ImageIndex(options.root);
  }

  /**
   * Opens (creating if needed) the store under options.root. Leftovers of a
   * process that died mid-pull (temp downloads, half-unpacked layers) are removed.
   */
  static async open(options: ImageStoreOptions = {}): Promise<ImageStore> {
    const store = new ImageStore(resolveImageStoreOptions(options));
    await mkdir(store.options.root, { recursive: true, mode: 0o711 });
    await store.content.init();
    await store.snapshots.init();
    await store.index.load();
    return store;
  }

  private check(): void {
    if (this.closed) throw new ImageStoreClosedError();
  }

  private isPinnedByOption(r: Pick<ImageRecord, 'repoTags' | 'repoDigests'>): boolean {
    return this.options.pinnedImages.some((p) => {
      const ref = tryParseReference(p);
      if (!ref) return false;
      const s = formatReference(ref);
      return r.repoTags.includes(s) || r.repoDigests.includes(s);
    });
  }

  /**
   * Pulls `ref` (normalised: "busybox" is docker.io/library/busybox:latest),
   * picks the store's platform from a multi-platform index, downloads and
   * verifies every blob, unpacks each layer, and records the image. Pulls of
   * the same reference at the same time share one download. Returns the record;
   * if the image was already complete, only the tag is (re)pointed.
   */
  async pull(refInput: string, opts: PullOptions = {}): Promise<ImageRecord> {
    this.check();
    const ref = parseReference(refInput);
    const key = formatReference(ref);
    return this.pullFlight.run(key, (shared) => this.pullShared(ref, opts, shared), opts.signal).catch((err) => {
      if (opts.signal?.aborted) throw new PullAbortedError(key);
      throw err;
    });
  }

  /** The one pull that every caller of `ref` at this time shares; `shared` is aborted once they all left. */
  private async pullShared(ref: ImageReference, opts: PullOptions, shared: AbortSignal): Promise<ImageRecord> {
    const key = formatReference(ref);
    try {
      return await this.gcLock.read(async () => {
        const pulled = await pullImage(
          {
            content: this.content,
            snapshots: this.snapshots,
            registry: this.options,
            platform: this.options.platform,
            maxConcurrentDownloads: this.options.maxConcurrentDownloads,
            layerFlight: this.layerFlight,
          },
          ref,
          { ...opts, signal: shared },
        );
        const record = await this.record(ref, pulled);
        log.info('pulled image', { ref: key, id: record.id });
        return record;
      });
    } catch (err) {
      if (shared.aborted) throw new PullAbortedError(key);
      const e = exhaustedOr(err);
      if (!(e instanceof ImageStoreExhaustedError)) throw e;
      // A pull that ran out of room gives back what it took: layers of no
      // image would keep the disk full, and no CRI call could remove them.
      await this.gc().catch((gcErr: unknown) => log.warn('garbage collection after a full store failed', { error: errorMessage(gcErr) }));
      throw await this.placed(e);
    }
  }

  /** A full store's error naming the store and the room its file system has now. */
  private async placed(err: unknown): Promise<unknown> {
    if (!(err instanceof ImageStoreExhaustedError)) return err;
    const freeBytes = await statfs(this.options.root).then(
      (s) => s.bavail * s.bsize,
      () => undefined,
    );
    return err.at({ root: this.options.root, freeBytes });
  }

  /** Adds or updates the record of a pulled/imported image and points ref's tag at it. */
  private async record(ref: ImageReference | undefined, p: PulledImage): Promise<ImageRecord> {
    this.fsInfoCache = undefined;
    return this.index.update((images) => {
      const id = p.configDigest;
      const existing = images.get(id);
      const tag = ref?.tag ? formatReference({ registry: ref.registry, repository: ref.repository, tag: ref.tag }) : undefined;
      const repoDigest = ref && p.topDigest ? `${repoName(ref)}@${p.topDigest}` : undefined;
      const untagged: ImageRecord[] = [];
      if (tag) {
        // A tag names one image: take it away from whichever image had it.
        for (const other of images.values()) {
          if (other.id === id || !other.repoTags.includes(tag)) continue;
          other.repoTags = other.repoTags.filter((t) => t !== tag);
          untagged.push(other);
        }
      }
      const r: ImageRecord = existing ?? newRecord(p);
      fillFromConfig(r, p.config);
      if (tag && !r.repoTags.includes(tag)) r.repoTags.push(tag);
      if (repoDigest && !r.repoDigests.includes(repoDigest)) r.repoDigests.push(repoDigest);
      r.pinned = r.pinned || this.isPinnedByOption(r);
      images.set(id, r);
      // An image that lost its last name and has no holder is unreachable: drop it (GC frees its content).
      for (const other of untagged) if (other.repoTags.length === 0 && other.repoDigests.length === 0 && other.holders.length === 0) images.delete(other.id);
      return structuredClone(r);
    });
  }

  /** Images sorted by first tag, then id; `filter.ref` narrows to the image that ref resolves to. */
  async list(filter: ImageFilter = {}): Promise<ImageRecord[]> {
    this.check();
    if (filter.ref) {
      const r = await this.status(filter.ref);
      return r ? [r] : [];
    }
    return this.index.all().sort((a, b) => (a.repoTags[0] ?? '\uffff').localeCompare(b.repoTags[0] ?? '\uffff') || a.id.localeCompare(b.id));
  }

  /** The image that `ref` names (id, unique id prefix, tag, repo digest), or undefined. */
  async status(ref: string): Promise<ImageRecord | undefined> {
    this.check();
    return this.index.resolve(ref);
  }

  /**
   * Removes the image `ref` resolves to (all its tags), then garbage-collects.
   * An unknown image is not an error. An image with holders is refused with
   * ImageInUseError: it is never pulled out from under a container.
   */
  async remove(ref: string): Promise<void> {
    this.check();
    const removed = await this.index.update((images) => {
      const r = this.index.resolve(ref);
      if (!r) return false;
      const cur = images.get(r.id);
      if (!cur) return false;
      if (cur.holders.length > 0) throw new ImageInUseError(cur.id, cur.holders);
      images.delete(cur.id);
      return true;
    });
    if (removed) {
      log.info('removed image', { ref });
      await this.gc();
    }
  }

  /**
   * Marks the image as used by `holderId` (e.g. a container id) so that
   * remove() refuses it and gc() keeps its layers. Idempotent; persisted.
   * Throws ImageNotFoundError if the image is unknown.
   */
  async acquireImage(ref: string, holderId: string): Promise<ImageRecord> {
    this.check();
    if (!holderId || holderId.length > 256) throw new ImageNotFoundError(`${ref} (invalid holder id)`);
    return this.index.update((images) => {
      const r = this.index.resolve(ref);
      const cur = r && images.get(r.id);
      if (!cur) throw new ImageNotFoundError(ref);
      if (!cur.holders.includes(holderId)) {
        if (cur.holders.length >= MAX_HOLDERS_PER_IMAGE) throw new ImageInUseError(cur.id, cur.holders);
        cur.holders.push(holderId);
      }
      return structuredClone(cur);
    });
  }

  /** Drops `holderId`'s hold on the image. Unknown image or holder: no error. */
  async releaseImage(ref: string, holderId: string): Promise<void> {
    this.check();
    const r = this.index.resolve(ref);
    if (!r || !r.holders.includes(holderId)) return;
    await this.index.update((images) => {
      const cur = images.get(r.id);
      if (cur) cur.holders = cur.holders.filter((h) => h !== holderId);
    });
  }

  /**
   * Drops every hold whose holder is not in `live` (for the pod layer after a
   * restart: holders of containers that no longer exist would otherwise keep
   * their images forever). Returns how many holds were dropped.
   */
  async retainHolders(live: Iterable<string>): Promise<number> {
    this.check();
    const keep = new Set(live);
    return this.index.update((images) => {
      let dropped = 0;
      for (const r of images.values()) {
        const before = r.holders.length;
        r.holders = r.holders.filter((h) => keep.has(h));
        dropped += before - r.holders.length;
      }
      return dropped;
    });
  }

  /** Pins or unpins an image (pinned images are skipped by kubelet's image GC). */
  async setPinned(ref: string, pinned: boolean): Promise<ImageRecord> {
    this.check();
    return this.index.update((images) => {
      const r = this.index.resolve(ref);
      const cur = r && images.get(r.id);
      if (!cur) throw new ImageNotFoundError(ref);
      cur.pinned = pinned;
      return structuredClone(cur);
    });
  }

  /** Bytes and inodes used under the store's root (cached for FS_INFO_CACHE_MS). */
  async fsInfo(): Promise<ImageFsInfo> {
    this.check();
    return this.fsInfoMutex.run(async () => {
      const now = Date.now();
      if (this.fsInfoCache && now - this.fsInfoCache.at < FS_INFO_CACHE_MS) return { ...this.fsInfoCache.info };
      const { bytes, inodes } = await dirUsage(this.options.root, MAX_FS_INFO_ENTRIES);
      const info: ImageFsInfo = { mountpoint: this.options.root, usedBytes: bytes, inodesUsed: inodes, timestampNs: BigInt(now) * 1_000_000n };
      this.fsInfoCache = { at: now, info };
      return { ...info };
    });
  }

  /** Removes blobs and unpacked layers that no image refers to. Waits for pulls in flight. */
  async gc(): Promise<GcResult> {
    this.check();
    return this.gcLock.write(async () => {
      const blobs = new Set<string>();
      const layers = new Set<string>();
      for (const r of this.index.all()) {
        blobs.add(r.id);
        blobs.add(r.manifestDigest);
        for (const d of r.repoDigests) blobs.add(d.slice(d.lastIndexOf('@') + 1));
        for (const l of r.diffIds) layers.add(l);
        // The compressed layers are named in the manifest.
        try {
          const m = JSON.parse((await this.content.read(r.manifestDigest, 4 * 1024 * 1024)).toString('utf8')) as { layers?: { digest?: string }[] };
          for (const l of m.layers ?? []) if (typeof l.digest === 'string') blobs.add(l.digest);
        } catch {
          /* manifest missing: its layers' blobs are unreferenced */
        }
      }
      const result: GcResult = { blobsRemoved: 0, snapshotsRemoved: 0, bytesFreed: 0 };
      for (const d of await this.content.list()) {
        if (blobs.has(d)) continue;
        result.bytesFreed += await this.content.remove(d);
        result.blobsRemoved++;
      }
      for (const l of await this.snapshots.list()) {
        if (layers.has(l)) continue;
        await this.snapshots.remove(l);
        result.snapshotsRemoved++;
      }
      this.fsInfoCache = undefined;
      if (result.blobsRemoved || result.snapshotsRemoved) log.info('garbage collected', { ...result });
      return result;
    });
  }

  /**
   * The unpacked layer directories of image `imageId` (id or any ref), lowest
   * first: overlayfs lowerdirs (overlayfs wants them top first in
   * `lowerdir=`, so reverse). Whiteouts are already in overlayfs form.
   */
  async rootfsLayers(imageId: string): Promise<string[]> {
    this.check();
    const r = this.index.resolve(imageId);
    if (!r) throw new ImageNotFoundError(imageId);
    const dirs = r.diffIds.map((d) => this.snapshots.path(d));
    for (const [i, d] of r.diffIds.entries()) {
      if (!(await this.snapshots.has(d))) throw new ImageNotFoundError(`${imageId} (layer ${i} ${d} is missing: pull the image again)`);
    }
    return dirs;
  }

  /**
   * Loads a `docker save` tarball or an OCI image layout tarball; returns the
   * images it held. `tag` names an image that the archive leaves untagged.
   */
  async importArchive(path: string, opts: { tag?: string } = {}): Promise<ImageRecord[]> {
    this.check();
    const { importArchive } = await import('./import-archive.js');
    const tagRef = opts.tag ? parseReference(opts.tag) : undefined;
    return this.gcLock.read(async () => {
      const found = await importArchive(path, { content: this.content, snapshots: this.snapshots, platform: this.options.platform }).catch(async (err: unknown) => Promise.reject(await this.placed(exhaustedOr(err))));
      const out: ImageRecord[] = [];
      for (const img of found) {
        const refs = img.refs.length ? img.refs : tagRef ? [tagRef] : [];
        let rec: ImageRecord | undefined;
        if (refs.length === 0) rec = await this.recordUnnamed(img.pulled);
        for (const ref of refs) rec = await this.record(ref, img.pulled);
        out.push(rec!);
      }
      return out;
    });
  }

  /** An imported image without any name is kept by its id only. */
  private async recordUnnamed(p: PulledImage): Promise<ImageRecord> {
    return this.index.update((images) => {
      const r: ImageRecord = images.get(p.configDigest) ?? newRecord(p);
      fillFromConfig(r, p.config);
      images.set(r.id, r);
      return structuredClone(r);
    });
  }

  /** The store must not be used afterwards; waits for pulls and GC in flight. */
  async close(): Promise<void> {
    await this.gcLock.write(async () => {});
    this.closed = true;
  }
}

function fillFromConfig(r: ImageRecord, c: ImageConfigBlob): void {
  const u = userOf(c.runtime.user);
  if (u.uid !== undefined) r.uid = u.uid;
  else delete r.uid;
  r.username = u.username;
  if (c.created) r.created = c.created;
  r.config = c.runtime;
}

/** The record of an image seen for the first time: no names, no holders yet. */
function newRecord(p: PulledImage): ImageRecord {
  return {
    id: p.configDigest,
    repoTags: [],
    repoDigests: [],
    size: p.size,
    username: '',
    pinned: false,
    manifestDigest: p.manifestDigest,
    diffIds: p.config.diffIds,
    os: p.config.os,
    architecture: p.config.architecture,
    config: p.config.runtime,
    holders: [],
  };
}
