// Base error of every frakti module: a stable machine-readable `code`, a
// message that reads well on one line, and structured fields for logs.

export interface ErrorFields {
  [key: string]: unknown;
}

export class FraktiError extends Error {
  readonly code: string;
  readonly fields: ErrorFields;

  constructor(code: string, message: string, fields: ErrorFields = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.fields = fields;
  }
}

/** The message of anything thrown, for one-line reports. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Node system errors carry an errno code such as ENOENT. */
export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}
