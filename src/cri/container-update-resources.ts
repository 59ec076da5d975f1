// RuntimeService/UpdateContainerResources: the guest cgroup of the container.
import type { PodDeps } from './pod-manager-holder.js';
import { toResources } from './pod-mapping.js';
import type { LinuxContainerResources } from './runtime-types.js';

export function makeUpdateContainerResources(d: PodDeps) {
  return async (req: { container_id: string; linux: LinuxContainerResources | null }) => {
    await d.pods().updateResources(req.container_id, toResources(req.linux));
    return {};
  };
}
