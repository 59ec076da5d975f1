// ImageService/ImageStatus: the image a spec names (id, id prefix, tag or
// digest). An absent image is not an error: the answer has no image.
import type { ImageStatusRequest, ImageStatusResponse } from './cri-types.js';
import { imageRefOf, imageVerboseInfo, toCriImage } from './image-mapping.js';
import type { GetImageStore } from './image-store-holder.js';

export function makeImageStatus(store: GetImageStore) {
  return async function imageStatus(req: ImageStatusRequest): Promise<ImageStatusResponse> {
    const record = await store().status(imageRefOf(req.image));
    if (!record) return { image: null, info: {} };
    return { image: toCriImage(record), info: req.verbose ? imageVerboseInfo(record) : {} };
  };
}
