// The public data shapes of the image room: what a pulled image looks like to
// the CRI ImageService and to the pod layer.

/** Credentials for one pull, as the CRI AuthConfig carries them. All optional. */
export interface RegistryAuth {
  username?: string;
  password?: string;
  /** base64("username:password"), as in a docker config.json. */
  auth?: string;
  /** OAuth2 refresh token, exchanged at the registry's token endpoint. */
  identityToken?: string;
  /** A bearer token sent to the registry as is. */
  registryToken?: string;
}

/** The part of an OCI image config a container is started from. */
export interface ImageRuntimeConfig {
  /** "uid", "uid:gid", "name" or "name:group"; empty means root. */
  user: string;
  env: string[];
  entrypoint: string[];
  cmd: string[];
  workingDir: string;
  /** "80/tcp" style keys. */
  exposedPorts: string[];
  volumes: string[];
  labels: Record<string, string>;
  stopSignal: string;
}

/** One image known to the store. */
export interface ImageRecord {
  /** The config blob's digest, "sha256:<64 hex>": the image id. */
  id: string;
  /** Normalised "registry/repo:tag" names pointing at this image. */
  repoTags: string[];
  /** "registry/repo@sha256:..." names (the manifest digest) of this image. */
  repoDigests: string[];
  /** Bytes of the image's content as stored in the registry (config + compressed layers). */
  size: number;
  /** Set when the config's user is numeric ("1000" or "1000:1000"). */
  uid?: number;
  /** Set when the config's user is a name ("nobody"); empty otherwise. */
  username: string;
  /** Pinned images are never removed by garbage collection (kubelet's image GC skips them too). */
  pinned: boolean;
  /** Digest of the platform manifest that was unpacked. */
  manifestDigest: string;
  /** The uncompressed layer digests (config rootfs.diff_ids), lowest first. */
  diffIds: string[];
  os: string;
  architecture: string;
  /** The image's creation time from its config (RFC 3339), if it has one. */
  created?: string;
  config: ImageRuntimeConfig;
  /** Ids of holders (containers) that currently use the image; see acquireImage. */
  holders: string[];
}

/** Usage of the image filesystem, as CRI ImageFsInfo reports it. */
export interface ImageFsInfo {
  /** The store's root directory. */
  mountpoint: string;
  usedBytes: number;
  inodesUsed: number;
  /** When the figures were measured, nanoseconds since the epoch. */
  timestampNs: bigint;
}

/** What `list` returns; every field narrows, omitted fields match all. */
export interface ImageFilter {
  /** An image reference as `status` accepts it (id, id prefix, tag or digest). */
  ref?: string;
}

/** Progress of one pull, for a terminal progress line. */
export interface PullProgress {
  ref: string;
  /** Layers (and config) finished, of total. */
  layersDone: number;
  layersTotal: number;
  /** Compressed bytes fetched so far, of the total to fetch (0 when unknown). */
  bytesDone: number;
  bytesTotal: number;
}

export interface PullOptions {
  auth?: RegistryAuth;
  /** Called at most every PROGRESS_INTERVAL_MS and once at the end. */
  onProgress?: (p: PullProgress) => void;
  /** Abandons the pull: downloads stop, nothing half done becomes visible. */
  signal?: AbortSignal;
}

export interface GcResult {
  blobsRemoved: number;
  snapshotsRemoved: number;
  bytesFreed: number;
}
