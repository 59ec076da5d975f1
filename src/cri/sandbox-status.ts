// RuntimeService/PodSandboxStatus, with the pod's containers and, verbose, the VM's facts.
import type { PodDeps } from './pod-manager-holder.js';
import { nanos, toContainerStatus, toPodSandboxStatus } from './pod-mapping.js';

export function makePodSandboxStatus(d: PodDeps) {
  return async (req: { pod_sandbox_id: string; verbose: boolean }) => {
    const pods = d.pods();
    const pod = pods.pod(req.pod_sandbox_id);
    const info: Record<string, string> = {};
    if (req.verbose) {
      // The size now: an in-place resize grows the VM past the one it booted with.
      const now = await pods.vmSizeNow(pod.meta.id).catch(() => undefined);
      info.info = JSON.stringify({
        vmPid: pod.status.vmPid ?? null,
        vcpus: now?.cpus ?? pod.meta.spec.cpus,
        memoryMiB: now?.memoryMiB ?? pod.meta.spec.memoryMiB,
        netns: `/run/netns/${pod.meta.netns}`,
        reason: pod.status.reason ?? null,
        unfinishedCleanup: pod.status.unknown ?? null,
      });
    }
    return {
      status: toPodSandboxStatus(pod),
      info,
      containers_statuses: pods.containers().filter((c) => c.meta.podId === pod.meta.id).map(toContainerStatus),
      timestamp: nanos(Date.now()),
    };
  };
}
