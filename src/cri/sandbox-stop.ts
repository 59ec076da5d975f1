// RuntimeService/StopPodSandbox: idempotent; an unknown pod is not an error.
import { podIdOrNothing, type PodDeps } from './pod-manager-holder.js';
import { invalidArgument } from './errors.js';

export function makeStopPodSandbox(d: PodDeps) {
  return async (req: { pod_sandbox_id: string }) => {
    if (!req.pod_sandbox_id) throw invalidArgument('StopPodSandbox: pod_sandbox_id is required');
    const id = podIdOrNothing(d, req.pod_sandbox_id);
    if (id) await d.pods().stopPodSandbox(id);
    return {};
  };
}
