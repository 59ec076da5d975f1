// Errors of the CRI layer and the one place where any error thrown by a
// handler (ours or a lower room's) becomes a gRPC status.
import { status as GrpcStatus } from '@grpc/grpc-js';
import { FraktiError, type ErrorFields } from '../lib/errors.js';

/** The stable codes every room may use for errors a CRI client should see as such. */
export type CriErrorCode =
  | 'NOT_FOUND'
  | 'INVALID_ARGUMENT'
  | 'ALREADY_EXISTS'
  | 'FAILED_PRECONDITION'
  | 'DEADLINE_EXCEEDED'
  | 'UNIMPLEMENTED'
  | 'UNAVAILABLE'
  | 'CANCELLED'
  | 'RESOURCE_EXHAUSTED'
  | 'INTERNAL';

export class CriError extends FraktiError {
  declare readonly code: CriErrorCode;
  constructor(code: CriErrorCode, message: string, fields: ErrorFields = {}, cause?: unknown) {
    super(code, message, fields, cause === undefined ? undefined : { cause });
  }
}

export function invalidArgument(message: string, fields: ErrorFields = {}): CriError {
  return new CriError('INVALID_ARGUMENT', message, fields);
}

export function unimplemented(rpc: string): CriError {
  return new CriError('UNIMPLEMENTED', `${rpc} is not implemented by frakti yet`, { rpc });
}

const EXACT: Record<string, GrpcStatus> = {
  NOT_FOUND: GrpcStatus.NOT_FOUND,
  INVALID_ARGUMENT: GrpcStatus.INVALID_ARGUMENT,
  ALREADY_EXISTS: GrpcStatus.ALREADY_EXISTS,
  FAILED_PRECONDITION: GrpcStatus.FAILED_PRECONDITION,
  DEADLINE_EXCEEDED: GrpcStatus.DEADLINE_EXCEEDED,
  UNIMPLEMENTED: GrpcStatus.UNIMPLEMENTED,
  UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  CANCELLED: GrpcStatus.CANCELLED,
  PERMISSION_DENIED: GrpcStatus.PERMISSION_DENIED,
  UNAUTHENTICATED: GrpcStatus.UNAUTHENTICATED,
  RESOURCE_EXHAUSTED: GrpcStatus.RESOURCE_EXHAUSTED,
  // The image room (src/image/errors.ts).
  IMAGE_REFERENCE_INVALID: GrpcStatus.INVALID_ARGUMENT,
  IMAGE_REFERENCE_AMBIGUOUS: GrpcStatus.INVALID_ARGUMENT,
  IMAGE_NOT_FOUND: GrpcStatus.NOT_FOUND,
  IMAGE_IN_USE: GrpcStatus.FAILED_PRECONDITION,
  IMAGE_PULL_ABORTED: GrpcStatus.CANCELLED,
  REGISTRY_UNAUTHORIZED: GrpcStatus.PERMISSION_DENIED,
  // What the registry sent is wrong or unreachable: not the client's fault,
  // not our bug either. kubelet shows the message as ErrImagePull.
  REGISTRY_ERROR: GrpcStatus.UNKNOWN,
  CONTENT_INVALID: GrpcStatus.UNKNOWN,
  LAYER_ENTRY_UNSAFE: GrpcStatus.UNKNOWN,
  // Nothing answered: DNS, connection, timeout, TLS (a registry that answered an error stays REGISTRY_ERROR).
  REGISTRY_UNREACHABLE: GrpcStatus.UNAVAILABLE,
  IMAGE_STORE_EXHAUSTED: GrpcStatus.RESOURCE_EXHAUSTED,
  IMAGE_STORE_CLOSED: GrpcStatus.UNAVAILABLE,
  IMAGE_PLATFORM_NOT_FOUND: GrpcStatus.NOT_FOUND,
  // The node lacks a tool, or the store's file system refuses device nodes or xattrs.
  SETFATTR_MISSING: GrpcStatus.FAILED_PRECONDITION,
  ZSTD_UNAVAILABLE: GrpcStatus.FAILED_PRECONDITION,
  MKNOD_FAILED: GrpcStatus.FAILED_PRECONDITION,
  SETXATTR_FAILED: GrpcStatus.FAILED_PRECONDITION,
};

// Lower rooms name their codes after their domain (IMAGE_NOT_FOUND,
// REFERENCE_INVALID, POD_ALREADY_EXISTS, ...): a suffix or a word decides.
const BY_SUFFIX: [RegExp, GrpcStatus][] = [
  [/NOT_FOUND$|_UNKNOWN$/, GrpcStatus.NOT_FOUND],
  [/ALREADY_EXISTS$|_EXISTS$|_CONFLICT$|_RESERVED$/, GrpcStatus.ALREADY_EXISTS],
  [/INVALID$|_BAD_|MALFORMED|AMBIGUOUS|^USAGE$/, GrpcStatus.INVALID_ARGUMENT],
  [/FAILED_PRECONDITION$|_IN_USE$|_BUSY$|_NOT_READY$|_STATE$/, GrpcStatus.FAILED_PRECONDITION],
  [/TIMEOUT$|DEADLINE/, GrpcStatus.DEADLINE_EXCEEDED],
  [/UNAUTHORIZED$|_AUTH$|_DENIED$/, GrpcStatus.PERMISSION_DENIED],
  [/UNIMPLEMENTED$|UNSUPPORTED$/, GrpcStatus.UNIMPLEMENTED],
];

export interface MappedStatus {
  code: GrpcStatus;
  details: string;
}

/** The gRPC status a client sees for an error a handler threw. */
export function toGrpcStatus(err: unknown): MappedStatus {
  if (err instanceof FraktiError) {
    // A registry's 404 means the image (or tag) does not exist.
    if (err.code === 'REGISTRY_ERROR' && err.fields.status === 404) return { code: GrpcStatus.NOT_FOUND, details: err.message };
    // A registry that says it is overloaded or its backend is down: try again later.
    if (err.code === 'REGISTRY_ERROR' && [429, 502, 503, 504].includes(Number(err.fields.status))) return { code: GrpcStatus.UNAVAILABLE, details: err.message };
    const code = EXACT[err.code] ?? BY_SUFFIX.find(([re]) => re.test(err.code))?.[1] ?? GrpcStatus.INTERNAL;
    return { code, details: err.message };
  }
  if (err instanceof Error && err.name === 'AbortError') {
    return { code: GrpcStatus.CANCELLED, details: 'the call was cancelled' };
  }
  // Anything else is a bug or an unexpected system error: say so plainly.
  const msg = err instanceof Error ? err.message : String(err);
  return { code: GrpcStatus.INTERNAL, details: `internal error: ${msg}` };
}

/** The daemon could not take its socket (another daemon, or something that is not a socket). */
export class SocketError extends FraktiError {
  constructor(code: 'SOCKET_IN_USE' | 'SOCKET_NOT_A_SOCKET' | 'SOCKET_BIND', message: string, fields: ErrorFields = {}, cause?: unknown) {
    super(code, message, fields, cause === undefined ? undefined : { cause });
  }
}
