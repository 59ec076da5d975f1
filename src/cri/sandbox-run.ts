// RuntimeService/RunPodSandbox: one VM per pod.
import type { PodDeps } from './pod-manager-holder.js';
import { toPodSpec } from './pod-mapping.js';
import type { PodSandboxConfig } from './runtime-types.js';

export function makeRunPodSandbox(d: PodDeps) {
  return async (req: { config: PodSandboxConfig | null; runtime_handler: string }) => ({
    pod_sandbox_id: await d.pods().runPodSandbox(toPodSpec(req.config, req.runtime_handler, d.sizing)),
  });
}
