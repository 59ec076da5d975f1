// RuntimeService/RuntimeConfig: kubelet asks which cgroup driver to use so
// that it matches ours. frakti puts each pod VM in a plain cgroupfs cgroup.
import type { CgroupDriver, RuntimeConfigResponse } from './cri-types.js';

export const CGROUP_DRIVER: CgroupDriver = 'CGROUPFS';

export async function runtimeConfig(_req: unknown): Promise<RuntimeConfigResponse> {
  return { linux: { cgroup_driver: CGROUP_DRIVER } };
}
