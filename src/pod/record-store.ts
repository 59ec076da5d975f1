// Persistent records, one directory per object under a root:
//   ROOT/<id>/meta.json    immutable metadata, written once at creation
//   ROOT/<id>/status.json  mutable status, replaced atomically
// update(fn) commits only if fn succeeds, so a failed step never leaves a
// half-changed status. A crash at any point leaves the old or the new file.
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { errorMessage } from '../lib/errors.js';
import { failPoint } from '../lib/fail-point.js';
import { logger } from '../lib/log.js';
import { PodError } from './errors.js';

const log = logger('store');
const ID_RE = /^[0-9a-f]{64}$/;

export interface StoredRecord<M, S> {
  meta: M;
  status: S;
}

/** Told after a record is created (before undefined), updated, or deleted (after undefined). */
export type RecordObserver<M, S> = (meta: M, before: S | undefined, after: S | undefined) => void;

export class RecordStore<M extends { id: string }, S> {
  private readonly records = new Map<string, StoredRecord<M, S>>();
  /** Changes are reported here once they are on disk (loading reports nothing). */
  observer: RecordObserver<M, S> | undefined;
  // One status update at a time per id: read-modify-write must not interleave.
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(
    private readonly root: string,
    private readonly kind: string,
  ) {}

  /** Loads every record from disk; a record whose files are unreadable is reported and skipped. */
  async load(): Promise<{ loaded: number; broken: string[] }> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    const broken: string[] = [];
    for (const id of await readdir(this.root)) {
      if (!ID_RE.test(id)) continue;
      try {
        const meta = JSON.parse(await readFile(join(this.root, id, 'meta.json'), 'utf8')) as M;
        const status = JSON.parse(await readFile(join(this.root, id, 'status.json'), 'utf8')) as S;
        if (meta.id !== id) throw new Error(`meta.json holds id ${meta.id}`);
        this.records.set(id, { meta, status });
      } catch (err) {
        broken.push(`${id}: ${errorMessage(err)}`);
        log.error(`unreadable ${this.kind} record`, { id, err: errorMessage(err) });
      }
    }
    return { loaded: this.records.size, broken };
  }

  async create(meta: M, status: S): Promise<void> {
    if (this.records.has(meta.id)) throw new PodError('ALREADY_EXISTS', `${this.kind} ${meta.id} already exists`);
    const dir = join(this.root, meta.id);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(join(dir, 'status.json'), JSON.stringify(status), 0o600);
    failPoint(`${this.kind} record: status written, meta not yet`);
    // meta.json last: a record without it is not loaded, so a crash here leaves nothing visible.
    await writeFileAtomic(join(dir, 'meta.json'), JSON.stringify(meta), 0o600);
    this.records.set(meta.id, { meta, status });
    this.observer?.(meta, undefined, status);
    failPoint(`${this.kind} record: created`);
  }

  get(id: string): StoredRecord<M, S> | undefined {
    return this.records.get(id);
  }

  /** The record, or NOT_FOUND naming the kind and id. */
  must(id: string): StoredRecord<M, S> {
    const r = this.records.get(id);
    if (!r) throw new PodError('NOT_FOUND', `${this.kind} ${id} not found`, { id });
    return r;
  }

  list(): StoredRecord<M, S>[] {
    return [...this.records.values()];
  }

  /** Replaces the status with fn(old); nothing changes if fn throws or the write fails. */
  async update(id: string, fn: (s: S) => S | Promise<S>): Promise<S> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const run = prev.then(async () => {
      const r = this.must(id);
      const next = await fn(structuredClone(r.status));
      await writeFileAtomic(join(this.root, id, 'status.json'), JSON.stringify(next), 0o600);
      const before = r.status;
      r.status = next;
      this.observer?.(r.meta, before, next);
      failPoint(`${this.kind} record: updated`);
      return next;
    });
    const settled = run.catch(() => {});
    this.locks.set(id, settled);
    try {
      return await run;
    } finally {
      if (this.locks.get(id) === settled) this.locks.delete(id);
    }
  }

  async delete(id: string): Promise<void> {
    // meta.json first: from here on the record does not load again, whatever is left of its directory.
    await rm(join(this.root, id, 'meta.json'), { force: true });
    failPoint(`${this.kind} record: meta removed, folder not yet`);
    await rm(join(this.root, id), { recursive: true, force: true });
    const gone = this.records.get(id);
    this.records.delete(id);
    this.locks.delete(id);
    if (gone) this.observer?.(gone.meta, gone.status, undefined);
  }
}
