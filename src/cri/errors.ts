// Errors of the CRI layer and the one place where any error thrown by a
// handler (ours or a lower room's) becomes a gRPC status.
import { status as GrpcStatus } from '@grpc/grpc-js';
import { errorMessage, FraktiError, type ErrorFields } from '../lib/errors.js';

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
  // The agent room (src/agent-protocol/errors.ts). AGENT_CALL goes by its errno (below).
  AGENT_OPTIONS: GrpcStatus.INVALID_ARGUMENT, // the request's values failed the host-side checks
  AGENT_CLOSED: GrpcStatus.UNAVAILABLE, // the pod's VM went away under the call
  AGENT_CONNECT: GrpcStatus.UNAVAILABLE,
  AGENT_BUSY: GrpcStatus.UNAVAILABLE,
  AGENT_ABORTED: GrpcStatus.CANCELLED,
  // The vmm room.
  QMP_CLOSED: GrpcStatus.UNAVAILABLE,
  VM_GONE: GrpcStatus.UNAVAILABLE,
  VM_NOT_FOUND: GrpcStatus.INTERNAL, // a VM directory frakti made is missing: never a client's id
  // The streaming room: too many URLs handed out and not yet opened.
  STREAM_REQUESTS_EXHAUSTED: GrpcStatus.RESOURCE_EXHAUSTED,
  // The network room: the node's CNI setup, not the request.
  CNI_CONFIG_INVALID: GrpcStatus.FAILED_PRECONDITION,
  CNI_PLUGIN_NOT_FOUND: GrpcStatus.FAILED_PRECONDITION,
  CNI_RESULT_INVALID: GrpcStatus.UNKNOWN,
  CNI_PLUGIN: GrpcStatus.UNKNOWN, // a plugin failed (IPAM exhausted, ...): containerd says UNKNOWN too
  CNI_BAD_REQUEST: GrpcStatus.INTERNAL, // built from our own ids: a bug
};

/**
 * Linux errnos an agent call can fail with, by what they say about the
 * request: a path, name or value in it that the guest refused.
 */
const AGENT_ERRNO: Record<number, GrpcStatus> = {
  1: GrpcStatus.INVALID_ARGUMENT, // EPERM: not allowed for what the spec asks
  2: GrpcStatus.INVALID_ARGUMENT, // ENOENT: a command or path that does not exist
  3: GrpcStatus.NOT_FOUND, // ESRCH: no such process
  7: GrpcStatus.INVALID_ARGUMENT, // E2BIG
  12: GrpcStatus.RESOURCE_EXHAUSTED, // ENOMEM
  13: GrpcStatus.INVALID_ARGUMENT, // EACCES: not executable, not readable
  20: GrpcStatus.INVALID_ARGUMENT, // ENOTDIR
  21: GrpcStatus.INVALID_ARGUMENT, // EISDIR
  22: GrpcStatus.INVALID_ARGUMENT, // EINVAL
  28: GrpcStatus.RESOURCE_EXHAUSTED, // ENOSPC
  34: GrpcStatus.INVALID_ARGUMENT, // ERANGE
  36: GrpcStatus.INVALID_ARGUMENT, // ENAMETOOLONG
  40: GrpcStatus.INVALID_ARGUMENT, // ELOOP
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

/** The status of a FraktiError by its own code and fields. */
function statusOf(err: FraktiError): GrpcStatus {
  // A registry's 404 means the image (or tag) does not exist.
  if (err.code === 'REGISTRY_ERROR' && err.fields.status === 404) return GrpcStatus.NOT_FOUND;
  // A registry that says it is overloaded or its backend is down: try again later.
  if (err.code === 'REGISTRY_ERROR' && [429, 502, 503, 504].includes(Number(err.fields.status))) return GrpcStatus.UNAVAILABLE;
  if (err.code === 'AGENT_CALL') return AGENT_ERRNO[Number(err.fields.errnum)] ?? GrpcStatus.INTERNAL;
  return EXACT[err.code] ?? BY_SUFFIX.find(([re]) => re.test(err.code))?.[1] ?? GrpcStatus.INTERNAL;
}

/** A system error that says the node ran out of disk, quota or file handles: no bug of ours. */
function outOfRoom(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'EMFILE' || code === 'ENFILE' || code === 'ENOMEM';
}

/** How deep a chain of causes is followed. */
const MAX_CAUSE_DEPTH = 8;

/**
 * Longest status message a client gets. The message travels in an HTTP/2
 * trailer: one that echoes a 1 MiB value from the request exceeds what the
 * peer takes for headers, and the call (with the connection's other calls:
 * kubelet has one) never finishes.
 */
export const MAX_STATUS_DETAILS = 2048;

function capped(details: string): string {
  return details.length > MAX_STATUS_DETAILS ? `${details.slice(0, MAX_STATUS_DETAILS)}... (${details.length - MAX_STATUS_DETAILS} more characters)` : details;
}

/** The gRPC status a client sees for an error a handler threw. */
export function toGrpcStatus(err: unknown): MappedStatus {
  const st = mapError(err);
  return { code: st.code, details: capped(st.details) };
}

function mapError(err: unknown): MappedStatus {
  if (err instanceof FraktiError) {
    // A room that wrapped a lower room's error to add context ("create
    // container c1: ...") as INTERNAL keeps its message; the status comes
    // from the first error down the chain that says what went wrong.
    let at: FraktiError = err;
    for (let depth = 0; at.code === 'INTERNAL' && at.cause instanceof FraktiError && depth < MAX_CAUSE_DEPTH; depth++) at = at.cause;
    const code = at.code === 'INTERNAL' && outOfRoom(at.cause) ? GrpcStatus.RESOURCE_EXHAUSTED : statusOf(at);
    return { code, details: err.message };
  }
  if (outOfRoom(err)) return { code: GrpcStatus.RESOURCE_EXHAUSTED, details: errorMessage(err) };
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
