// Unpacked layers: snapshots/<diff-id hex>/, one directory per layer, each a
// complete overlayfs lower layer on its own (whiteouts already translated),
// so layers unpack in parallel and are shared by every image that has them.
// A layer is unpacked into snapshots/.tmp-<pid>-<rand> and renamed into place
// when complete: a directory under its final name is always whole.
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir } from '../lib/atomic-file.js';
import { ContentInvalidError } from './errors.js';
import { DIGEST } from './reference.js';
import { isTempName, tempName, tempWriterDead } from './temp-names.js';

export class SnapshotStore {
  readonly dir: string;
  /** Whether unpacks into this store fsync what they write (ImageStoreOptions.syncLayers; default true). */
  readonly durable: boolean;

  constructor(root: string, opts: { durable?: boolean } = {}) {
    this.dir = join(root, 'snapshots');
    this.durable = opts.durable ?? true;
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o711 });
    for (const name of await readdir(this.dir)) {
      if (isTempName(name) && tempWriterDead(name)) await rm(join(this.dir, name), { recursive: true, force: true });
    }
  }

  path(diffId: string): string {
    if (!DIGEST.test(diffId)) throw new ContentInvalidError(`not a sha256 diff id: ${diffId}`);
    return join(this.dir, diffId.slice('sha256:'.length));
  }

  async has(diffId: string): Promise<boolean> {
    return stat(this.path(diffId)).then(
      (s) => s.isDirectory(),
      () => false,
    );
  }

  /** A fresh empty directory to unpack into. */
  async prepare(): Promise<string> {
    const tmp = join(this.dir, tempName());
    await mkdir(tmp, { mode: 0o755 });
    return tmp;
  }

  /** Renames a complete unpack into place; if another writer won the race, ours is dropped. */
  async commit(tmp: string, diffId: string): Promise<void> {
    try {
      await rename(tmp, this.path(diffId));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      await rm(tmp, { recursive: true, force: true });
      return;
    }
    await fsyncDir(this.dir);
  }

  async discard(tmp: string): Promise<void> {
    await rm(tmp, { recursive: true, force: true });
  }

  async list(): Promise<string[]> {
    return (await readdir(this.dir)).filter((n) => /^[a-f0-9]{64}$/.test(n)).map((n) => `sha256:${n}`);
  }

  async remove(diffId: string): Promise<void> {
    // Renamed away first, so a half-removed layer never sits under its real name.
    const tmp = join(this.dir, tempName('-rm'));
    try {
      await rename(this.path(diffId), tmp);
    } catch {
      return;
    }
    await rm(tmp, { recursive: true, force: true });
  }
}
