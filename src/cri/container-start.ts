// RuntimeService/StartContainer.
import type { PodDeps } from './pod-manager-holder.js';

export function makeStartContainer(d: PodDeps) {
  return async (req: { container_id: string }) => {
    await d.pods().startContainer(req.container_id);
    return {};
  };
}
