// ImageService/ImageFsInfo: bytes and inodes under the image store. kubelet
// calls it at start and for its image GC thresholds. Containers' writable
// layers live on the same filesystem, so container_filesystems stays empty
// (kubelet then counts them on the image filesystem).
import type { ImageFsInfoResponse } from './cri-types.js';
import { toFilesystemUsage } from './image-mapping.js';
import type { GetImageStore } from './image-store-holder.js';

export function makeImageFsInfo(store: GetImageStore) {
  return async function imageFsInfo(): Promise<ImageFsInfoResponse> {
    const fs = await store().fsInfo();
    return { image_filesystems: [toFilesystemUsage(fs)], container_filesystems: [] };
  };
}
