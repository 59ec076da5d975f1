// `frakti image import`: loads a `docker save` tarball (manifest.json) or an
// OCI image layout tarball (oci-layout + index.json; newer docker save
// writes both). The archive is read once: every regular file is hashed on
// its way into the content store, then the manifests are read from there
// and the layers unpacked as a pull would.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { posix } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { errorMessage } from '../lib/errors.js';
import type { ContentStore } from './content-store.js';
import { ArchiveInvalidError, ContentInvalidError } from './errors.js';
import { fetchLayer, type LayerTarget } from './layer-fetch.js';
import { entryComponents } from './entry-path.js';
import {
  MAX_CONFIG_BYTES,
  MAX_MANIFEST_BYTES,
  MT,
  layerCompression,
  manifestKind,
  parseConfig,
  parseIndex,
  parseJson,
  parseManifest,
  selectPlatform,
  type Compression,
  type Descriptor,
} from './manifest.js';
import type { PulledImage } from './pull.js';
import { tryParseReference, type ImageReference } from './reference.js';
import type { SnapshotStore } from './snapshot-store.js';

const MAX_ARCHIVE_FILES = 100_000;
const MAX_SYMLINK_HOPS = 16;

export interface ArchiveImage {
  refs: ImageReference[];
  pulled: PulledImage;
}

interface ArchiveFile {
  digest: string;
  size: number;
}

interface Deps {
  content: ContentStore;
  snapshots: SnapshotStore;
  platform: string;
}

/** Reads the archive once, storing every regular file as a blob; returns name -> blob and the symlinks. */
async function ingestArchive(path: string, deps: Deps): Promise<{ files: Map<string, ArchiveFile>; links: Map<string, string> }> {
  const files = new Map<string, ArchiveFile>();
  const links = new Map<string, string>();
  const head = Buffer.alloc(2);
  // The path comes from the operator: one that cannot be opened is their mistake to see, not our failure.
  const fh = await open(path, 'r').catch((err: unknown) => Promise.reject(new ArchiveInvalidError(`cannot open ${path}: ${errorMessage(err)}`, { path })));
  try {
    await fh.read(head, 0, 2, 0);
  } finally {
    await fh.close();
  }
  const extract = tar.extract();
  extract.on('entry', (h, stream, next) => {
    const body = stream as unknown as Readable;
    const done = (err?: unknown) => {
      body.resume();
      next(err as Error | undefined);
    };
    (async () => {
      if (files.size + links.size > MAX_ARCHIVE_FILES) throw new ArchiveInvalidError(`archive has more than ${MAX_ARCHIVE_FILES} files`);
      const name = entryComponents(h.name).join('/');
      if (h.type === 'symlink') {
        links.set(name, posix.normalize(posix.join(posix.dirname(name), h.linkname ?? '')));
        return;
      }
      if (h.type !== 'file' && h.type !== 'contiguous-file') return;
      const hash = createHash('sha256');
      let size = 0;
      const ing = await deps.content.ingest();
      try {
        await pipeline(
          body,
          new Transform({
            transform(chunk: Buffer, _e, cb) {
              hash.update(chunk);
              size += chunk.length;
              cb(null, chunk);
            },
          }),
          ing.out,
        );
        const digest = `sha256:${hash.digest('hex')}`;
        if (await deps.content.has(digest)) await ing.abort();
        else await deps.content.commitIngest(ing, digest);
        files.set(name, { digest, size });
      } catch (err) {
        await ing.abort();
        throw err;
      }
    })().then(() => done(), done);
  });
  const src = createReadStream(path, { highWaterMark: 1024 * 1024 });
  if (head[0] === 0x1f && head[1] === 0x8b) await pipeline(src, zlib.createGunzip(), extract as unknown as NodeJS.WritableStream);
  else await pipeline(src, extract as unknown as NodeJS.WritableStream);
  return { files, links };
}

