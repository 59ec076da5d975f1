// The pod room's front door: pods and containers for src/cri. Loads the
// stored records at start and re-attaches to the VMs that still run.
import { join } from 'node:path';
import { errorMessage } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { openContainerLog } from './cri-log-writer.js';
import type { EventSubscription } from './container-events.js';
import { MAX_USAGE_ENTRIES, podNetworkCounters, type PodNetworkCounters } from './pod-metrics.js';
import { dirUsage, type DirUsage } from '../lib/dir-usage.js';
import type { Duplex } from 'node:stream';
import { PodContext, podName, type OutputTap, type PodManagerDeps, type PodManagerOptions } from './context.js';
import { containerName, createContainer, follow, removeContainer, startContainer, stopContainerProcess } from './container-ops.js';
import { execProcess, execSync, type ExecOptions, type ExecSyncResult } from './exec-ops.js';
import { launchPodVm, markContainersGone, podFilesDir, removePodSandbox, runPodSandbox, stopPodSandbox, waitForPodAgent, watchVm } from './sandbox-ops.js';
import { PodError } from './errors.js';
import { resizePod, type PodSize } from './resize-ops.js';
import { sweepOrphanFolders, sweepUnclaimedVms } from './orphan-sweep.js';
import { MAX_VM_POOL, VmPool, type PoolStatus } from './vm-pool.js';
import { vmSizeNow } from '../vmm/index.js';
import { addOutputTap, attachContainer, portForward, startExec, type AttachSession, type ExecSession } from './stream-ops.js';
import type { ContainerResources, ContainerSpec, PodSpec } from './types.js';
import type { ContainerStats, PodAgent } from './agent-port.js';

const log = logger('pod');
export const RECOVERY_AGENT_TIMEOUT_MS = 10_000;

/** How long one walk of a writable layer answers stats calls. */
export const USAGE_CACHE_MS = 10_000;

export class PodManager {
  readonly ctx: PodContext;
  private readonly usageCache = new Map<string, { at: number; usage: Promise<DirUsage> }>();

  constructor(opts: PodManagerOptions, deps: PodManagerDeps) {
    this.ctx = new PodContext(opts, deps);
    const size = Math.min(MAX_VM_POOL, Math.max(0, Math.floor(opts.vmPool ?? 0)));
    if (size > 0) {
      const ctx = this.ctx;
      ctx.pool = new VmPool(ctx, {
        launch: (id, vmSize, netns, netnsReady, nics) => launchPodVm(ctx, id, vmSize, netns, netnsReady, nics),
        waitForAgent: (vm) => waitForPodAgent(ctx, vm),
        shareDir: (id) => ctx.shareDir(id),
        podFilesDir: (id) => podFilesDir(ctx, id),
      }, size, { cpus: opts.defaultCpus, memoryMiB: opts.defaultMemoryMiB });
    }
  }

  /** The pool of pod VMs booted ahead; undefined when it is off. */
  poolStatus(): PoolStatus | undefined {
    return this.ctx.pool?.status();
  }

  /** Loads what is stored and re-attaches to running VMs (after a frakti restart). */
  async start(): Promise<void> {
    const { ctx } = this;
    const pods = await ctx.pods.load();
    const ctrs = await ctx.containers.load();
    if (pods.broken.length + ctrs.broken.length > 0) log.error('unreadable records were skipped', { pods: pods.broken, containers: ctrs.broken });
    for (const p of ctx.pods.list()) ctx.podNames.reserve(podName(p.meta.spec.metadata), p.meta.id);
    for (const c of ctx.containers.list()) {
      if (ctx.pods.get(c.meta.podId)) ctx.containerNames.reserve(containerName(ctx, c.meta.podId, c.meta.spec), c.meta.id);
    }
    for (const p of ctx.pods.list()) {
      if (p.status.state !== 'READY') continue;
      await this.reattach(p.meta.id).catch(async (err) => {
        log.warn('pod VM is gone after restart', { pod: p.meta.id, err: errorMessage(err) });
        await ctx.pods.update(p.meta.id, (s) => ({ ...s, state: 'NOTREADY', reason: `VM not running after frakti restart: ${errorMessage(err)}`, vmPid: undefined }));
        await markContainersGone(ctx, p.meta.id, 'the pod VM exited while frakti was down');
      });
    }
    // After the re-attach: the guests have let go of the containers no record names.
    await sweepOrphanFolders(ctx);
    // A create killed after it took the image would hold it for ever (RemoveImage: in use).
    const dropped = await ctx.deps.images.retainHolders(ctx.containers.list().map((c) => c.meta.id));
    if (dropped > 0) log.info('dropped image holds of containers that were never stored', { holds: dropped });
    // Pool VMs of the last frakti: no pod has them, and a new pool is booted (their state is not worth trusting).
    const swept = await sweepUnclaimedVms(ctx);
    if (swept > 0) log.info('removed VMs no pod owns (the last frakti\'s pool)', { vms: swept });
    ctx.pool?.fill();
  }

