// SPDY header compression: one zlib stream per direction for the whole
// connection, primed with the SPDY/3 dictionary, each header block ending
// on a sync flush. The context carries over from block to block, so blocks
// must be (de)compressed in the order they travel: both classes queue.
import { constants, createDeflate, createInflate, type Deflate, type Inflate } from 'node:zlib';
import { SPDY3_DICTIONARY } from './spdy-dictionary.js';
import { SpdyProtocolError } from './spdy-frames.js';

abstract class OrderedZlib {
  private queue: Promise<unknown> = Promise.resolve();
  protected abstract readonly z: Deflate | Inflate;

  /** Feeds `input` and returns what a sync flush yields; fails past maxOutput bytes. */
  protected run(input: Buffer, maxOutput: number): Promise<Buffer> {
    const next = this.queue.then(
      () =>
        new Promise<Buffer>((resolve, reject) => {
          const out: Buffer[] = [];
          let size = 0;
          let failed: Error | undefined;
          const onData = (b: Buffer) => {
            size += b.length;
            if (size > maxOutput) failed ??= new SpdyProtocolError(`header block decompresses to more than ${maxOutput} bytes`);
            else out.push(b);
          };
          const onError = (err: Error) => done(err);
          const done = (err?: Error) => {
            this.z.off('data', onData);
            this.z.off('error', onError);
            if (err ?? failed) reject(err ?? failed);
            else resolve(Buffer.concat(out));
          };
          this.z.on('data', onData);
          this.z.once('error', onError);
          this.z.write(input);
          this.z.flush(constants.Z_SYNC_FLUSH, () => {
            // Output the stream buffered instead of emitting goes through onData now.
            while (this.z.read() !== null);
            done();
          });
        }),
    );
    this.queue = next.catch(() => {});
    return next;
  }

  close(): void {
    this.z.destroy();
  }
}

export class HeaderCompressor extends OrderedZlib {
  protected readonly z = createDeflate({ dictionary: SPDY3_DICTIONARY });

  compress(block: Buffer): Promise<Buffer> {
    return this.run(block, Number.MAX_SAFE_INTEGER);
  }
}

export class HeaderDecompressor extends OrderedZlib {
  protected readonly z = createInflate({ dictionary: SPDY3_DICTIONARY });

  decompress(compressed: Buffer, maxBytes: number): Promise<Buffer> {
    return this.run(compressed, maxBytes).catch((err: unknown) => {
      throw err instanceof SpdyProtocolError ? err : new SpdyProtocolError(`header block does not decompress: ${(err as Error).message}`);
    });
  }
}
