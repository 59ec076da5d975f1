// Manifests, indexes and configs: media types, validation of what a registry
// or an archive sends (untrusted: sizes, counts and digests are checked), and
// platform selection from a multi-platform index.
import { ContentInvalidError } from './errors.js';
import { DIGEST } from './reference.js';
import type { ImageRuntimeConfig } from './types.js';

export const MT = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayerNdGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

/** What we send in Accept when resolving a reference. */
export const MANIFEST_ACCEPT = [MT.ociIndex, MT.dockerList, MT.ociManifest, MT.dockerManifest].join(', ');

/** Bounds on what we parse: real manifests are a few KiB, configs a few tens. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;
const MAX_INDEX_ENTRIES = 1024;
/** overlayfs stacks at most ~500 lowerdirs with short paths; Docker stops at 127. */
export const MAX_LAYERS = 128;
/** 64 GiB: a single blob bigger than that is refused. */
export const MAX_BLOB_BYTES = 64 * 1024 ** 3;

export type Compression = 'gzip' | 'zstd' | 'none';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
  annotations?: Record<string, string>;
}

export interface Manifest {
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface IndexManifest {
  mediaType: string;
  manifests: Descriptor[];
}

export interface ImageConfigBlob {
  os: string;
  architecture: string;
  variant?: string;
  created?: string;
  diffIds: string[];
  runtime: ImageRuntimeConfig;
}

function bad(what: string, fields: Record<string, unknown> = {}): never {
  throw new ContentInvalidError(what, fields);
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parseJson(buf: Buffer, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(buf.toString('utf8'));
  } catch {
    bad(`${what} is not valid JSON`);
  }
  if (!isObj(v)) bad(`${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

export function parseDescriptor(v: unknown, what: string): Descriptor {
  if (!isObj(v)) bad(`${what}: descriptor is not an object`);
  const d = v as Record<string, unknown>;
  if (typeof d.mediaType !== 'string' || d.mediaType.length > 256) bad(`${what}: descriptor has no media type`);
  if (typeof d.digest !== 'string' || !DIGEST.test(d.digest)) bad(`${what}: descriptor digest ${JSON.stringify(d.digest)} is not sha256:<hex>`);
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0 || d.size > MAX_BLOB_BYTES) bad(`${what}: descriptor size ${JSON.stringify(d.size)} is out of range`);
  const out: Descriptor = { mediaType: d.mediaType as string, digest: d.digest as string, size: d.size as number };
  if (isObj(d.platform)) {
    const p = d.platform;
    if (typeof p.os === 'string' && typeof p.architecture === 'string') {
      out.platform = { os: p.os, architecture: p.architecture };
      if (typeof p.variant === 'string') out.platform.variant = p.variant;
    }
  }
  if (isObj(d.annotations)) {
    out.annotations = {};
    for (const [k, a] of Object.entries(d.annotations)) if (typeof a === 'string') out.annotations[k] = a;
  }
  return out;
}

/** The media type of a manifest document: from the HTTP header if given, else from its own field. */
export function manifestKind(doc: Record<string, unknown>, headerType?: string): 'index' | 'manifest' {
  const declared = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  const mt = declared ?? headerType?.split(';')[0]?.trim();
  if (mt === MT.ociIndex || mt === MT.dockerList) return 'index';
  if (mt === MT.ociManifest || mt === MT.dockerManifest) return 'manifest';
  // OCI allows omitting mediaType: decide by shape.
  if (mt === undefined || mt === 'application/json' || mt === '') {
    if (Array.isArray(doc.manifests)) return 'index';
    if (isObj(doc.config) && Array.isArray(doc.layers)) return 'manifest';
  }
  if (doc.schemaVersion === 1) bad('Docker schema 1 manifests are not supported (deprecated): push the image again with a current client');
  return bad(`unsupported manifest media type ${JSON.stringify(mt)}`);
}

export function parseIndex(doc: Record<string, unknown>): IndexManifest {
  if (!Array.isArray(doc.manifests)) bad('index has no manifests array');
  const list = doc.manifests as unknown[];
  if (list.length > MAX_INDEX_ENTRIES) bad(`index has ${list.length} entries, more than ${MAX_INDEX_ENTRIES}`);
  return { mediaType: String(doc.mediaType ?? MT.ociIndex), manifests: list.map((m, i) => parseDescriptor(m, `index entry ${i}`)) };
}

export function parseManifest(doc: Record<string, unknown>): Manifest {
  if (doc.schemaVersion !== 2) bad(`manifest schemaVersion ${JSON.stringify(doc.schemaVersion)} is not 2`);
  const config = parseDescriptor(doc.config, 'manifest config');
  if (!Array.isArray(doc.layers)) bad('manifest has no layers array');
  const layers = (doc.layers as unknown[]).map((l, i) => parseDescriptor(l, `layer ${i}`));
  if (layers.length > MAX_LAYERS) bad(`manifest has ${layers.length} layers, more than ${MAX_LAYERS}`);
  for (const l of layers) layerCompression(l.mediaType);
  return { mediaType: String(doc.mediaType ?? MT.ociManifest), config, layers };
}

/** The compression of a layer by media type; unknown media types are refused. */
export function layerCompression(mediaType: string): Compression {
  switch (mediaType) {
    case MT.ociLayerGzip:
    case MT.ociLayerNdGzip:
    case MT.dockerLayer:
    case MT.dockerForeignLayer:
      return 'gzip';
    case MT.ociLayerZstd:
      return 'zstd';
    case MT.ociLayer:
    case 'application/vnd.oci.image.layer.nondistributable.v1.tar':
      return 'none';
    default:
      return bad(`unsupported layer media type ${JSON.stringify(mediaType)}`);
  }
}

/**
 * Picks the entry for `platform` ("os/arch[/variant]") from an index. An entry
 * with the exact variant wins; otherwise one without a variant (or amd64's v1).
 */
export function selectPlatform(index: IndexManifest, platform: string): Descriptor | undefined {
  const [os, arch, variant] = platform.split('/');
  const candidates = index.manifests.filter(
    (m) => m.platform && m.platform.os === os && m.platform.architecture === arch && (m.mediaType === MT.ociManifest || m.mediaType === MT.dockerManifest),
  );
  if (variant) return candidates.find((m) => m.platform!.variant === variant) ?? candidates.find((m) => !m.platform!.variant);
  return candidates.find((m) => !m.platform!.variant || m.platform!.variant === 'v1') ?? candidates[0];
}

function strList(v: unknown, max = 4096): string[] {
  if (!Array.isArray(v)) return [];
  return v.filter((s): s is string => typeof s === 'string').slice(0, max);
}

/** Validates an image config blob and extracts what frakti uses. */
export function parseConfig(buf: Buffer): ImageConfigBlob {
  const doc = parseJson(buf, 'image config');
  if (typeof doc.architecture !== 'string' || typeof doc.os !== 'string') bad('image config has no os/architecture');
  const rootfs = doc.rootfs;
  if (!isObj(rootfs) || rootfs.type !== 'layers' || !Array.isArray(rootfs.diff_ids)) bad('image config has no rootfs.diff_ids');
  const diffIds = (rootfs as { diff_ids: unknown[] }).diff_ids.map((d) => {
    if (typeof d !== 'string' || !DIGEST.test(d)) bad(`image config diff_id ${JSON.stringify(d)} is not sha256:<hex>`);
    return d as string;
  });
  const c = isObj(doc.config) ? doc.config : {};
  const labels: Record<string, string> = {};
  if (isObj(c.Labels)) for (const [k, v] of Object.entries(c.Labels)) if (typeof v === 'string') labels[k] = v;
  const out: ImageConfigBlob = {
    os: doc.os as string,
    architecture: doc.architecture as string,
    diffIds,
    runtime: {
      user: typeof c.User === 'string' ? c.User : '',
      env: strList(c.Env),
      entrypoint: strList(c.Entrypoint),
      cmd: strList(c.Cmd),
      workingDir: typeof c.WorkingDir === 'string' ? c.WorkingDir : '',
      exposedPorts: isObj(c.ExposedPorts) ? Object.keys(c.ExposedPorts).slice(0, 4096) : [],
      volumes: isObj(c.Volumes) ? Object.keys(c.Volumes).slice(0, 4096) : [],
      labels,
      stopSignal: typeof c.StopSignal === 'string' ? c.StopSignal : '',
    },
  };
  if (typeof doc.variant === 'string') out.variant = doc.variant;
  if (typeof doc.created === 'string') out.created = doc.created;
  return out;
}

/** CRI's uid/username from a config user: "1000", "1000:1000" -> uid; "nobody[:grp]" -> username. */
export function userOf(user: string): { uid?: number; username: string } {
  const name = user.split(':')[0] ?? '';
  if (name === '') return { username: '' };
  if (/^[0-9]+$/.test(name)) {
    const n = Number(name);
    if (Number.isSafeInteger(n)) return { uid: n, username: '' };
  }
  return { username: name };
}
