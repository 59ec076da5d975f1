// Blobs by digest: blobs/sha256/<hex>. A blob appears only whole and
// verified: it is written under ingest/ and renamed into place.
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fsyncDir } from '../lib/atomic-file.js';
import { isErrno } from '../lib/errors.js';
import { ContentInvalidError } from './errors.js';
import { DIGEST } from './reference.js';
import { sha256Digest } from './registry-client.js';
import { isTempName, tempName, tempWriterDead } from './temp-names.js';

export interface Ingest {
  path: string;
  out: WriteStream;
  /** Closes and removes the temp file. */
  abort(): Promise<void>;
}

export class ContentStore {
  readonly blobsDir: string;
  readonly ingestDir: string;

  constructor(root: string) {
    this.blobsDir = join(root, 'blobs', 'sha256');
    this.ingestDir = join(root, 'ingest');
  }

  async init(): Promise<void> {
    await mkdir(this.blobsDir, { recursive: true, mode: 0o700 });
    await mkdir(this.ingestDir, { recursive: true, mode: 0o700 });
    for (const name of await readdir(this.ingestDir)) {
      if (isTempName(name) && tempWriterDead(name)) await rm(join(this.ingestDir, name), { force: true, recursive: true });
    }
  }

  path(digest: string): string {
    if (!DIGEST.test(digest)) throw new ContentInvalidError(`not a sha256 digest: ${digest}`);
    return join(this.blobsDir, digest.slice('sha256:'.length));
  }

  async has(digest: string): Promise<boolean> {
    try {
      await stat(this.path(digest));
      return true;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
  }

  async read(digest: string, maxBytes: number): Promise<Buffer> {
    const p = this.path(digest);
    const st = await stat(p);
    if (st.size > maxBytes) throw new ContentInvalidError(`blob ${digest} is larger than ${maxBytes} bytes`);
    return readFile(p);
  }

  stream(digest: string): Readable {
    return createReadStream(this.path(digest), { highWaterMark: 1024 * 1024 });
  }

  /** Stores a small blob after checking it has the digest it claims. */
  async put(digest: string, data: Buffer): Promise<void> {
    const actual = sha256Digest(data);
    if (actual !== digest) throw new ContentInvalidError(`content has digest ${actual}, expected ${digest}`);
    if (await this.has(digest)) return;
    const ing = await this.ingest();
    try {
      await new Promise<void>((resolve, reject) => ing.out.end(data, () => resolve()).on('error', reject));
      await this.commitIngest(ing, digest);
    } catch (err) {
      await ing.abort();
      throw err;
    }
  }

  /** A new temp file under ingest/; commitIngest() moves it into place once verified. */
  async ingest(): Promise<Ingest> {
    const path = join(this.ingestDir, tempName());
    const out = createWriteStream(path, { flags: 'wx', mode: 0o644, highWaterMark: 1024 * 1024 });
    return {
      path,
      out,
      abort: async () => {
        // Closed before it returns: no descriptor of a failed pull stays open on the store's file system.
        if (!out.closed) await new Promise<void>((resolve) => out.once('close', () => resolve()).destroy());
        await rm(path, { force: true });
      },
    };
  }

  /** Renames a finished ingest file, whose digest and size the caller verified, into the store. */
  async commitIngest(ing: Ingest, digest: string): Promise<void> {
    const fh = await open(ing.path, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(ing.path, this.path(digest));
    await fsyncDir(this.blobsDir);
  }

  async list(): Promise<string[]> {
    return (await readdir(this.blobsDir)).filter((n) => /^[a-f0-9]{64}$/.test(n)).map((n) => `sha256:${n}`);
  }

  /** Removes a blob; returns the bytes freed. */
  async remove(digest: string): Promise<number> {
    const p = this.path(digest);
    const st = await stat(p).catch(() => undefined);
    await rm(p, { force: true });
    return st?.size ?? 0;
  }
}
