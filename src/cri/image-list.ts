// ImageService/ListImages (and StreamImages, the same list an image a message):
// every image, or only the one the filter's ImageSpec names.
import type { ListImagesRequest, ListImagesResponse } from './cri-types.js';
import { imageRefOf, toCriImage } from './image-mapping.js';
import type { GetImageStore } from './image-store-holder.js';
import { streamedList } from './list-streaming.js';

export function makeImageList(store: GetImageStore) {
  return async function imageList(req: ListImagesRequest): Promise<ListImagesResponse> {
    const spec = req.filter?.image;
    const filter = spec && spec.image !== '' ? { ref: imageRefOf(spec, 'filter.image') } : {};
    const records = await store().list(filter);
    return { images: records.map(toCriImage) };
  };
}

export function makeImageStream(store: GetImageStore) {
  return streamedList(makeImageList(store), (r) => r.images, (x) => ({ images: [x] }));
}
