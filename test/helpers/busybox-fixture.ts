// The fixture most end-to-end files start from: a folder of their own, a
// registry on 127.0.0.1 holding the busybox test image, both gone after the
// file's tests. `use` gets them once they are up.
import { before, after } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBusyboxImage, pushImage, startRegistry, type Registry } from './image-registry.js';

export interface BusyboxFixture {
  dir: string;
  reg: Registry;
  /** The image's reference in the registry: `<host>/busybox:latest`. */
  image: string;
}

export function busyboxFixture(prefix: string, use: (f: BusyboxFixture) => void): void {
  let f: Partial<BusyboxFixture> = {};
  before(async () => {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    f = { dir };
    const reg = await startRegistry();
    f.reg = reg;
    const image = `${reg.host}/busybox:latest`;
    await pushImage((await buildBusyboxImage(join(dir, 'img'))).layout, image);
    f.image = image;
    use(f as BusyboxFixture);
  });
  after(async () => {
    await f.reg?.stop();
    if (f.dir) await rm(f.dir, { recursive: true, force: true });
  });
}
