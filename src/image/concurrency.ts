// Small concurrency helpers: single-flight (callers of the same key share one
// run), a bounded pool, and a reader/writer lock (pulls read, GC writes).

/**
 * Like SingleFlight, but the shared work gets a signal of its own that is
 * aborted only once every caller has gone away: a caller that gives up
 * (kubelet's pull timeout) does not cancel the pull for the one that retries.
 */
export class SharedFlight<T> {
  private readonly inFlight = new Map<string, { promise: Promise<T>; controller: AbortController; callers: number }>();

  run(key: string, fn: (signal: AbortSignal) => Promise<T>, callerSignal?: AbortSignal): Promise<T> {
    let entry = this.inFlight.get(key);
    // Work that every caller left is being cancelled: a new caller starts afresh.
    if (!entry || entry.controller.signal.aborted) {
      const controller = new AbortController();
      const e = { controller, callers: 0, promise: Promise.resolve() as unknown as Promise<T> };
      e.promise = fn(controller.signal).finally(() => {
        if (this.inFlight.get(key) === e) this.inFlight.delete(key);
      });
      this.inFlight.set(key, e);
      entry = e;
    }
    const e = entry;
    e.callers++;
    if (!callerSignal) return e.promise.finally(() => e.callers--);
    return new Promise<T>((resolve, reject) => {
      let left = false;
      const leave = () => {
        if (left) return;
        left = true;
        callerSignal.removeEventListener('abort', onAbort);
        if (--e.callers === 0) {
          e.controller.abort();
          if (this.inFlight.get(key) === e) this.inFlight.delete(key);
        }
      };
      const onAbort = () => {
        leave();
        reject(callerSignal.reason instanceof Error ? callerSignal.reason : new Error('aborted'));
      };
      if (callerSignal.aborted) return onAbort();
      callerSignal.addEventListener('abort', onAbort, { once: true });
      e.promise.then(
        (v) => {
          leave();
          resolve(v);
        },
        (err) => {
          leave();
          reject(err);
        },
      );
    });
  }

  get size(): number {
    return this.inFlight.size;
  }
}

export class SingleFlight<T> {
  private readonly inFlight = new Map<string, Promise<T>>();

  run(key: string, fn: () => Promise<T>): Promise<T> {
    return this.join(key, fn).promise;
  }

  /** Like run; also says whether the work was already under way for someone else. */
  join(key: string, fn: () => Promise<T>): { promise: Promise<T>; joined: boolean } {
    const existing = this.inFlight.get(key);
    if (existing) return { promise: existing, joined: true };
    const p = fn().finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return { promise: p, joined: false };
  }

  get size(): number {
    return this.inFlight.size;
  }
}

/** Runs fn over items with at most `limit` at once; the first failure rejects (the rest still settle). */
export async function mapBounded<I, O>(items: I[], limit: number, fn: (item: I, index: number) => Promise<O>): Promise<O[]> {
  const out: O[] = new Array(items.length);
  let next = 0;
  let failed = false;
  let firstErr: unknown;
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!, i);
      } catch (err) {
        if (!failed) firstErr = err;
        failed = true;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed) throw firstErr;
  return out;
}

export class RwLock {
  private readers = 0;
  private writer = false;
  private readonly waiting: { write: boolean; go: () => void }[] = [];

  private pump(): void {
    while (this.waiting.length) {
      const w = this.waiting[0]!;
      if (w.write ? this.writer || this.readers > 0 : this.writer) return;
      this.waiting.shift();
      if (w.write) this.writer = true;
      else this.readers++;
      w.go();
    }
  }

  private acquire(write: boolean): Promise<() => void> {
    return new Promise((resolve) => {
      this.waiting.push({
        write,
        go: () =>
          resolve(() => {
            if (write) this.writer = false;
            else this.readers--;
            this.pump();
          }),
      });
      this.pump();
    });
  }

  async read<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire(false);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  async write<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire(true);
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

/** Serialises async sections (metadata updates). */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.tail.then(fn, fn);
    this.tail = p.catch(() => {});
    return p;
  }
}
