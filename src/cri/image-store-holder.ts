// The daemon's one ImageStore, opened after the socket is claimed (so a
// second daemon never touches the first one's store) and before calls are
// let in. Handlers get it through a getter.
import { join } from 'node:path';
import { ImageStore } from '../image/index.js';
import { CriError } from './errors.js';
import type { DaemonConfig } from './daemon-config.js';

export type GetImageStore = () => ImageStore;

export interface ImageStoreHolder {
  get: GetImageStore;
  open(): Promise<void>;
  close(): Promise<void>;
}

/** Images live under <root>/image. */
export function imageRootOf(cfg: Pick<DaemonConfig, 'root'>): string {
  return join(cfg.root, 'image');
}

export function imageStoreHolder(cfg: DaemonConfig): ImageStoreHolder {
  let store: ImageStore | undefined;
  return {
    get() {
      if (!store) throw new CriError('UNAVAILABLE', 'the image store is not open');
      return store;
    },
    async open() {
      store = await ImageStore.open({
        root: imageRootOf(cfg),
        maxConcurrentDownloads: cfg.image.maxConcurrentDownloads,
        insecureRegistries: cfg.image.insecureRegistries,
        mirrors: cfg.image.mirrors,
      });
    },
    async close() {
      const s = store;
      store = undefined;
      await s?.close();
    },
  };
}
