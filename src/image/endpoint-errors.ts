// What went wrong at one registry endpoint, whether the pull moves on to the
// next endpoint (mirrors first, then the registry), and the one report it
// gives when every endpoint it tried failed.
//
// containerd (v1.7 remotes/docker) moves to the next host when a request
// fails or answers an error status (the resolver) or a blob cannot be opened
// (the fetcher); the digest is checked, and the layer unpacked, only after
// the fetch, so bad content never sends it to another host. frakti does the
// same: an endpoint that cannot be reached or answers an error is skipped;
// content that fails its digest, does not decompress or does not unpack
// ends the pull where it happened. A mirror that serves bad bytes is a fault
// to report, not to hide behind a fallback, and bytes that match their
// digest but do not unpack would fail the same way at every endpoint.
import { FraktiError, errorMessage } from '../lib/errors.js';
import { ImageNotFoundError, RegistryAuthError, RegistryError, RegistryUnreachableError, exhaustedOr } from './errors.js';
import { isTransient } from './retry.js';

/** Errno codes of a failed connection or name lookup. */
const NETWORK_ERRNO = new Set([
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_FAIL',
  'EAI_NODATA',
  'EAI_NONAME',
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EPIPE',
  'EPROTO',
  'ERR_STREAM_PREMATURE_CLOSE',
]);
/** Node's and OpenSSL's codes for a TLS handshake or certificate that fails. */
const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|ERR_OSSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_)/;
/** Bounds on the report: endpoints listed, characters per endpoint. */
const MAX_LISTED = 8;
const MAX_LINE_CHARS = 300;

function codeOf(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : '';
}

function isNetworkFailure(err: unknown): boolean {
  const code = codeOf(err);
  return NETWORK_ERRNO.has(code) || TLS_CODE.test(code) || /socket hang up|premature close/i.test(errorMessage(err));
}

/**
 * One failed attempt at `endpoint`, as an ImageError where it is one of
 * ours to name: nothing answered (RegistryUnreachableError), something
 * answered that is not HTTP (RegistryError), the store's disk is full.
 */
export function classifyAttempt(err: unknown, endpoint: string, what: string): unknown {
  if (err instanceof FraktiError) return err;
  if (isNetworkFailure(err)) return new RegistryUnreachableError(endpoint, err, { transient: isTransient(err), what });
  if (codeOf(err).startsWith('HPE_')) return new RegistryError(`${endpoint} answered ${what} with something that is not HTTP: ${errorMessage(err)}`, {}, err);
  return exhaustedOr(err);
}

/** Failures of the endpoint, not of the content: the next endpoint may do better. */
export function movesOn(err: unknown): boolean {
  return err instanceof RegistryUnreachableError || err instanceof RegistryError || err instanceof RegistryAuthError || err instanceof ImageNotFoundError;
}

function clip(s: string): string {
  return s.length > MAX_LINE_CHARS ? `${s.slice(0, MAX_LINE_CHARS)}...` : s;
}

/** The failures of one request across endpoints, for the error that ends it. */
export class EndpointReport {
  private readonly lines: string[] = [];
  private failed = 0;
  /** The registry's own failure: it, not a mirror's, says what the pull's failure is. */
  private registryErr: unknown;
  private lastErr: unknown;

  constructor(
    private readonly what: string,
    private readonly endpoints: number,
  ) {}

  add(endpoint: string, err: unknown, isRegistry: boolean): void {
    if (isRegistry) this.registryErr = err;
    this.lastErr = err;
    if (++this.failed > MAX_LISTED) return;
    const msg = errorMessage(err);
    this.lines.push(clip(msg.includes(endpoint) ? msg : `${endpoint}: ${msg}`));
  }

  private listed(): string {
    const more = this.failed - this.lines.length;
    return this.lines.join('; ') + (more > 0 ? `; and ${more} more` : '');
  }

  /** The error that ends the request at `endpoint`, naming it and what failed before it. */
  stop(err: unknown, endpoint: string): unknown {
    if (this.endpoints <= 1 || !(err instanceof Error)) return err;
    const before = this.failed > 0 ? `; before it: ${this.listed()}` : '';
    return rewrite(err, `${err.message} (at ${endpoint}${before})`, this.lines);
  }

  /** Every endpoint failed: the registry's error, its message listing each endpoint's failure. */
  exhausted(): unknown {
    const err = this.registryErr ?? this.lastErr;
    if (this.endpoints <= 1 || !(err instanceof Error)) return err;
    return rewrite(err, `${this.what}: every endpoint failed: ${this.listed()}`, this.lines);
  }
}

/** Keeps the error's class, code and fields (the gRPC status follows them); only the message grows. */
function rewrite(err: Error, message: string, lines: string[]): Error {
  err.message = message;
  if (err instanceof FraktiError) err.fields.endpoints = [...lines];
  return err;
}