  private async reattach(podId: string): Promise<void> {
    const { ctx } = this;
    const vm = await ctx.deps.attachVm(ctx.vmDir(podId));
    let agent: PodAgent;
    try {
      agent = await ctx.deps.waitForAgent(vm.agentEndpoint(), { timeoutMs: RECOVERY_AGENT_TIMEOUT_MS });
    } catch (err) {
      vm.qmp.close();
      throw err;
    }
    ctx.livePods.set(podId, { vm, agent });
    watchVm(ctx, podId, vm);
    const listed = await agent.listContainers();
    // Exec processes of the last frakti: their callers are gone with it, and unread output would stall them.
    for (const g of listed) {
      for (const execId of g.runningExecs) {
        log.info('killing an exec left by the last frakti', { container: g.id, exec: execId });
        await agent.signal(g.id, execId, 'SIGKILL').catch((err) => log.warn('could not kill a left-over exec', { container: g.id, exec: execId, err: errorMessage(err) }));
      }
    }
    const inGuest = new Map(listed.map((c) => [c.id, c]));
    await this.removeOrphans(podId, listed.map((g) => g.id));
    for (const c of ctx.containersOf(podId)) {
      const g = inGuest.get(c.meta.id);
      if (c.status.state === 'CREATED' && (g?.state === 'running' || g?.state === 'exited')) {
        // The last frakti started it and died before it stored that: the guest knows better.
        log.info('a container started by the last frakti is recorded as running', { container: c.meta.id });
        await ctx.containers.update(c.meta.id, (s) => ({ ...s, state: 'RUNNING', startedAt: Date.now(), pid: g.pid }));
      } else if (c.status.state !== 'RUNNING') continue;
      if (g?.state === 'running' || g?.state === 'exited') {
        // Also a process that exited meanwhile: the agent holds the output the
        // last frakti did not store; follow() writes it, then records the exit.
        const logFile = await openContainerLog(c.meta.spec.logPath);
        const io = await agent.attachIo(c.meta.id, '', { ack: 'caller' }).catch(async (err: unknown) => {
          await logFile.close();
          if (g.state === 'running') throw err;
          log.warn('no output to re-attach for an exited container', { container: c.meta.id, err: errorMessage(err) });
          return undefined;
        });
        if (io) {
          follow(ctx, c.meta.id, io, logFile);
          continue;
        }
      }
      await ctx.containers.update(c.meta.id, (s) => ({
        ...s,
        state: 'EXITED',
        exitCode: g?.exit?.exitCode ?? 255,
        finishedAt: g?.exit?.exitedAt.getTime() ?? Date.now(),
        reason: g?.exit ? (g.exit.exitCode === 0 ? 'Completed' : 'Error') : 'Unknown',
        message: g?.exit ? undefined : 'the container was gone from the VM after a frakti restart',
      }));
    }
    log.info('re-attached pod', { pod: podId });
  }

  /**
   * Containers the guest has that no record names: the last frakti died
   * between creating one in the guest and storing it. Nobody can ask for
   * them, so they go, with their rootfs and writable layer.
   */
  private async removeOrphans(podId: string, inGuest: string[]): Promise<void> {
    const { ctx } = this;
    const agent = ctx.livePods.get(podId)!.agent;
    for (const id of inGuest) {
      if (ctx.containers.get(id)) continue;
      log.warn('removing a container the guest has and no record names', { pod: podId, container: id });
      await agent.signal(id, '', 'SIGKILL').catch(() => {});
      await agent.removeContainer(id).catch((err) => log.warn('could not remove an orphan container from the guest', { container: id, err: errorMessage(err) }));
    }
  }

