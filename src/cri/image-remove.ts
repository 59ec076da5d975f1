// ImageService/RemoveImage: by id, tag or digest. Removing an unknown image
// succeeds (kubelet retries removals); one in use by a container is refused
// with FAILED_PRECONDITION by the store.
import type { RemoveImageRequest } from './cri-types.js';
import { imageRefOf } from './image-mapping.js';
import type { GetImageStore } from './image-store-holder.js';

export function makeImageRemove(store: GetImageStore) {
  return async function imageRemove(req: RemoveImageRequest): Promise<Record<string, never>> {
    await store().remove(imageRefOf(req.image));
    return {};
  };
}
