// ImageService/PullImage: pulls with the request's credentials; the answer
// is the image id. A client that gives up cancels the pull.
import type { PullImageRequest, PullImageResponse } from './cri-types.js';
import type { CallContext } from './rpc-wrapper.js';
import { imageRefOf, registryAuthOf } from './image-mapping.js';
import type { GetImageStore } from './image-store-holder.js';
import { imagePullBytes, imagePullSeconds, imagePulls, secondsSince } from '../lib/metrics.js';

export function makeImagePull(store: GetImageStore) {
  return async function imagePull(req: PullImageRequest, ctx: CallContext): Promise<PullImageResponse> {
    const ref = imageRefOf(req.image);
    const auth = registryAuthOf(req.auth);
    const startNs = process.hrtime.bigint();
    try {
      const record = await store().pull(ref, { ...(auth ? { auth } : {}), signal: ctx.signal });
      imagePulls.inc({ result: 'ok' });
      imagePullSeconds.observe(secondsSince(startNs));
      imagePullBytes.inc(record.size);
      return { image_ref: record.id };
    } catch (err) {
      imagePulls.inc({ result: 'error' });
      throw err;
    }
  };
}
