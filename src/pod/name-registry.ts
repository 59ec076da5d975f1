// Name reservation: a pod's or container's name (built from its CRI
// metadata) belongs to one id at a time. reserve() is idempotent for the
// same id; another id gets ALREADY_EXISTS naming the holder.
import { PodError } from './errors.js';

export class NameRegistry {
  private readonly byName = new Map<string, string>();

  constructor(private readonly kind: 'pod' | 'container') {}

  reserve(name: string, id: string): void {
    const holder = this.byName.get(name);
    if (holder !== undefined && holder !== id) {
      throw new PodError('ALREADY_EXISTS', `${this.kind} name "${name}" is reserved by ${this.kind} ${holder}`, { name, holder });
    }
    this.byName.set(name, id);
  }

  /** Releases the name if that id holds it. */
  release(name: string, id: string): void {
    if (this.byName.get(name) === id) this.byName.delete(name);
  }

  holder(name: string): string | undefined {
    return this.byName.get(name);
  }
}
