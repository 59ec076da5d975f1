// Makes an unpacked layer durable before it is committed. Without it a power
// loss soon after a pull leaves the layer's directory under its real name,
// recorded in images.json, with empty files: the data was still in the page
// cache (containerd's "zero-length files after power failure").
//
// Each file is fsynced as soon as it is written, in the background, a few at
// a time (their writeback overlaps the unpack of the next entries and
// concurrent syncs share journal commits); the unpack waits only when
// MAX_SYNCS_IN_FLIGHT are under way. Directories are synced last, after
// every other change to the layer: on journaling file systems (ext4, xfs)
// that commit also carries the metadata set after a file's own sync
// (xattrs, whiteouts, directory times).
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir } from '../lib/atomic-file.js';
import { mapBounded } from './concurrency.js';

/**
 * Syncs at once. fsync holds one of libuv's four threads while it waits for
 * the disk; two leave the other two to the unpack's writes and gunzip.
 */
export const MAX_SYNCS_IN_FLIGHT = 2;
/** Directory syncs at once (each is cheap once the files' data is on disk). */
const DIR_SYNCS_IN_FLIGHT = 2;

export class LayerSyncer {
  private readonly inFlight = new Set<Promise<void>>();
  private failure: { err: unknown } | undefined;

  /** Takes `fh` (a file just written): syncs and closes it in the background; waits while the pool is full. */
  async add(fh: FileHandle): Promise<void> {
    while (this.inFlight.size >= MAX_SYNCS_IN_FLIGHT) await Promise.race(this.inFlight);
    if (this.failure) {
      await fh.close();
      throw this.failure.err;
    }
    const p: Promise<void> = fh
      .sync()
      .finally(() => fh.close())
      .catch((err: unknown) => {
        // The first failure (EIO, ENOSPC of delayed allocation) fails the layer.
        this.failure ??= { err };
      })
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  /** Waits for every file sync; throws the first failure. Always leaves no handle open. */
  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
    if (this.failure) throw this.failure.err;
  }

  /** Syncs the files still under way, then the directories (relative to root, '' is root). */
  async finish(root: string, dirs: Iterable<string>): Promise<void> {
    await this.drain();
    await mapBounded([...dirs], DIR_SYNCS_IN_FLIGHT, (rel) => fsyncDir(join(root, rel)));
  }
}
