// RuntimeService/RemovePodSandbox: stops what still runs, removes the pod and its containers; idempotent.
import type { PodDeps } from './pod-manager-holder.js';
import { invalidArgument } from './errors.js';

export function makeRemovePodSandbox(d: PodDeps) {
  return async (req: { pod_sandbox_id: string }) => {
    if (!req.pod_sandbox_id) throw invalidArgument('RemovePodSandbox: pod_sandbox_id is required');
    const pods = d.pods();
    let id: string;
    try {
      id = pods.resolvePodId(req.pod_sandbox_id);
    } catch {
      return {};
    }
    await pods.removePodSandbox(id);
    return {};
  };
}
