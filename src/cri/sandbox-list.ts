// RuntimeService/ListPodSandbox with the id (or prefix), state and label filters.
import type { PodDeps } from './pod-manager-holder.js';
import { matchesLabels, toPodSandbox } from './pod-mapping.js';
import type { StringMap } from './cri-types.js';

export function makeListPodSandbox(d: PodDeps) {
  return async (req: { filter: { id: string; state: { state: string } | null; label_selector: StringMap } | null }) => {
    const f = req.filter;
    const items = d.pods().pods().map(toPodSandbox).filter((p) =>
      (!f?.id || p.id.startsWith(f.id)) && (!f?.state || p.state === f.state.state) && matchesLabels(p.labels, f?.label_selector));
    return { items };
  };
}
