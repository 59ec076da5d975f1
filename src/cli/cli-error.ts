// Exit codes of the CLI: 2 for a wrong call, 1 for a failure of the work.
import { FraktiError } from '../lib/errors.js';

export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export class UsageError extends FraktiError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

export function exitCodeOf(err: unknown): number {
  return err instanceof UsageError ? EXIT_USAGE : EXIT_FAILURE;
}
