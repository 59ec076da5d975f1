// RuntimeService/RemovePodSandbox: stops what still runs, removes the pod and its containers; idempotent.
import { podIdOrNothing, type PodDeps } from './pod-manager-holder.js';
import { invalidArgument } from './errors.js';

export function makeRemovePodSandbox(d: PodDeps) {
  return async (req: { pod_sandbox_id: string }) => {
    if (!req.pod_sandbox_id) throw invalidArgument('RemovePodSandbox: pod_sandbox_id is required');
    const id = podIdOrNothing(d, req.pod_sandbox_id);
    if (id) await d.pods().removePodSandbox(id);
    return {};
  };
}
