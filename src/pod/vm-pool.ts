// Pod VMs booted ahead (--vm-pool N): a boot off RunPodSandbox's critical
// path. Each pool VM is booted for one pod and never shared or returned:
// its own boot (kernel RNG, boot_id), network namespace, virtio-fs share and
// virtiofsd, VM folder, all keyed by the id the pod then takes as its own.
// The pool only moves a boot earlier; it never clones or reuses a VM.
//
//   booting --agent up--> ready --take--> the pod's (refill starts)
//      \--failed--> gone (backoff)  \--died / shutdown--> torn down
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { UndoStack } from '../lib/undo.js';
import { createTap, deleteNetns, netnsPath } from '../network/index.js';
import type { Vm, VmNic } from '../vmm/index.js';
import type { PodAgent } from './agent-port.js';
import { newId, type PodContext } from './context.js';
import { POD_TAP, createPodNetns, placeholderMac, podNetnsName } from './pod-network.js';

const log = logger('pool');

/** Backoff between failed boots: from 1 s, doubling, at most a minute. */
const RETRY_FIRST_MS = 1_000;
const RETRY_MAX_MS = 60_000;
/** Boots at once: one, so a burst of pods on a small host is not slowed by refills. */
const CONCURRENT_BOOTS = 1;
/**
 * A refill waits until no pod start (RunPodSandbox, CreateContainer,
 * StartContainer) has been under way for this long: a boot takes a whole
 * core under TCG, and the pod that took the VM still has its network, its
 * container and its start to do. kubelet's next call comes within it.
 */
const REFILL_QUIET_MS = 300;
/** ...but no longer than this after a take, so that a stream of pod starts cannot starve the pool. */
const REFILL_MAX_DEFER_MS = 5_000;
/** The largest pool a node may ask for. */
export const MAX_VM_POOL = 64;
/**
 * One VM ahead: pods that come one at a time (most of a node's life) start
 * without a boot, for the memory of one idle VM (README, bench-pod).
 */
export const DEFAULT_VM_POOL = 1;

export interface PoolVm {
  id: string;
  vm: Vm;
  agent: PodAgent;
  cpus: number;
  memoryMiB: number;
  /** The NIC the VM booted with, on the namespace's tap: the pod's network is wired to it, the guest gives it the pod's MAC. */
  nic: VmNic;
}

export interface PoolStatus {
  size: number;
  ready: number;
  booting: number;
  /** The last boot's failure while the pool is backing off. */
  lastError?: string;
}

/** What a pool VM needs of the pod room: the cold path's VM launch and agent wait. */
export interface PoolBoot {
  launch(id: string, size: { cpus: number; memoryMiB: number }, netnsPath: string, netnsReady: Promise<unknown>, nics: VmNic[]): Promise<Vm>;
  waitForAgent(vm: Vm): Promise<PodAgent>;
  /** The pod's share folder and its .pod folder, which the pod's files go into at take. */
  shareDir(id: string): string;
  podFilesDir(id: string): string;
}

export class VmPool {
  private readonly ready: PoolVm[] = [];
  private booting = 0;
  private retryMs = 0;
  private retryTimer?: NodeJS.Timeout;
  private lastError?: string;
  private closed = false;
  private readonly inFlight = new Set<Promise<void>>();
  /** Pod starts under way, and until when a refill may wait for them. */
  private starting = 0;
  private deferUntil = 0;
  private deferTimer?: NodeJS.Timeout;

  constructor(
    private readonly ctx: PodContext,
    private readonly boot: PoolBoot,
    readonly size: number,
    private readonly shape: { cpus: number; memoryMiB: number },
  ) {}

  status(): PoolStatus {
    return { size: this.size, ready: this.ready.length, booting: this.booting, ...(this.lastError ? { lastError: this.lastError } : {}) };
  }

  /** Runs a pod start (RunPodSandbox, CreateContainer, StartContainer): refills wait for it to end. */
  async during<T>(fn: () => Promise<T>): Promise<T> {
    this.starting++;
    try {
      return await fn();
    } finally {
      this.starting--;
      if (this.starting === 0 && this.deferUntil > Date.now()) this.fillLater(REFILL_QUIET_MS);
    }
  }

