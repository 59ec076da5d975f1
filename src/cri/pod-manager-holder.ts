// The pod manager the runtime handlers use; opened by the daemon after the
// socket is claimed, so a handler never sees a half-started one (the call
// gate answers UNAVAILABLE until then).
import type { PodManager } from '../pod/index.js';
import type { VmSizing } from './pod-mapping.js';

export interface PodDeps {
  pods: () => PodManager;
  sizing: VmSizing;
}