  /** A pod start's step: the pool's refill waits for it (a boot would take the core it runs on). */
  private podStart<T>(fn: () => Promise<T>): Promise<T> {
    return this.ctx.pool ? this.ctx.pool.during(fn) : fn();
  }

  runPodSandbox(spec: PodSpec): Promise<string> {
    return this.podStart(() => runPodSandbox(this.ctx, spec));
  }

  stopPodSandbox(id: string): Promise<void> {
    if (!this.ctx.pods.get(id)) return Promise.resolve(); // CRI: stopping an unknown pod succeeds.
    return stopPodSandbox(this.ctx, id);
  }

  removePodSandbox(id: string): Promise<void> {
    return removePodSandbox(this.ctx, id);
  }

  pod(id: string) {
    return this.ctx.pods.must(this.resolvePodId(id));
  }

  pods() {
    return this.ctx.pods.list();
  }

  /** Full ids or unique prefixes, as crictl passes them. */
  resolvePodId(idOrPrefix: string): string {
    return resolvePrefix(idOrPrefix, this.ctx.pods.list().map((p) => p.meta.id), 'pod');
  }

  resolveContainerId(idOrPrefix: string): string {
    return resolvePrefix(idOrPrefix, this.ctx.containers.list().map((c) => c.meta.id), 'container');
  }

  createContainer(podId: string, spec: ContainerSpec): Promise<string> {
    return this.podStart(async () => createContainer(this.ctx, this.resolvePodId(podId), spec));
  }

  startContainer(id: string): Promise<void> {
    return this.podStart(async () => startContainer(this.ctx, this.resolveContainerId(id)));
  }

  stopContainer(id: string, timeoutSec: number): Promise<void> {
    const full = this.tryContainerId(id);
    return full ? stopContainerProcess(this.ctx, full, timeoutSec) : Promise.resolve();
  }

  removeContainer(id: string): Promise<void> {
    const full = this.tryContainerId(id);
    return full ? removeContainer(this.ctx, full) : Promise.resolve();
  }

  container(id: string) {
    return this.ctx.containers.must(this.resolveContainerId(id));
  }

  containers() {
    return this.ctx.containers.list();
  }

  execSync(id: string, cmd: string[], timeoutSec: number): Promise<ExecSyncResult> {
    return execSync(this.ctx, this.resolveContainerId(id), cmd, timeoutSec);
  }

  exec(id: string, cmd: string[], opts: ExecOptions) {
    return execProcess(this.ctx, this.resolveContainerId(id), cmd, opts);
  }

  /** An interactive exec for the streaming server. */
  startExec(id: string, cmd: string[], opts: { tty: boolean; stdin: boolean }): Promise<ExecSession> {
    if (cmd.length === 0) throw new PodError('INVALID_ARGUMENT', 'exec needs a command');
    return startExec(this.ctx, this.resolveContainerId(id), cmd, opts);
  }

  attach(id: string, opts: { stdin: boolean }): AttachSession {
    return attachContainer(this.ctx, this.resolveContainerId(id), opts);
  }

  portForward(podId: string, port: number): Promise<Duplex> {
    return portForward(this.ctx, this.resolvePodId(podId), port);
  }

  agentOfContainer(id: string): PodAgent {
    const c = this.container(id);
    const live = this.ctx.livePods.get(c.meta.podId);
    if (!live) throw new PodError('FAILED_PRECONDITION', `the pod of container ${c.meta.id} is not running`);
    return live.agent;
  }

  agentOfPod(id: string): PodAgent {
    const full = this.resolvePodId(id);
    const live = this.ctx.livePods.get(full);
    if (!live) throw new PodError('FAILED_PRECONDITION', `pod ${full} is not running`);
    return live.agent;
  }

  /** The running VM's size now (it grows with resizes); undefined when the pod has no running VM. */
  async vmSizeNow(podId: string): Promise<{ cpus: number; memoryMiB: number } | undefined> {
    const live = this.ctx.livePods.get(this.resolvePodId(podId));
    return live ? vmSizeNow(live.vm.qmp) : undefined;
  }

