// Errors of the vmm room. Each has a stable code and a one-line message.
import { FraktiError, type ErrorFields } from '../lib/errors.js';

/** QEMU answered a command with {"error": {"class", "desc"}}. */
export class QmpCommandError extends FraktiError {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super('QMP_COMMAND', `QMP ${command}: ${errorClass}: ${desc}`, { command, errorClass });
  }
}

/** The peer broke the protocol (garbage, over-long line, bad greeting). */
export class QmpProtocolError extends FraktiError {
  constructor(message: string, fields: ErrorFields = {}) {
    super('QMP_PROTOCOL', `QMP protocol error: ${message}`, fields);
  }
}

export class QmpClosedError extends FraktiError {
  constructor(message = 'QMP connection closed') {
    super('QMP_CLOSED', message);
  }
}

export class QmpTimeoutError extends FraktiError {
  constructor(what: string, timeoutMs: number) {
    super('QMP_TIMEOUT', `QMP ${what}: no answer within ${timeoutMs} ms`, { timeoutMs });
  }
}

export class VmError extends FraktiError {
  constructor(code: string, message: string, fields: ErrorFields = {}, cause?: unknown) {
    super(code, message, fields, cause === undefined ? undefined : { cause });
  }
}
