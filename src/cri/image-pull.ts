// ImageService/PullImage: pulls with the request's credentials; the answer
// is the image id. A client that gives up cancels the pull.
import type { PullImageRequest, PullImageResponse } from './cri-types.js';
import type { CallContext } from './rpc-wrapper.js';
import { imageRefOf, registryAuthOf } from './image-mapping.js';
import type { GetImageStore } from './image-store-holder.js';

export function makeImagePull(store: GetImageStore) {
  return async function imagePull(req: PullImageRequest, ctx: CallContext): Promise<PullImageResponse> {
    const ref = imageRefOf(req.image);
    const auth = registryAuthOf(req.auth);
    const record = await store().pull(ref, { ...(auth ? { auth } : {}), signal: ctx.signal });
    return { image_ref: record.id };
  };
}
