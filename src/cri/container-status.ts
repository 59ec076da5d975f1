// RuntimeService/ContainerStatus.
import type { PodDeps } from './pod-manager-holder.js';
import { toContainerStatus } from './pod-mapping.js';

export function makeContainerStatus(d: PodDeps) {
  return async (req: { container_id: string; verbose: boolean }) => {
    const c = d.pods().container(req.container_id);
    return { status: toContainerStatus(c), info: req.verbose ? { info: JSON.stringify({ pid: c.status.pid ?? null, resources: c.meta.spec.resources }) } : {} };
  };
}
