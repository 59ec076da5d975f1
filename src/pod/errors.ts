import { FraktiError, type ErrorFields } from '../lib/errors.js';

/**
 * Errors of the pod room. Codes map to gRPC statuses in src/cri:
 * NOT_FOUND, ALREADY_EXISTS, INVALID_ARGUMENT, FAILED_PRECONDITION, DEADLINE_EXCEEDED.
 */
export type PodErrorCode = 'NOT_FOUND' | 'ALREADY_EXISTS' | 'INVALID_ARGUMENT' | 'FAILED_PRECONDITION' | 'DEADLINE_EXCEEDED' | 'UNAVAILABLE' | 'RESOURCE_EXHAUSTED' | 'INTERNAL';

export class PodError extends FraktiError {
  declare readonly code: PodErrorCode;
  constructor(code: PodErrorCode, message: string, fields: ErrorFields = {}, cause?: unknown) {
    super(code, message, fields, cause === undefined ? undefined : { cause });
  }
}
