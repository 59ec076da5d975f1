// The streams a client opens on one SPDY connection, queued until the
// protocol handler asks for them (they may arrive before it is ready).
import type { SpdyStream } from './spdy-connection.js';

export class StreamCollector {
  private readonly queued: SpdyStream[] = [];
  private waiter: ((s: SpdyStream | undefined) => void) | undefined;
  private ended = false;

  add = (s: SpdyStream): void => {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w(s);
    } else this.queued.push(s);
  };

  /** No more streams will come (the connection closed). */
  end(): void {
    this.ended = true;
    this.waiter?.(undefined);
    this.waiter = undefined;
  }

  /** The next stream, or undefined when the connection closed or the deadline (if any) passed. */
  next(deadline?: number): Promise<SpdyStream | undefined> {
    const s = this.queued.shift();
    if (s) return Promise.resolve(s);
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const timer =
        deadline === undefined
          ? undefined
          : setTimeout(() => {
              this.waiter = undefined;
              resolve(undefined);
            }, Math.max(0, deadline - Date.now()));
      this.waiter = (got) => {
        clearTimeout(timer);
        resolve(got);
      };
    });
  }
}
