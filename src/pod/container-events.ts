// Container lifecycle events for CRI GetContainerEvents (kubelet's evented
// PLEG): CREATED, STARTED, STOPPED, DELETED, derived from the container
// store's changes, so that every path that changes a container (create,
// start, exit, a dead VM, recovery, remove) reports it.
//
// Each subscriber has a bounded queue: one that does not keep up is cut
// off (its next read says so) instead of growing the daemon's memory.
import type { ContainerRecordStatus } from './types.js';

export type ContainerEventType = 'CREATED' | 'STARTED' | 'STOPPED' | 'DELETED';

export interface ContainerEvent {
  containerId: string;
  podId: string;
  type: ContainerEventType;
  /** When it happened, ms since the epoch. */
  at: number;
}

/** Events one subscriber may have waiting before it is cut off. */
export const DEFAULT_MAX_QUEUED_EVENTS = 1024;
/** Subscribers at once (kubelet holds one). */
export const MAX_SUBSCRIBERS = 64;

export class EventSubscription {
  private readonly queue: ContainerEvent[] = [];
  private waiter: (() => void) | undefined;
  /** Why the subscription ended: 'overflow' (too slow), 'closed' (by us or the hub). */
  ended: 'overflow' | 'closed' | undefined;

  constructor(
    private readonly maxQueued: number,
    private readonly onClose: (s: EventSubscription) => void,
  ) {}

  /** @internal */
  offer(e: ContainerEvent): void {
    if (this.ended) return;
    if (this.queue.length >= this.maxQueued) {
      this.queue.length = 0;
      this.end('overflow');
      return;
    }
    this.queue.push(e);
    this.wake();
  }

  /** The next event; undefined once the subscription ended (see `ended`) or the signal fired. */
  async next(signal?: AbortSignal): Promise<ContainerEvent | undefined> {
    for (;;) {
      if (this.queue.length > 0) return this.queue.shift();
      if (this.ended || signal?.aborted) return undefined;
      await new Promise<void>((resolve) => {
        const done = () => {
          signal?.removeEventListener('abort', done);
          this.waiter = undefined;
          resolve();
        };
        this.waiter = done;
        signal?.addEventListener('abort', done, { once: true });
      });
    }
  }

  close(): void {
    this.end('closed');
  }

  private end(why: 'overflow' | 'closed'): void {
    if (this.ended) return;
    this.ended = why;
    this.onClose(this);
    this.wake();
  }

  private wake(): void {
    this.waiter?.();
  }
}

export class ContainerEventHub {
  private readonly subs = new Set<EventSubscription>();

  /** A new subscriber, or undefined when MAX_SUBSCRIBERS are already listening. */
  subscribe(maxQueued = DEFAULT_MAX_QUEUED_EVENTS): EventSubscription | undefined {
    if (this.subs.size >= MAX_SUBSCRIBERS) return undefined;
    const s = new EventSubscription(maxQueued, (x) => this.subs.delete(x));
    this.subs.add(s);
    return s;
  }

  get subscribers(): number {
    return this.subs.size;
  }

  emit(e: ContainerEvent): void {
    for (const s of [...this.subs]) s.offer(e);
  }

  /**
   * The events a change of a container's record means: a new record is
   * CREATED, a move to RUNNING is STARTED, a move to EXITED is STOPPED, a
   * record gone is DELETED (a container deleted while it ran also stopped).
   */
  recordChanged(id: string, podId: string, before: ContainerRecordStatus | undefined, after: ContainerRecordStatus | undefined): void {
    const at = Date.now();
    const send = (type: ContainerEventType) => this.emit({ containerId: id, podId, type, at });
    if (!before && after) send('CREATED');
    if (after && after.state !== before?.state) {
      if (after.state === 'RUNNING') send('STARTED');
      if (after.state === 'EXITED') send('STOPPED');
    }
    if (before && !after) {
      if (before.state === 'RUNNING') send('STOPPED');
      send('DELETED');
    }
  }
}
