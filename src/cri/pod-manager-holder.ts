// The pod manager the runtime handlers use; opened by the daemon after the
// socket is claimed, so a handler never sees a half-started one (the call
// gate answers UNAVAILABLE until then).
import type { PodManager } from '../pod/index.js';
import type { VmSizing } from './pod-mapping.js';

export interface PodDeps {
  pods: () => PodManager;
  sizing: VmSizing;
}

/** The full id of a pod, or undefined when none matches: stop and remove of an unknown pod succeed. */
export function podIdOrNothing(d: PodDeps, idOrPrefix: string): string | undefined {
  try {
    return d.pods().resolvePodId(idOrPrefix);
  } catch {
    return undefined;
  }
}