  /** Boots until the pool is full, one VM at a time; returns at once. */
  fill(): void {
    if (this.closed || this.retryTimer) return;
    const wait = this.deferUntil - Date.now();
    if (wait > 0 && (this.starting > 0 || this.deferTimer)) {
      this.fillLater(Math.min(wait, REFILL_QUIET_MS));
      return;
    }
    while (this.ready.length + this.booting < this.size && this.booting < CONCURRENT_BOOTS) {
      this.booting++;
      const p = this.bootOne()
        .then((vm) => {
          this.retryMs = 0;
          this.lastError = undefined;
          if (this.closed) return void discard(this.ctx, vm);
          this.ready.push(vm);
          this.watch(vm);
          log.info('pool VM ready', { vm: vm.id, ready: this.ready.length, size: this.size });
        })
        .catch((err: unknown) => {
          this.lastError = errorMessage(err);
          this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs ? this.retryMs * 2 : RETRY_FIRST_MS);
          log.error('pool VM boot failed; retrying later', { err: this.lastError, retryInMs: this.retryMs });
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.fill();
          }, this.retryMs);
          this.retryTimer.unref();
        })
        .finally(() => {
          this.booting--;
          this.inFlight.delete(p);
          this.fill();
        });
      this.inFlight.add(p);
    }
  }

  /**
   * A ready VM for a pod of this size, never handed out twice; undefined when
   * none is ready or the pod does not fit (more vCPUs than a pool VM has: they
   * cannot be added under TCG). Memory beyond a pool VM's is added by the caller.
   */
  take(size: { cpus: number; memoryMiB: number }): PoolVm | undefined {
    if (size.cpus !== this.shape.cpus) return undefined;
    const vm = this.ready.shift();
    if (vm) {
      vm.vm.removeAllListeners('exit');
      log.info('pool VM taken', { vm: vm.id, left: this.ready.length });
      this.deferUntil = Date.now() + REFILL_MAX_DEFER_MS;
      this.fillLater(REFILL_QUIET_MS);
    }
    return vm;
  }

  /** fill() once `ms` have passed (an earlier wait is replaced). */
  private fillLater(ms: number): void {
    clearTimeout(this.deferTimer);
    this.deferTimer = setTimeout(() => {
      this.deferTimer = undefined;
      this.fill();
    }, ms);
    this.deferTimer.unref();
  }

  /** Tears every pool VM down (they hold no pod), waiting for boots under way. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.deferTimer);
    await Promise.allSettled([...this.inFlight]);
    const all = this.ready.splice(0);
    await Promise.allSettled(all.map((vm) => discard(this.ctx, vm)));
  }

  private watch(vm: PoolVm): void {
    vm.vm.once('exit', (exit) => {
      const i = this.ready.indexOf(vm);
      if (i < 0) return;
      this.ready.splice(i, 1);
      log.warn('a pool VM died; it is replaced', { vm: vm.id, reason: exit.reason });
      void discard(this.ctx, vm).finally(() => this.fill());
    });
  }

  private async bootOne(): Promise<PoolVm> {
    const id = newId();
    const undo = new UndoStack();
    try {
      // The share's folder first: a frakti killed from here on finds the
      // VM's leftovers by it (orphan-sweep.ts), the namespace too.
      const share = this.boot.shareDir(id);
      undo.push(`remove ${share}`, () => rm(join(share, '..'), { recursive: true, force: true }));
      await mkdir(this.boot.podFilesDir(id), { recursive: true, mode: 0o755 });
      // The NIC is there from boot, on a tap made before QEMU opens it: a
      // hot-plug at take would cost the pod ~200 ms under TCG. Its MAC is
      // random until the pod's is known (the namespace holds the tap alone).
      const netnsReady = createPodNetns(id, undo).then((ns) => createTap(ns, POD_TAP));
      netnsReady.catch(() => {});
      const nic = { tap: POD_TAP, mac: placeholderMac() };
      const vm = await this.boot.launch(id, this.shape, netnsPath(podNetnsName(id)), netnsReady, [nic]);
      undo.push(`stop VM ${id}`, () => vm.stop({ timeoutMs: 10_000 }));
      const agent = await this.boot.waitForAgent(vm);
      undo.push('close agent', () => agent.close());
      // The NIC up now, with no address (MTU 0: left as it is): virtio-net
      // fills its receive ring when it comes up, about 40 ms of the guest
      // under TCG that would otherwise fall on the pod's start. Nothing
      // reaches it until the take wires the tap to CNI's interface.
      await agent.configureNetwork({ interfaces: [{ mac: nic.mac, mtu: 0, addresses: [] }], routes: [] });
      undo.commit();
      return { id, vm, agent, ...this.shape, nic };
    } catch (err) {
      const failures = await undo.run();
      if (failures.length > 0) log.error('cleanup after a failed pool boot left work undone', { vm: id, failures });
      throw err;
    }
  }
}

/** Stops a pool VM and removes what it had: VM, share, namespace. */
async function discard(ctx: PodContext, vm: PoolVm): Promise<void> {
  vm.agent.close();
  await vm.vm.stop({ timeoutMs: 10_000 }).catch((err) => log.warn('pool VM stop failed', { vm: vm.id, err: errorMessage(err) }));
  await rm(join(ctx.shareDir(vm.id), '..'), { recursive: true, force: true }).catch(() => {});
  await deleteNetns(podNetnsName(vm.id)).catch((err) => log.warn('pool VM namespace left', { vm: vm.id, err: errorMessage(err) }));
}
