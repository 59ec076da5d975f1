// RuntimeService/StopPodSandbox: idempotent; an unknown pod is not an error.
import type { PodDeps } from './pod-manager-holder.js';
import { invalidArgument } from './errors.js';

export function makeStopPodSandbox(d: PodDeps) {
  return async (req: { pod_sandbox_id: string }) => {
    if (!req.pod_sandbox_id) throw invalidArgument('StopPodSandbox: pod_sandbox_id is required');
    const pods = d.pods();
    let id: string;
    try {
      id = pods.resolvePodId(req.pod_sandbox_id);
    } catch {
      return {};
    }
    await pods.stopPodSandbox(id);
    return {};
  };
}
