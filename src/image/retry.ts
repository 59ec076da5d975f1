// Retries with exponential backoff and jitter for transient failures.
import { setTimeout as sleep } from 'node:timers/promises';
import { RegistryError, RegistryUnreachableError } from './errors.js';

/** No single wait is longer than this, whatever Retry-After says. */
export const MAX_BACKOFF_MS = 10_000;

const TRANSIENT_ERRNO = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);
const TRANSIENT_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);

/** An error worth another attempt: the network hiccuped or the server was busy. */
export class TransientError extends RegistryError {
  readonly retryAfterMs: number | undefined;
  constructor(message: string, fields: Record<string, unknown> & { status?: number } = {}, cause?: unknown, retryAfterMs?: number) {
    super(message, fields, cause);
    this.retryAfterMs = retryAfterMs;
  }
}

export function isTransientStatus(status: number): boolean {
  return TRANSIENT_STATUS.has(status);
}

export function isTransient(err: unknown): boolean {
  if (err instanceof TransientError) return true;
  if (err instanceof RegistryUnreachableError) return err.transient;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code && TRANSIENT_ERRNO.has(code)) return true;
  return /socket hang up|premature close|aborted/i.test(String((err as Error | undefined)?.message ?? ''));
}

export interface RetryPolicy {
  maxRetries: number;
  baseDelayMs: number;
  signal?: AbortSignal;
  /** Told before each wait; for logs. */
  onRetry?: (attempt: number, delayMs: number, err: unknown) => void;
}

export function backoffMs(attempt: number, baseDelayMs: number): number {
  const exp = baseDelayMs * 2 ** attempt;
  return Math.min(MAX_BACKOFF_MS, Math.round(exp * (0.5 + Math.random())));
}

/** Runs fn; on a transient failure waits and runs it again, at most maxRetries more times. */
export async function withRetry<T>(policy: RetryPolicy, fn: (attempt: number) => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= policy.maxRetries || !isTransient(err) || policy.signal?.aborted) throw err;
      const hinted = err instanceof TransientError ? err.retryAfterMs : undefined;
      const delay = hinted !== undefined ? Math.min(MAX_BACKOFF_MS, hinted) : backoffMs(attempt, policy.baseDelayMs);
      policy.onRetry?.(attempt + 1, delay, err);
      await sleep(delay, undefined, policy.signal ? { signal: policy.signal } : {});
    }
  }
}
