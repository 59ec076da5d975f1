// RuntimeService/RemoveContainer: kills it if it still runs; idempotent.
import type { PodDeps } from './pod-manager-holder.js';

export function makeRemoveContainer(d: PodDeps) {
  return async (req: { container_id: string }) => {
    await d.pods().removeContainer(req.container_id);
    return {};
  };
}
