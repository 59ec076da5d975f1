// tar-stream insists on the padding that rounds an entry's data up to 512
// bytes, but a layer may stop right after its last entry's data, with
// neither that padding nor the two zero blocks that close an archive:
// `umoci insert` writes layers so, and Go's archive/tar (containerd's reader)
// takes such a stream as ended (reading the padding gives io.EOF at zero
// bytes). This Transform goes in front of tar-stream's extract. It follows
// the archive's structure with tar-stream's own header decoder, so both agree
// on every boundary, and when the input stops right after an entry's data it
// adds the padding and the end blocks. A stop anywhere else (inside a header,
// inside an entry's data, part-way through the padding) is refused, as Go
// refuses it (io.ErrUnexpectedEOF).
//
// Memory: one 512-byte header block and at most one PAX header's records.
import { Transform } from 'node:stream';
import { errorMessage } from '../lib/errors.js';
import { ContentInvalidError } from './errors.js';
import { MAX_PAX_BYTES, tarStreamHeaders } from './tar-pax.js';

const BLOCK = 512;
/** Headers that describe the next entry instead of being one. */
const PAX_TYPES = new Set(['pax-header', 'pax-global-header']);
const META_TYPES = new Set([...PAX_TYPES, 'gnu-long-path', 'gnu-long-link-path']);
const headers = tarStreamHeaders();

type Pax = Record<string, string>;

function malformed(why: string): ContentInvalidError {
  return new ContentInvalidError(`layer is not a complete tar archive: ${why}`);
}

/** Where the input is in the archive's structure, block by block. */
class TarFrames {
  private phase: 'header' | 'body' | 'pad' = 'header';
  private readonly block = Buffer.alloc(BLOCK);
  private filled = 0;
  /** Bytes left of the current body, or of its padding. */
  private left = 0;
  private entry = '';
  private size = 0;
  /** The records of a PAX header being read (undefined for any other body). */
  private paxChunks: Buffer[] | undefined;
  private paxType = '';
  private pax: Pax | null = null;
  private paxGlobal: Pax | null = null;

  /** Follows one chunk; throws ContentInvalidError at a header tar-stream would refuse too. */
  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) off = this.phase === 'header' ? this.fillHeader(chunk, off) : this.skip(chunk, off);
  }

  /** What completes an input that ends here, or throws if it cannot end here. */
  end(): Buffer {
    if (this.phase === 'header') {
      if (this.filled > 0) throw malformed(`it ends inside a header (${this.filled} of ${BLOCK} bytes)`);
      return Buffer.alloc(0);
    }
    if (this.phase === 'body') throw malformed(`entry '${this.entry}' is cut short: ${this.size - this.left} of ${this.size} bytes`);
    if (this.left !== padding(this.size)) throw malformed(`it ends part-way through the padding after '${this.entry}'`);
    return Buffer.alloc(this.left + 2 * BLOCK);
  }

  private fillHeader(chunk: Buffer, off: number): number {
    const n = Math.min(BLOCK - this.filled, chunk.length - off);
    chunk.copy(this.block, this.filled, off, off + n);
    this.filled += n;
    if (this.filled === BLOCK) {
      this.filled = 0;
      this.onHeader();
    }
    return off + n;
  }

  private onHeader(): void {
    let h: ReturnType<typeof headers.decode>;
    try {
      h = headers.decode(this.block, 'utf-8', false);
    } catch (err) {
      throw malformed(errorMessage(err));
    }
    if (!h) return; // a zero block: the end marker, or the blocking some tar writers add
    const meta = h.type !== null && META_TYPES.has(h.type);
    this.paxType = h.type ?? '';
    this.paxChunks = h.type !== null && PAX_TYPES.has(h.type) ? [] : undefined;
    this.entry = h.name;
    this.size = meta ? h.size : this.entrySize(h);
    if (!(this.size >= 0)) throw malformed(`entry '${h.name}' has no valid size`);
    if (this.paxChunks && this.size > MAX_PAX_BYTES) throw malformed(`PAX header of ${this.size} bytes is larger than ${MAX_PAX_BYTES}`);
    this.phase = 'body';
    this.left = this.size;
    if (this.left === 0) this.next();
  }

  /** The data size of a real entry, as tar-stream reads it: a PAX size wins; a directory has none. */
  private entrySize(h: { size: number; type: string | null }): number {
    const paxSize = this.pax?.size;
    this.pax = null;
    if (h.type === 'directory') return 0;
    return paxSize ? parseInt(paxSize, 10) : h.size;
  }

  private skip(chunk: Buffer, off: number): number {
    const n = Math.min(this.left, chunk.length - off);
    if (this.phase === 'body' && this.paxChunks) this.paxChunks.push(Buffer.from(chunk.subarray(off, off + n)));
    this.left -= n;
    if (this.left === 0) this.next();
    return off + n;
  }

  /** The current body or padding is complete: on to the padding, or the next header. */
  private next(): void {
    if (this.phase === 'body') {
      if (this.paxChunks) this.onPax(Buffer.concat(this.paxChunks));
      this.paxChunks = undefined;
      this.phase = 'pad';
      this.left = padding(this.size);
      if (this.left > 0) return;
    }
    this.phase = 'header';
  }

  /** Keeps PAX records as tar-stream does: a global set, merged into the next entry's own set. */
  private onPax(buf: Buffer): void {
    let records: Pax;
    try {
      records = headers.decodePax(buf);
    } catch (err) {
      throw malformed(errorMessage(err));
    }
    if (this.paxType === 'pax-global-header') this.paxGlobal = records;
    else this.pax = this.paxGlobal === null ? records : { ...this.paxGlobal, ...records };
  }
}

function padding(size: number): number {
  const rest = size % BLOCK;
  return rest === 0 ? 0 : BLOCK - rest;
}

/** A pass-through that completes an archive ending right after an entry's data, and refuses a cut-off one. */
export function completeTarEnd(): Transform {
  const frames = new TarFrames();
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      try {
        frames.push(chunk);
        cb(null, chunk);
      } catch (err) {
        cb(err as Error);
      }
    },
    flush(cb) {
      try {
        const tail = frames.end();
        cb(null, tail.length > 0 ? tail : undefined);
      } catch (err) {
        cb(err as Error);
      }
    },
  });
}
