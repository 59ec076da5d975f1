// RuntimeService/CreateContainer: image config merged with the container's, rootfs mounted, created in the guest.
import type { PodDeps } from './pod-manager-holder.js';
import { toContainerSpec } from './pod-mapping.js';
import type { ContainerConfig } from './runtime-types.js';

export function makeCreateContainer(d: PodDeps) {
  return async (req: { pod_sandbox_id: string; config: ContainerConfig | null }) => {
    const pods = d.pods();
    const pod = pods.pod(req.pod_sandbox_id);
    return { container_id: await pods.createContainer(pod.meta.id, toContainerSpec(req.config, pod.meta.spec)) };
  };
}
