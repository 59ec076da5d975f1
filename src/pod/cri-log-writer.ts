// The CRI container log format, as kubelet reads it:
//   <RFC3339Nano timestamp> <stdout|stderr> <P|F> <message>\n
// A line longer than the maximum is cut into P (partial) pieces ending with
// an F (full) piece; a stream that ends without a newline ends with F.
// Each stream keeps its own partial line, bounded by the maximum.
import { open, type FileHandle } from 'node:fs/promises';

export type LogStream = 'stdout' | 'stderr';

/** The writer for a container's CRI log; an empty path means the container keeps none. */
export function openContainerLog(path: string): Promise<CriLogWriter> {
  return path ? CriLogWriter.open(path) : Promise.resolve(CriLogWriter.discarding());
}

/** containerd's default max_container_log_line_size. */
export const DEFAULT_MAX_LOG_LINE_BYTES = 16 * 1024;

export interface CriLogWriterOptions {
  /** A longer line is split into P pieces of this size. Default 16 KiB. */
  maxLineBytes?: number;
  /** Timestamps; tests pass a fixed clock. Default: now. */
  now?: () => Date;
}

export class CriLogWriter {
  private fh?: FileHandle;
  private readonly partial: Record<LogStream, Buffer[]> = { stdout: [], stderr: [] };
  private readonly partialBytes: Record<LogStream, number> = { stdout: 0, stderr: 0 };
  private readonly taken: Record<LogStream, number> = { stdout: 0, stderr: 0 };
  private readonly maxLineBytes: number;
  private readonly now: () => Date;
  private discard = false;
  // Writes are serialised so lines never interleave, also across reopen().
  private chain: Promise<void> = Promise.resolve();

  private constructor(
    readonly path: string,
    opts: CriLogWriterOptions,
  ) {
    this.maxLineBytes = opts.maxLineBytes ?? DEFAULT_MAX_LOG_LINE_BYTES;
    this.now = opts.now ?? (() => new Date());
    if (!Number.isInteger(this.maxLineBytes) || this.maxLineBytes < 1) throw new Error('maxLineBytes must be a positive integer');
  }

  static async open(path: string, opts: CriLogWriterOptions = {}): Promise<CriLogWriter> {
    const w = new CriLogWriter(path, opts);
    w.fh = await open(path, 'a', 0o640);
    return w;
  }

  /**
   * A writer for a container with no log file: output is counted as stored
   * at once and dropped, so the agent is never held up waiting for it.
   */
  static discarding(): CriLogWriter {
    const w = new CriLogWriter('', {});
    w.discard = true;
    return w;
  }

  /**
   * Appends output of one stream; resolves once it is written (the caller's
   * backpressure) with how many bytes given to this stream are now in the
   * file: all but an unfinished line, which waits in memory for its end.
   */
  write(stream: LogStream, data: Buffer): Promise<number> {
    this.taken[stream] += data.length;
    if (this.discard) return Promise.resolve(this.taken[stream]);
    const lines = this.format(stream, data);
    const stored = this.taken[stream] - this.partialBytes[stream];
    if (lines.length === 0) return this.chain.then(() => stored);
    return this.enqueue(Buffer.concat(lines)).then(() => stored);
  }

  /** The stream ended: a pending partial line is written as F. Resolves like write(). */
  end(stream: LogStream): Promise<number> {
    const stored = this.taken[stream];
    if (this.partialBytes[stream] === 0) return this.chain.then(() => stored);
    const rest = Buffer.concat(this.partial[stream]);
    this.partial[stream] = [];
    this.partialBytes[stream] = 0;
    return this.enqueue(this.line(stream, 'F', rest)).then(() => stored);
  }

  /** Bytes given to write() for this stream so far. */
  takenBytes(stream: LogStream): number {
    return this.taken[stream];
  }

  /** Opens the path anew (after kubelet rotated the file away). */
  reopen(): Promise<void> {
    if (this.discard) return Promise.resolve();
    return this.serial(async () => {
      await this.fh?.close();
      this.fh = await open(this.path, 'a', 0o640);
    });
  }

  async close(): Promise<void> {
    await this.end('stdout');
    await this.end('stderr');
    await this.serial(async () => {
      await this.fh?.close();
      this.fh = undefined;
    });
  }

  private enqueue(buf: Buffer): Promise<void> {
    return this.serial(async () => {
      if (!this.fh) throw new Error(`log ${this.path} is closed`);
      await this.fh.write(buf);
    });
  }

  private serial(fn: () => Promise<void>): Promise<void> {
    const next = this.chain.then(fn);
    this.chain = next.catch(() => {});
    return next;
  }

  private line(stream: LogStream, tag: 'P' | 'F', msg: Buffer): Buffer {
    return Buffer.concat([Buffer.from(`${this.now().toISOString()} ${stream} ${tag} `), msg, Buffer.from('\n')]);
  }

  private format(stream: LogStream, data: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let start = 0;
    while (start < data.length) {
      const room = this.maxLineBytes - this.partialBytes[stream];
      const nl = data.indexOf(0x0a, start);
      const seg = (nl < 0 ? data.length : nl) - start;
      if (nl >= 0 && seg <= room) {
        // The line ends within the maximum: one F piece with what was pending.
        out.push(this.line(stream, 'F', stripCr(this.takePartial(stream, data.subarray(start, nl)))));
        start = nl + 1;
      } else if (seg > room) {
        // The line is longer than the maximum: its first maxLineBytes go out as a P piece.
        out.push(this.line(stream, 'P', this.takePartial(stream, data.subarray(start, start + room))));
        start += room;
      } else {
        // No newline yet and room left: keep it for the next chunk.
        this.partial[stream].push(Buffer.from(data.subarray(start)));
        this.partialBytes[stream] += data.length - start;
        start = data.length;
      }
    }
    return out;
  }

  private takePartial(stream: LogStream, tail: Buffer): Buffer {
    const msg = this.partialBytes[stream] === 0 ? tail : Buffer.concat([...this.partial[stream], tail]);
    this.partial[stream] = [];
    this.partialBytes[stream] = 0;
    return msg;
  }
}

// A CRLF line end counts as a line end, as in containerd's CRI log writer.
function stripCr(b: Buffer): Buffer {
  return b.length > 0 && b[b.length - 1] === 0x0d ? b.subarray(0, b.length - 1) : b;
}
