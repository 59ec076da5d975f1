// CRI <-> image room translation: ImageSpec -> reference, AuthConfig ->
// RegistryAuth, ImageRecord -> CRI Image, ImageFsInfo -> FilesystemUsage.
// Pure functions; everything from the client is checked here first.
import type { ImageFsInfo, ImageRecord, RegistryAuth } from '../image/index.js';
import { invalidArgument } from './errors.js';
import type { AuthConfig, FilesystemUsage, Image, ImageSpec } from './cri-types.js';

/** Longest image reference we accept (Docker's name bound plus tag and digest). */
export const MAX_IMAGE_REF_CHARS = 512;
/** Longest credential field (identity tokens are JWTs of a few KiB). */
export const MAX_AUTH_FIELD_CHARS = 64 * 1024;

/** The reference an ImageSpec names, or INVALID_ARGUMENT. */
export function imageRefOf(spec: ImageSpec | null | undefined, what = 'image'): string {
  const ref = spec?.image ?? '';
  if (ref === '') throw invalidArgument(`${what}: ImageSpec.image is required`);
  if (ref.length > MAX_IMAGE_REF_CHARS) throw invalidArgument(`${what}: image reference longer than ${MAX_IMAGE_REF_CHARS} characters`);
  return ref;
}

/** The credentials of a PullImage, or undefined when it carries none. */
export function registryAuthOf(a: AuthConfig | null | undefined): RegistryAuth | undefined {
  if (!a) return undefined;
  const auth: RegistryAuth = {};
  const take = (v: string, field: keyof AuthConfig): string | undefined => {
    if (v === '') return undefined;
    if (v.length > MAX_AUTH_FIELD_CHARS) throw invalidArgument(`auth.${field} is longer than ${MAX_AUTH_FIELD_CHARS} characters`);
    return v;
  };
  let username = take(a.username, 'username');
  let password = take(a.password, 'password');
  const encoded = take(a.auth, 'auth');
  if (encoded !== undefined) {
    // base64("user:password"), as docker's config.json stores it; decoded
    // here so that a malformed value is the client's error, named as such.
    const text = Buffer.from(encoded, 'base64').toString('utf8');
    const colon = text.indexOf(':');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || colon <= 0) throw invalidArgument('auth.auth is not base64 of "username:password"');
    username ??= text.slice(0, colon);
    password ??= text.slice(colon + 1);
  }
  if (username !== undefined) auth.username = username;
  if (password !== undefined) auth.password = password;
  const identityToken = take(a.identity_token, 'identity_token');
  const registryToken = take(a.registry_token, 'registry_token');
  if (identityToken !== undefined) auth.identityToken = identityToken;
  if (registryToken !== undefined) auth.registryToken = registryToken;
  return Object.keys(auth).length > 0 ? auth : undefined;
}

function emptySpec(image: string): ImageSpec {
  return { image, annotations: {}, user_specified_image: '', runtime_handler: '', image_ref: '' };
}

/** A stored image as CRI lists it. uid when the image's user is numeric, username when it is a name. */
export function toCriImage(r: ImageRecord): Image {
  return {
    id: r.id,
    repo_tags: [...r.repoTags],
    repo_digests: [...r.repoDigests],
    size: String(r.size),
    uid: r.uid === undefined ? null : { value: String(r.uid) },
    username: r.uid === undefined ? r.username : '',
    spec: emptySpec(r.id),
    pinned: r.pinned,
  };
}

/** ImageStatus' verbose info: one JSON document under "info", as other runtimes do. */
export function imageVerboseInfo(r: ImageRecord): Record<string, string> {
  return {
    info: JSON.stringify({
      id: r.id,
      manifestDigest: r.manifestDigest,
      platform: `${r.os}/${r.architecture}`,
      created: r.created,
      diffIds: r.diffIds,
      config: r.config,
      holders: r.holders,
      pinned: r.pinned,
    }),
  };
}

export function toFilesystemUsage(fs: ImageFsInfo): FilesystemUsage {
  return {
    timestamp: fs.timestampNs.toString(),
    fs_id: { mountpoint: fs.mountpoint },
    used_bytes: { value: String(fs.usedBytes) },
    inodes_used: { value: String(fs.inodesUsed) },
  };
}
