// What an Exec, Attach or PortForward call asked for, kept under a random
// token until the client comes to the streaming URL: once, within a minute
// (as kubelet's own streaming server keeps them). The number waiting is
// bounded; expired ones make room.
import { randomBytes } from 'node:crypto';
import { StreamingError } from './errors.js';

export type StreamRequest =
  | { kind: 'exec'; containerId: string; cmd: string[]; tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean }
  | { kind: 'attach'; containerId: string; tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean }
  | { kind: 'portforward'; podId: string; ports: number[] };

export const STREAM_REQUEST_TTL_MS = 60_000;
export const MAX_WAITING_STREAM_REQUESTS = 1000;
const TOKEN_BYTES = 18;

export class StreamRequests {
  private readonly waiting = new Map<string, { req: StreamRequest; expires: number }>();

  constructor(
    private readonly ttlMs = STREAM_REQUEST_TTL_MS,
    private readonly max = MAX_WAITING_STREAM_REQUESTS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Stores the request; the token is URL-safe. */
  insert(req: StreamRequest): string {
    if (this.waiting.size >= this.max) this.sweep();
    if (this.waiting.size >= this.max) {
      throw new StreamingError('STREAM_REQUESTS_EXHAUSTED', `${this.max} streaming requests are already waiting for their client; try again in a minute`, { max: this.max });
    }
    const token = randomBytes(TOKEN_BYTES).toString('base64url');
    this.waiting.set(token, { req, expires: this.now() + this.ttlMs });
    return token;
  }

  /** The request behind a token, once; undefined when unknown or expired. */
  consume(token: string): StreamRequest | undefined {
    const e = this.waiting.get(token);
    if (!e) return undefined;
    this.waiting.delete(token);
    return e.expires > this.now() ? e.req : undefined;
  }

  get size(): number {
    return this.waiting.size;
  }

  private sweep(): void {
    const now = this.now();
    for (const [t, e] of this.waiting) if (e.expires <= now) this.waiting.delete(t);
  }
}
