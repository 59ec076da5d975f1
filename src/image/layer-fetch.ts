// One layer from a compressed stream to a committed snapshot in one pass:
// the bytes are hashed and counted (digest and size against the descriptor),
// written to the content store, and at the same time decompressed, hashed
// again (the diff id from the config) and unpacked. Only when every check
// passes do the blob and the layer directory get their real names.
import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorMessage } from '../lib/errors.js';
import type { ContentStore } from './content-store.js';
import { decompressor } from './decompress.js';
import { ContentInvalidError, ImageStoreExhaustedError, exhaustedOr } from './errors.js';
import { unpackLayer, type UnpackStats } from './layer-unpack.js';
import type { Compression, Descriptor } from './manifest.js';
import type { SnapshotStore } from './snapshot-store.js';

export interface LayerTarget {
  desc: Descriptor;
  diffId: string;
  compression: Compression;
}

export interface LayerStores {
  content: ContentStore;
  snapshots: SnapshotStore;
}

function hashing(onChunk?: (n: number) => void, limit?: { bytes: number; what: string }) {
  const hash = createHash('sha256');
  let n = 0;
  const t = new Transform({
    highWaterMark: 1024 * 1024,
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      if (limit && n > limit.bytes) return cb(new ContentInvalidError(`${limit.what} is longer than its descriptor's ${limit.bytes} bytes`));
      hash.update(chunk);
      onChunk?.(chunk.length);
      cb(null, chunk);
    },
  });
  return { t, digest: () => `sha256:${hash.digest('hex')}`, bytes: () => n };
}

/**
 * A failure of fetchLayer as what it means: a blob that ended short is
 * reported as such (not as the decompressor's "unexpected end of file"); a
 * zlib error means the blob is not what its media type says; a full disk is
 * the store's.
 */
function layerError(err: unknown, desc: Descriptor, endedAt: number | undefined): unknown {
  if (endedAt !== undefined && endedAt !== desc.size) return new ContentInvalidError(`layer ${desc.digest} is ${endedAt} bytes, descriptor says ${desc.size}`);
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === 'string' && code.startsWith('Z_')) return new ContentInvalidError(`layer ${desc.digest} does not decompress: ${errorMessage(err)}`, { digest: desc.digest });
  return exhaustedOr(err);
}

/**
 * Consumes `body` (the compressed blob). `keepBlob` false skips the content
 * store (the blob is already there and `body` reads it).
 */
export async function fetchLayer(body: Readable, target: LayerTarget, stores: LayerStores, keepBlob: boolean, onBytes?: (n: number) => void): Promise<UnpackStats> {
  const { desc, diffId } = target;
  const compressed = hashing(onBytes, { bytes: desc.size, what: `layer ${desc.digest}` });
  const uncompressed = hashing();
  // The directory first: its mkdir may find the disk full, and the blob file,
  // once made, must meet the pipeline (which listens for its errors) at once.
  const tmp = await stores.snapshots.prepare();
  const ingest = keepBlob ? await stores.content.ingest() : undefined;
  const decomp = decompressor(target.compression);
  /** Compressed bytes seen when `body` ended (undefined while it streams). */
  let endedAt: number | undefined;
  const parts: Promise<unknown>[] = [];
  try {
    // Two consumers of one stream: the blob file and the decompressor. pipe()
    // holds the source back for the slower of the two.
    const toFile = ingest ? pipeline(compressed.t, ingest.out) : Promise.resolve();
    const unpack = (async () => {
      compressed.t.pipe(decomp);
      decomp.on('error', (e) => uncompressed.t.destroy(e));
      decomp.pipe(uncompressed.t);
      return unpackLayer(uncompressed.t, tmp, { scratchDir: stores.snapshots.dir, sync: stores.snapshots.durable });
    })();
    const feed = pipeline(body, compressed.t).then(() => {
      endedAt = compressed.bytes();
    });
    parts.push(feed, toFile, unpack);
    const [, , stats] = await Promise.all([feed, toFile, unpack]);
    if (compressed.bytes() !== desc.size) throw new ContentInvalidError(`layer ${desc.digest} is ${compressed.bytes()} bytes, descriptor says ${desc.size}`);
    const actual = compressed.digest();
    if (actual !== desc.digest) throw new ContentInvalidError(`layer ${desc.digest} has digest ${actual}`, { expected: desc.digest, actual });
    const diff = uncompressed.digest();
    if (diff !== diffId) throw new ContentInvalidError(`layer ${desc.digest} unpacks to ${diff}, the image config says ${diffId}`, { expected: diffId, actual: diff });
    if (ingest) await stores.content.commitIngest(ingest, desc.digest);
    await stores.snapshots.commit(tmp, diffId);
    return stats;
  } catch (err) {
    // Destroyed with an error (each one listened to): a stream that had its
    // whole input but not yet emitted 'end' would, destroyed without one,
    // leave the pipeline reading it waiting for ever.
    const stop = new Error(`layer ${desc.digest}: stopped`);
    for (const s of [body, compressed.t, decomp, uncompressed.t, ...(ingest ? [ingest.out] : [])]) s.on('error', () => {}).destroy(stop);
    // Every part stops before the files are removed: an unpack still writing would leave some behind.
    const settled = await Promise.allSettled(parts);
    await ingest?.abort();
    await stores.snapshots.discard(tmp);
    throw layerError(fullDiskFirst(err, settled), desc, endedAt);
  }
}

/**
 * A full disk fails one writer; the other parts then only see their streams
 * closed under them ("Premature close", which reads like the network and
 * would be retried): when any part ran out of room, that is the cause.
 */
function fullDiskFirst(err: unknown, settled: PromiseSettledResult<unknown>[]): unknown {
  for (const s of settled) if (s.status === 'rejected' && exhaustedOr(s.reason) instanceof ImageStoreExhaustedError) return s.reason;
  return err;
}
