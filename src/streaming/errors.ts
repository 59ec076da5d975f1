// Errors of the streaming room that a CRI client sees through the RPC that
// handed out the URL.
import { FraktiError, type ErrorFields } from '../lib/errors.js';

export type StreamingErrorCode = 'STREAM_REQUESTS_EXHAUSTED';

export class StreamingError extends FraktiError {
  declare readonly code: StreamingErrorCode;
  constructor(code: StreamingErrorCode, message: string, fields: ErrorFields = {}) {
    super(code, message, fields);
  }
}
