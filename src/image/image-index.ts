// Image metadata: every image record in one file, images.json, replaced
// atomically on each change (a node holds tens to hundreds of images, so the
// file stays small, and moving a tag from one image to another is one write).
// Lookups by id, id prefix, tag and repo digest.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { isErrno } from '../lib/errors.js';
import { Mutex } from './concurrency.js';
import { AmbiguousReferenceError, ContentInvalidError, exhaustedOr } from './errors.js';
import { DIGEST, formatReference, repoName, tryParseReference } from './reference.js';
import type { ImageRecord } from './types.js';

const FORMAT_VERSION = 1;
const MAX_INDEX_BYTES = 64 * 1024 * 1024;
const HEX_PREFIX = /^(?:sha256:)?([a-f0-9]{1,64})$/;

export class ImageIndex {
  private readonly file: string;
  private images = new Map<string, ImageRecord>();
  private readonly mutex = new Mutex();

  constructor(root: string) {
    this.file = join(root, 'images.json');
  }

  async load(): Promise<void> {
    let text: Buffer;
    try {
      text = await readFile(this.file);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      throw err;
    }
    if (text.length > MAX_INDEX_BYTES) throw new ContentInvalidError(`${this.file} is larger than ${MAX_INDEX_BYTES} bytes`);
    const doc = JSON.parse(text.toString('utf8')) as { version: number; images: ImageRecord[] };
    if (doc.version !== FORMAT_VERSION || !Array.isArray(doc.images)) throw new ContentInvalidError(`${this.file}: unknown format version ${String(doc.version)}`);
    this.images = new Map(doc.images.map((r) => [r.id, r]));
  }

  all(): ImageRecord[] {
    return [...this.images.values()].map((r) => structuredClone(r));
  }

  get(id: string): ImageRecord | undefined {
    const r = this.images.get(id);
    return r ? structuredClone(r) : undefined;
  }

  /**
   * The image `ref` names: a full id, a repo tag, a repo digest, then a
   * unique id prefix (as Docker tries them). Undefined if none.
   */
  resolve(ref: string): ImageRecord | undefined {
    const hex = HEX_PREFIX.exec(ref);
    if (hex && hex[1]!.length === 64) {
      const r = this.images.get(`sha256:${hex[1]}`);
      if (r) return structuredClone(r);
    }
    const parsed = tryParseReference(ref);
    if (parsed) {
      const name = repoName(parsed);
      for (const r of this.images.values()) {
        if (parsed.digest) {
          if (r.repoDigests.includes(`${name}@${parsed.digest}`)) return structuredClone(r);
        } else if (r.repoTags.includes(formatReference(parsed))) return structuredClone(r);
      }
    }
    if (hex) {
      const matches = [...this.images.keys()].filter((id) => id.slice(7).startsWith(hex[1]!));
      if (matches.length > 1) throw new AmbiguousReferenceError(ref, matches.length);
      if (matches.length === 1) return structuredClone(this.images.get(matches[0]!)!);
    }
    if (DIGEST.test(ref)) return this.get(ref);
    return undefined;
  }

  /** Applies `fn` to a copy of the records and persists the result; serialised. */
  async update<T>(fn: (images: Map<string, ImageRecord>) => T | Promise<T>): Promise<T> {
    return this.mutex.run(async () => {
      const next = new Map([...this.images].map(([k, v]) => [k, structuredClone(v)]));
      const out = await fn(next);
      const text = JSON.stringify({ version: FORMAT_VERSION, images: [...next.values()] }, null, 1);
      await writeFileAtomic(this.file, text, 0o600).catch((err: unknown) => Promise.reject(exhaustedOr(err)));
      this.images = next;
      return out;
    });
  }
}