  /** In-place pod resize: the VM grows to at least this size (never shrinks); answers its size after. */
  resizePod(podId: string, want: PodSize): Promise<{ cpus: number; memoryMiB: number }> {
    return resizePod(this.ctx, this.resolvePodId(podId), want);
  }

  async updateResources(id: string, r: ContainerResources): Promise<void> {
    const full = this.resolveContainerId(id);
    await this.agentOfContainer(full).updateResources(full, { ...r });
  }

  async containerStats(id: string): Promise<ContainerStats | undefined> {
    const full = this.resolveContainerId(id);
    const c = this.ctx.containers.must(full);
    if (c.status.state !== 'RUNNING') return undefined;
    return this.agentOfContainer(full).containerStats(full);
  }

  /** Calls fn with the container's output as it arrives (tap before start to see all of it); returns the untap. */
  /**
   * What the container's writable layer takes on the host's disk, and where
   * it lives. kubelet asks for every container's stats every few seconds, so
   * a walk is reused for USAGE_CACHE_MS (containerd also counts writable
   * layers on a timer, not per call).
   */
  async writableLayer(id: string): Promise<DirUsage & { dir: string }> {
    const c = this.ctx.containers.must(id);
    const dir = this.ctx.containerScratchDir(c.meta.id);
    const now = Date.now();
    for (const [k, v] of this.usageCache) if (now - v.at >= USAGE_CACHE_MS) this.usageCache.delete(k);
    const hit = this.usageCache.get(c.meta.id);
    if (hit) return { dir, ...(await hit.usage) };
    const usage = dirUsage(join(dir, 'upper'), MAX_USAGE_ENTRIES);
    this.usageCache.set(c.meta.id, { at: now, usage });
    return { dir, ...(await usage) };
  }

  /** The pod's network counters as its guest sees them; undefined when its VM does not run. */
  async podNetwork(podId: string): Promise<PodNetworkCounters | undefined> {
    const p = this.ctx.pods.must(podId);
    return p.status.state === 'READY' && p.status.vmPid ? podNetworkCounters(p.status.vmPid) : undefined;
  }

  /** Container lifecycle events from now on; undefined when too many subscribers listen already. */
  subscribeEvents(maxQueued?: number): EventSubscription | undefined {
    return this.ctx.events.subscribe(maxQueued);
  }

  tapOutput(id: string, fn: OutputTap): () => void {
    return addOutputTap(this.ctx, this.resolveContainerId(id), fn);
  }

  /** Resolves when the container has exited and its exit is recorded. */
  async waitExited(id: string): Promise<void> {
    const full = this.resolveContainerId(id);
    await this.ctx.liveContainers.get(full)?.exited;
  }

  async reopenLog(id: string): Promise<void> {
    const full = this.resolveContainerId(id);
    const c = this.ctx.containers.must(full);
    if (c.status.state !== 'RUNNING') throw new PodError('FAILED_PRECONDITION', `container ${full} is not running`);
    await this.ctx.liveContainers.get(full)?.log?.reopen();
  }

  /** Closes agent and QMP connections; VMs keep running (they outlive frakti). */
  async close(): Promise<void> {
    // Pool VMs hold no pod: they go (a restarted frakti boots its own).
    await this.ctx.pool?.close();
    for (const live of this.ctx.livePods.values()) {
      live.agent.close();
      live.vm.qmp.close();
    }
    this.ctx.livePods.clear();
  }

  private tryContainerId(id: string): string | undefined {
    try {
      return this.resolveContainerId(id);
    } catch (err) {
      if (err instanceof PodError && err.code === 'NOT_FOUND') return undefined;
      throw err;
    }
  }
}

function resolvePrefix(idOrPrefix: string, ids: string[], kind: string): string {
  if (!/^[0-9a-f]{1,64}$/.test(idOrPrefix)) throw new PodError('NOT_FOUND', `${kind} ${JSON.stringify(idOrPrefix)} not found`);
  if (ids.includes(idOrPrefix)) return idOrPrefix;
  const hits = ids.filter((i) => i.startsWith(idOrPrefix));
  if (hits.length === 1) return hits[0]!;
  if (hits.length === 0) throw new PodError('NOT_FOUND', `${kind} ${idOrPrefix} not found`);
  throw new PodError('INVALID_ARGUMENT', `${kind} id prefix ${idOrPrefix} is ambiguous (${hits.length} match)`);
}
