// The ImageService handler table, on top of the image room's ImageStore.
import { makeImageFsInfo } from './image-fs-info.js';
import { makeImageList, makeImageStream } from './image-list.js';
import { makeImagePull } from './image-pull.js';
import { makeImageRemove } from './image-remove.js';
import { makeImageStatus } from './image-status.js';
import type { GetImageStore } from './image-store-holder.js';
import type { HandlerTable } from './service-table.js';

export function imageHandlers(store: GetImageStore): HandlerTable {
  return {
    unary: {
      PullImage: makeImagePull(store),
      ListImages: makeImageList(store),
      ImageStatus: makeImageStatus(store),
      RemoveImage: makeImageRemove(store),
      ImageFsInfo: makeImageFsInfo(store),
    },
    stream: {
      StreamImages: makeImageStream(store),
    },
  };
}
