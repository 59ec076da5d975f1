// RuntimeService/UpdatePodSandboxResources: kubelet resized the pod in
// place. The pod VM grows to the new resources plus overhead (memory as
// DIMMs, vCPUs under KVM) and never shrinks; the containers' cgroups, which
// UpdateContainerResources sets, hold them to a smaller size. Best effort
// by the API's word: kubelet goes on whatever the answer, so a part that
// cannot be done is FAILED_PRECONDITION with what was done and why not.
import { invalidArgument } from './errors.js';
import type { PodDeps } from './pod-manager-holder.js';
import { vmSizeFor } from './pod-mapping.js';
import type { LinuxContainerResources } from './runtime-types.js';

export function makeUpdatePodSandboxResources(d: PodDeps) {
  return async (req: { pod_sandbox_id: string; overhead: LinuxContainerResources | null; resources: LinuxContainerResources | null }) => {
    if (!req.pod_sandbox_id) throw invalidArgument('UpdatePodSandboxResources: pod_sandbox_id is required');
    await d.pods().resizePod(req.pod_sandbox_id, vmSizeFor(req.resources, req.overhead, d.sizing));
    return {};
  };
}