function lookup(files: Map<string, ArchiveFile>, links: Map<string, string>, name: string): ArchiveFile {
  let n = posix.normalize(name).replace(/^\.\//, '');
  for (let hop = 0; hop < MAX_SYMLINK_HOPS; hop++) {
    const f = files.get(n);
    if (f) return f;
    const l = links.get(n);
    if (!l) break;
    n = l;
  }
  throw new ArchiveInvalidError(`archive has no file ${name}`);
}

async function sniffCompression(deps: Deps, digest: string): Promise<Compression> {
  const fh = await open(deps.content.path(digest), 'r');
  try {
    const b = Buffer.alloc(4);
    await fh.read(b, 0, 4, 0);
    if (b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
    if (b.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
    return 'none';
  } finally {
    await fh.close();
  }
}

async function unpackLayers(deps: Deps, targets: LayerTarget[]): Promise<void> {
  for (const t of targets) {
    if (await deps.snapshots.has(t.diffId)) continue;
    if (!(await deps.content.has(t.desc.digest))) throw new ArchiveInvalidError(`archive lacks layer ${t.desc.digest}`);
    await fetchLayer(deps.content.stream(t.desc.digest), t, deps, false);
  }
}

/** Builds an image from a manifest already in the content store. */
async function fromManifest(deps: Deps, manifestDigest: string): Promise<PulledImage> {
  const doc = parseJson(await deps.content.read(manifestDigest, MAX_MANIFEST_BYTES), `manifest ${manifestDigest}`);
  const manifest = parseManifest(doc);
  const configBody = await deps.content.read(manifest.config.digest, MAX_CONFIG_BYTES);
  const config = parseConfig(configBody);
  if (config.diffIds.length !== manifest.layers.length) throw new ContentInvalidError(`manifest ${manifestDigest}: ${manifest.layers.length} layers, ${config.diffIds.length} diff ids`);
  await unpackLayers(
    deps,
    manifest.layers.map((desc, i) => ({ desc, diffId: config.diffIds[i]!, compression: layerCompression(desc.mediaType) })),
  );
  return { manifestDigest, configDigest: manifest.config.digest, config, size: manifest.config.size + manifest.layers.reduce((a, l) => a + l.size, 0) };
}

/** The image name an OCI layout entry carries, if any. */
function refOfAnnotations(a: Record<string, string> | undefined): ImageReference | undefined {
  const full = a?.['io.containerd.image.name'] ?? a?.['org.opencontainers.image.ref.name'];
  // A bare tag ("latest", as skopeo writes) names no repository: the caller's --tag does.
  if (!full || (!full.includes('/') && !full.includes(':'))) return undefined;
  return tryParseReference(full);
}

async function importOciLayout(deps: Deps, files: Map<string, ArchiveFile>, links: Map<string, string>): Promise<ArchiveImage[]> {
  const indexFile = lookup(files, links, 'index.json');
  const index = parseIndex(parseJson(await deps.content.read(indexFile.digest, MAX_MANIFEST_BYTES), 'index.json'));
  const out: ArchiveImage[] = [];
  for (const entry of index.manifests) {
    let desc: Descriptor | undefined = entry;
    let top = entry.digest;
    if (entry.mediaType === MT.ociIndex || entry.mediaType === MT.dockerList) {
      const inner = parseJson(await deps.content.read(entry.digest, MAX_MANIFEST_BYTES), `index ${entry.digest}`);
      if (manifestKind(inner) !== 'index') throw new ArchiveInvalidError(`${entry.digest} is not an index`);
      desc = selectPlatform(parseIndex(inner), deps.platform);
      if (!desc) continue;
    } else if (entry.platform && `${entry.platform.os}/${entry.platform.architecture}` !== deps.platform.split('/').slice(0, 2).join('/')) {
      continue;
    }
    top = entry.digest;
    const pulled = await fromManifest(deps, desc.digest);
    pulled.topDigest = top;
    const ref = refOfAnnotations(entry.annotations);
    out.push({ refs: ref ? [ref] : [], pulled });
  }
  if (out.length === 0) throw new ArchiveInvalidError(`OCI layout has no image for ${deps.platform}`);
  return out;
}

async function importDockerSave(deps: Deps, files: Map<string, ArchiveFile>, links: Map<string, string>): Promise<ArchiveImage[]> {
  const mf = lookup(files, links, 'manifest.json');
  let entries: unknown;
  try {
    entries = JSON.parse((await deps.content.read(mf.digest, MAX_MANIFEST_BYTES)).toString('utf8'));
  } catch {
    throw new ArchiveInvalidError('manifest.json of the archive is not valid JSON');
  }
  if (!Array.isArray(entries)) throw new ArchiveInvalidError('manifest.json of the archive is not a list');
  const out: ArchiveImage[] = [];
  for (const e of entries as Record<string, unknown>[]) {
    if (typeof e?.Config !== 'string' || !Array.isArray(e.Layers)) throw new ArchiveInvalidError('manifest.json entry without Config or Layers');
    const cfgFile = lookup(files, links, e.Config);
    const config = parseConfig(await deps.content.read(cfgFile.digest, MAX_CONFIG_BYTES));
    const layers: Descriptor[] = [];
    for (const l of e.Layers as unknown[]) {
      if (typeof l !== 'string') throw new ArchiveInvalidError('manifest.json layer is not a path');
      const f = lookup(files, links, l);
      const c = await sniffCompression(deps, f.digest);
      layers.push({ mediaType: c === 'gzip' ? MT.ociLayerGzip : c === 'zstd' ? MT.ociLayerZstd : MT.ociLayer, digest: f.digest, size: f.size });
    }
    if (layers.length !== config.diffIds.length) throw new ArchiveInvalidError(`image ${cfgFile.digest}: ${layers.length} layers, config has ${config.diffIds.length} diff ids`);
    // docker save has no manifest of its own: write one, so the image refers to its layer blobs like a pulled one.
    const manifest = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MT.ociManifest, config: { mediaType: MT.ociConfig, digest: cfgFile.digest, size: cfgFile.size }, layers }),
    );
    const manifestDigest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
    await deps.content.put(manifestDigest, manifest);
    const pulled = await fromManifest(deps, manifestDigest);
    const refs = (Array.isArray(e.RepoTags) ? e.RepoTags : [])
      .map((t) => (typeof t === 'string' ? tryParseReference(t) : undefined))
      .filter((r): r is ImageReference => r !== undefined && !!r.tag);
    out.push({ refs, pulled });
  }
  return out;
}

export async function importArchive(path: string, deps: Deps): Promise<ArchiveImage[]> {
  const { files, links } = await ingestArchive(path, deps);
  const layoutTag = files.has('oci-layout') || links.has('oci-layout');
  if (files.has('manifest.json')) return importDockerSave(deps, files, links);
  if (layoutTag && files.has('index.json')) return importOciLayout(deps, files, links);
  throw new ArchiveInvalidError(`${path} is neither a docker-save archive (manifest.json) nor an OCI layout (oci-layout, index.json)`);
}

