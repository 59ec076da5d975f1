// Errors of the image room. Each has a stable `code`; the CRI layer maps
// them to gRPC status codes (see the comment on each class).
import { FraktiError, errorMessage, type ErrorFields } from '../lib/errors.js';

export class ImageError extends FraktiError {}

/** A reference that does not parse (INVALID_ARGUMENT). */
export class InvalidReferenceError extends ImageError {
  constructor(ref: string, why: string) {
    super('IMAGE_REFERENCE_INVALID', `invalid image reference '${ref}': ${why}`, { ref });
  }
}

/** No image matches the reference (NOT_FOUND). */
export class ImageNotFoundError extends ImageError {
  constructor(ref: string) {
    super('IMAGE_NOT_FOUND', `no such image: ${ref}`, { ref });
  }
}

/** An id prefix matches several images (INVALID_ARGUMENT). */
export class AmbiguousReferenceError extends ImageError {
  constructor(ref: string, count: number) {
    super('IMAGE_REFERENCE_AMBIGUOUS', `image id prefix '${ref}' matches ${count} images`, { ref, count });
  }
}

/** The image is held by a container (FAILED_PRECONDITION). */
export class ImageInUseError extends ImageError {
  constructor(id: string, holders: string[]) {
    super('IMAGE_IN_USE', `image ${id} is in use by ${holders.slice(0, 3).join(', ')}${holders.length > 3 ? ` and ${holders.length - 3} more` : ''}`, {
      id,
      holders,
    });
  }
}

/** The registry answered, but not with what we asked for (UNKNOWN / NOT_FOUND for 404). */
export class RegistryError extends ImageError {
  readonly status: number | undefined;
  constructor(message: string, fields: ErrorFields & { status?: number } = {}, cause?: unknown) {
    super('REGISTRY_ERROR', message, fields, { cause });
    this.status = fields.status;
  }
}

/**
 * The registry (or a mirror) could not be reached at all: its name does not
 * resolve, the connection is refused, reset or times out, TLS fails
 * (UNAVAILABLE). Unlike RegistryError, nothing answered.
 */
export class RegistryUnreachableError extends ImageError {
  /** Worth another attempt (a reset, a timeout), unlike a name that does not resolve or a certificate that is wrong. */
  readonly transient: boolean;
  constructor(endpoint: string, cause: unknown, opts: { transient: boolean; what?: string }) {
    super('REGISTRY_UNREACHABLE', `cannot reach ${endpoint}${opts.what ? ` for ${opts.what}` : ''}: ${errorMessage(cause)}`, { endpoint }, { cause });
    this.transient = opts.transient;
  }
}

/** The registry refused our credentials, or we had none (UNAUTHENTICATED / PERMISSION_DENIED). */
export class RegistryAuthError extends ImageError {
  constructor(message: string, fields: ErrorFields = {}) {
    super('REGISTRY_UNAUTHORIZED', message, fields);
  }
}

/** Content that is not what it claims: digest, size or media type off its descriptor, or a layer that is not a whole tar. */
export class ContentInvalidError extends ImageError {
  constructor(message: string, fields: ErrorFields = {}) {
    super('CONTENT_INVALID', message, fields);
  }
}

/** A layer entry that would escape its directory or is otherwise unsafe. */
export class UnsafeLayerEntryError extends ImageError {
  constructor(entry: string, why: string, fields: ErrorFields = {}) {
    super('LAYER_ENTRY_UNSAFE', `layer entry '${entry}' refused: ${why}`, { entry, ...fields });
  }
}

/** The image has nothing for the store's platform (NOT_FOUND, as containerd's "no match for platform"). */
export class PlatformNotFoundError extends ImageError {
  constructor(message: string, platform: string) {
    super('IMAGE_PLATFORM_NOT_FOUND', message, { platform });
  }
}

/** Errno codes of a host resource running out (disk space, quota, open files), as an operator reads them. */
const EXHAUSTED_ERRNO: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EMFILE: 'too many open files in frakti',
  ENFILE: 'too many open files on the node',
};

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Where the store ran out: its root, and what its file system has free now (after the failed work was removed). */
export interface StorePlace {
  root: string;
  freeBytes?: number;
}

/** The disk under the store is full, or a quota or the file table ran out (RESOURCE_EXHAUSTED). */
export class ImageStoreExhaustedError extends ImageError {
  constructor(cause: NodeJS.ErrnoException, place?: StorePlace) {
    const errno = String(cause.code);
    const free = place?.freeBytes === undefined ? '' : ` (${mib(place.freeBytes)} free on its file system now)`;
    const where = place ? ` in the image store ${place.root}${free}` : ' in the image store';
    super('IMAGE_STORE_EXHAUSTED', `${EXHAUSTED_ERRNO[errno] ?? errno} (${errno})${where}: ${cause.message}`, { errno, path: cause.path, root: place?.root, freeBytes: place?.freeBytes }, { cause });
  }

  /** The same failure, saying which store and how much room it has. */
  at(place: StorePlace): ImageStoreExhaustedError {
    return new ImageStoreExhaustedError(this.cause as NodeJS.ErrnoException, place);
  }
}

/** A host resource error as ImageStoreExhaustedError; anything else as it is. */
export function exhaustedOr(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return !(err instanceof FraktiError) && typeof code === 'string' && Object.hasOwn(EXHAUSTED_ERRNO, code) ? new ImageStoreExhaustedError(err as NodeJS.ErrnoException) : err;
}

/** The store was closed: the daemon is shutting down (UNAVAILABLE). */
export class ImageStoreClosedError extends ImageError {
  constructor() {
    super('IMAGE_STORE_CLOSED', 'the image store is closed: frakti is shutting down');
  }
}

/** Options that do not validate (INVALID_ARGUMENT at start-up). */
export class ImageOptionsError extends ImageError {
  constructor(message: string, key?: string) {
    super('IMAGE_OPTIONS_INVALID', message, key ? { key } : {});
  }
}

/** An archive given to `import` that is neither docker-save nor OCI layout. */
export class ArchiveInvalidError extends ImageError {
  constructor(message: string, fields: ErrorFields = {}) {
    super('IMAGE_ARCHIVE_INVALID', message, fields);
  }
}

/** The pull was abandoned through its AbortSignal (CANCELLED). */
export class PullAbortedError extends ImageError {
  constructor(ref: string) {
    super('IMAGE_PULL_ABORTED', `pull of ${ref} was cancelled`, { ref });
  }
}
