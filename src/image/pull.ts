// A pull, step by step: resolve the reference to a manifest (picking the
// platform from an index), fetch the config, then fetch-and-unpack the
// layers that are not unpacked yet, a bounded number at once. Layers are
// shared between concurrent pulls through the caller's single-flight.
import { logger } from '../lib/log.js';
import type { ContentStore } from './content-store.js';
import { ContentInvalidError, PlatformNotFoundError } from './errors.js';
import { fetchLayer, type LayerTarget } from './layer-fetch.js';
import {
  MAX_CONFIG_BYTES,
  layerCompression,
  manifestKind,
  parseConfig,
  parseIndex,
  parseJson,
  parseManifest,
  selectPlatform,
  type ImageConfigBlob,
  type Manifest,
} from './manifest.js';
import { formatReference, type ImageReference } from './reference.js';
import { RegistrySession, type RegistryClientOptions } from './registry-client.js';
import { mapBounded, type SingleFlight } from './concurrency.js';
import type { SnapshotStore } from './snapshot-store.js';
import type { PullOptions, PullProgress } from './types.js';

const log = logger('image');
export const PROGRESS_INTERVAL_MS = 200;

export interface PullDeps {
  content: ContentStore;
  snapshots: SnapshotStore;
  registry: RegistryClientOptions;
  platform: string;
  maxConcurrentDownloads: number;
  /** Shared by every pull of the store: one unpack per diff id at a time. */
  layerFlight: SingleFlight<void>;
}

export interface PulledImage {
  /** Digest the reference resolved to (index or manifest): the repo digest. Unknown for a docker-save archive. */
  topDigest?: string;
  manifestDigest: string;
  configDigest: string;
  config: ImageConfigBlob;
  /** Config + compressed layers. */
  size: number;
}

class ProgressMeter {
  private last = 0;
  readonly p: PullProgress;
  constructor(
    ref: string,
    private readonly cb?: (p: PullProgress) => void,
  ) {
    this.p = { ref, layersDone: 0, layersTotal: 0, bytesDone: 0, bytesTotal: 0 };
  }
  tick(force = false): void {
    if (!this.cb) return;
    const now = Date.now();
    if (!force && now - this.last < PROGRESS_INTERVAL_MS) return;
    this.last = now;
    this.cb({ ...this.p, bytesDone: Math.min(this.p.bytesDone, this.p.bytesTotal) });
  }
}

export async function pullImage(deps: PullDeps, ref: ImageReference, opts: PullOptions): Promise<PulledImage> {
  const name = formatReference(ref);
  const session = new RegistrySession(ref, opts.auth, deps.registry, opts.signal);
  const meter = new ProgressMeter(name, opts.onProgress);

  const top = await session.fetchManifest(ref.digest ?? ref.tag!);
  let manifestBody = top.body;
  let manifestDigest = top.digest;
  let doc = parseJson(top.body, `manifest of ${name}`);
  if (manifestKind(doc, top.mediaType) === 'index') {
    const index = parseIndex(doc);
    const entry = selectPlatform(index, deps.platform);
    if (!entry) {
      const have = index.manifests.map((m) => (m.platform ? `${m.platform.os}/${m.platform.architecture}${m.platform.variant ? '/' + m.platform.variant : ''}` : '?')).join(', ');
      throw new PlatformNotFoundError(`${name} has no image for platform ${deps.platform} (it has: ${have || 'none'})`, deps.platform);
    }
    await deps.content.put(top.digest, top.body);
    const m = await session.fetchManifest(entry.digest);
    if (m.body.length !== entry.size) throw new ContentInvalidError(`manifest ${entry.digest} is ${m.body.length} bytes, the index says ${entry.size}`);
    manifestBody = m.body;
    manifestDigest = m.digest;
    doc = parseJson(m.body, `manifest ${entry.digest}`);
    if (manifestKind(doc, m.mediaType) !== 'manifest') throw new ContentInvalidError(`index entry ${entry.digest} of ${name} is not an image manifest`);
  }
  const manifest: Manifest = parseManifest(doc);

  const configBody = (await deps.content.has(manifest.config.digest))
    ? await deps.content.read(manifest.config.digest, MAX_CONFIG_BYTES)
    : await session.fetchSmallBlob(manifest.config.digest, manifest.config.size, MAX_CONFIG_BYTES);
  const config = parseConfig(configBody);
  const platformOs = deps.platform.split('/')[0];
  if (config.os !== platformOs) throw new PlatformNotFoundError(`${name} is an image for ${config.os}, not ${platformOs}`, deps.platform);
  if (config.diffIds.length !== manifest.layers.length) {
    throw new ContentInvalidError(`${name}: manifest has ${manifest.layers.length} layers, config has ${config.diffIds.length} diff ids`);
  }

  const targets: LayerTarget[] = manifest.layers.map((desc, i) => ({ desc, diffId: config.diffIds[i]!, compression: layerCompression(desc.mediaType) }));
  meter.p.layersTotal = targets.length;
  const missing: LayerTarget[] = [];
  for (const t of targets) {
    if (await deps.snapshots.has(t.diffId)) meter.p.layersDone++;
    else {
      missing.push(t);
      meter.p.bytesTotal += t.desc.size;
    }
  }
  meter.tick(true);
  log.info('pulling image', { ref: name, layers: targets.length, missing: missing.length });

  await mapBounded(missing, deps.maxConcurrentDownloads, async (t) => {
    // A layer download we joined belongs to another pull, which may have been
    // cancelled (its error can be any kind then); if ours was not, the layer is
    // fetched again, once, by us.
    for (let attempt = 0; ; attempt++) {
      const { promise, joined } = unpackOnce(t);
      try {
        await promise;
        meter.p.layersDone++;
        meter.tick();
        return;
      } catch (err) {
        if (!joined || attempt > 0 || opts.signal?.aborted) throw err;
      }
    }
  });
  function unpackOnce(t: (typeof missing)[number]): { promise: Promise<void>; joined: boolean } {
    return deps.layerFlight.join(t.diffId, async () => {
      if (await deps.snapshots.has(t.diffId)) return;
      const onBytes = (n: number) => {
        meter.p.bytesDone += n;
        meter.tick();
      };
      if (await deps.content.has(t.desc.digest)) {
        await fetchLayer(deps.content.stream(t.desc.digest), t, deps, false);
      } else {
        // A retry starts the layer again from its first byte; the meter clamps the total.
        await session.withBlob(t.desc.digest, (body) => fetchLayer(body, t, deps, true, onBytes));
      }
    });
  }

  // Only now, with every layer in place, do the manifest and config become content the image refers to.
  await deps.content.put(manifestDigest, manifestBody);
  await deps.content.put(manifest.config.digest, configBody);
  meter.tick(true);
  return {
    topDigest: top.digest,
    manifestDigest,
    configDigest: manifest.config.digest,
    config,
    size: manifest.config.size + manifest.layers.reduce((a, l) => a + l.size, 0),
  };
}
