// RuntimeService/ReopenContainerLog: kubelet rotated the log file away; write a new one.
import type { PodDeps } from './pod-manager-holder.js';

export function makeReopenContainerLog(d: PodDeps) {
  return async (req: { container_id: string }) => {
    await d.pods().reopenLog(req.container_id);
    return {};
  };
}
