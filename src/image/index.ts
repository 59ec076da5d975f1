// Public API of the image room. The CRI ImageService (src/cri) and the pod
// layer import only from this file.
//
//   const store = await ImageStore.open({ root: '/var/lib/frakti/image' });
//   const img = await store.pull('busybox', { auth });        // PullImage
//   await store.list({ ref: 'busybox' });                      // ListImages
//   await store.status('sha256:1234');                         // ImageStatus (undefined if absent)
//   await store.remove('busybox');                             // RemoveImage (absent: no error)
//   await store.fsInfo();                                      // ImageFsInfo
//   const held = await store.acquireImage('busybox', ctrId);   // pod layer: pin while in use
//   const lowers = await store.rootfsLayers(held.id);          // overlayfs lowerdirs, lowest first
//   await store.releaseImage(held.id, ctrId);
//   await store.retainHolders(liveContainerIds);              // pod layer, after a restart
//
// Errors: every failure is an ImageError (a FraktiError) with a stable code;
// see ./errors.ts for the classes and the gRPC status each should map to.
export { ImageStore } from './image-store.js';
export type { ImageStoreOptions, ResolvedImageStoreOptions } from './options.js';
export { DEFAULT_IMAGE_ROOT, resolveImageStoreOptions, hostPlatform } from './options.js';
export type { RegistryAuth, ImageRecord, ImageRuntimeConfig, ImageFsInfo, ImageFilter, PullProgress, PullOptions, GcResult } from './types.js';
export {
  ImageError,
  InvalidReferenceError,
  ImageNotFoundError,
  AmbiguousReferenceError,
  ImageInUseError,
  RegistryError,
  RegistryUnreachableError,
  RegistryAuthError,
  ContentInvalidError,
  UnsafeLayerEntryError,
  ImageOptionsError,
  ArchiveInvalidError,
  PullAbortedError,
  PlatformNotFoundError,
  ImageStoreExhaustedError,
  ImageStoreClosedError,
} from './errors.js';
export { parseReference, type ImageReference } from './reference.js';
