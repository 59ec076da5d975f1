// RuntimeService/ListContainers with id (prefix), pod, state and label filters.
import type { PodDeps } from './pod-manager-holder.js';
import { matchesLabels, toContainer } from './pod-mapping.js';
import type { StringMap } from './cri-types.js';

export function makeListContainers(d: PodDeps) {
  return async (req: { filter: { id: string; pod_sandbox_id: string; state: { state: string } | null; label_selector: StringMap } | null }) => {
    const f = req.filter;
    const containers = d.pods().containers().map(toContainer).filter((c) =>
      (!f?.id || c.id.startsWith(f.id)) &&
      (!f?.pod_sandbox_id || c.pod_sandbox_id.startsWith(f.pod_sandbox_id)) &&
      (!f?.state || c.state === f.state.state) &&
      matchesLabels(c.labels, f?.label_selector));
    return { containers };
  };
}
