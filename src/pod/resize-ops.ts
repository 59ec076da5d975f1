// Growing a running pod's VM when kubelet resizes the pod in place
// (UpdatePodSandboxResources): memory as DIMMs, vCPUs under KVM. A VM never
// shrinks: Linux gives hot-plugged memory back unreliably, and the
// containers' own cgroup limits already hold them to a smaller size.
import { errorMessage } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { growMemory, hotplugCpus, vmSizeNow, VmError } from '../vmm/index.js';
import type { PodContext } from './context.js';
import { PodError } from './errors.js';
import { guard } from './sandbox-ops.js';

const log = logger('pod');

export interface PodSize {
  cpus?: number;
  memoryMiB?: number;
}

/** Grows the pod's VM to at least `want`; answers the size it has afterwards. */
export async function resizePod(ctx: PodContext, id: string, want: PodSize): Promise<{ cpus: number; memoryMiB: number }> {
  ctx.pods.must(id);
  return guard(ctx, id, 'UpdatePodSandboxResources', async () => {
    const live = ctx.livePods.get(id);
    if (!live) throw new PodError('FAILED_PRECONDITION', `pod ${id} is not running: its VM cannot be resized`);
    const { vm, agent } = live;
    const before = await vmSizeNow(vm.qmp);
    const refused: string[] = [];
    // Memory first: a vCPU refusal must not keep the memory back.
    if (want.memoryMiB !== undefined && want.memoryMiB > before.memoryMiB) {
      await growMemory(vm.qmp, want.memoryMiB, vm.spec.maxMemoryMiB, vm.spec.share !== undefined).catch((err: unknown) => {
        if (!(err instanceof VmError)) throw err;
        refused.push(`memory stays at ${before.memoryMiB} MiB: ${errorMessage(err)}`);
      });
    }
    if (want.cpus !== undefined && want.cpus > before.cpus) {
      const added = await hotplugCpus(vm.qmp, Math.min(want.cpus, vm.spec.maxCpus)).catch((err: unknown) => {
        if (!(err instanceof VmError)) throw err;
        refused.push(`vCPUs stay at ${before.cpus}: ${errorMessage(err)}`);
        return undefined;
      });
      if (added !== undefined && want.cpus > vm.spec.maxCpus) refused.push(`vCPUs: ${want.cpus} asked, the VM can have at most ${vm.spec.maxCpus}`);
    }
    const after = await vmSizeNow(vm.qmp);
    // The guest onlines new memory by itself (MEMORY_HOTPLUG_DEFAULT_ONLINE); vCPUs it is told to.
    if (after.cpus > before.cpus || after.memoryMiB > before.memoryMiB) await agent.onlineHotplugged();
    if (after.cpus !== before.cpus || after.memoryMiB !== before.memoryMiB) log.info('pod VM resized', { pod: id, before, after });
    if (refused.length > 0) throw new PodError('FAILED_PRECONDITION', `resize pod ${id}: ${refused.join('; ')}`);
    return after;
  });
}
