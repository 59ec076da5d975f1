// What every pod operation works with: stores, name registries, the live
// handles of running VMs and processes, options and dependencies. One
// object, built by PodManager, passed to the operation modules.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Vm, VmSpec, AgentEndpoint, Accel, GuestAssets, LaunchOptions } from '../vmm/index.js';
import type { CniNetwork } from '../network/index.js';
import type { ImageRecord } from '../image/index.js';
import type { PodAgent, ProcessIo } from './agent-port.js';
import type { CriLogWriter } from './cri-log-writer.js';
import { NameRegistry } from './name-registry.js';
import type { VmPool } from './vm-pool.js';
import { RecordStore } from './record-store.js';
import { ContainerEventHub } from './container-events.js';
import type { ContainerRecordMeta, ContainerRecordStatus, PodRecordMeta, PodRecordStatus } from './types.js';

/** What the pod room needs of the image store (src/image's ImageStore has it). */
export interface PodImages {
  acquireImage(ref: string, holderId: string): Promise<ImageRecord>;
  releaseImage(ref: string, holderId: string): Promise<void>;
  /** Drops every hold whose holder is not in `live`; returns how many. */
  retainHolders(live: Iterable<string>): Promise<number>;
  rootfsLayers(imageId: string): Promise<string[]>;
}

export interface PodManagerOptions {
  /** Persistent state (records, container upper dirs). */
  rootDir: string;
  /** Volatile state (VM directories, shared directories). */
  stateDir: string;
  guest: GuestAssets;
  accel: Accel;
  /** Under TCG: each VM's translation cache in MiB (default: the vmm room's). */
  tcgCacheMiB?: number;
  /** VM size when the pod does not say. */
  defaultCpus: number;
  defaultMemoryMiB: number;
  /**
   * How far a pod VM can grow in place (UpdatePodSandboxResources): its
   * memory (maxmem; only address space until used) and, under KVM, its vCPUs.
   * Unset: VMs keep their boot size.
   */
  maxMemoryMiB?: number;
  maxCpus?: number;
  /** Pod VMs to keep booted ahead at the default size (0: none). */
  vmPool?: number;
  /** Use vhost-vsock for the agent channel (where /dev/vhost-vsock exists), else virtio-serial. */
  vsock: boolean;
}

export interface PodManagerDeps {
  images: PodImages;
  /** The pod network (CNI), looked up per pod so a config dropped in later is used. */
  network(): Promise<CniNetwork>;
  launchVm(spec: VmSpec, opts?: LaunchOptions): Promise<Vm>;
  attachVm(dir: string): Promise<Vm>;
  waitForAgent(endpoint: AgentEndpoint, opts: { timeoutMs: number }): Promise<PodAgent>;
}

export interface LivePod {
  vm: Vm;
  agent: PodAgent;
}

export interface LiveContainer {
  log?: CriLogWriter;
  io?: ProcessIo;
  /** Settles when the exit has been recorded. */
  exited?: Promise<void>;
}

export type OutputTap = (stream: 'stdout' | 'stderr', chunk: Buffer) => void;

export const VM_DIR_ID_CHARS = 16;

/** Inside the guest, the pod's shared directory is mounted here. */
export const GUEST_SHARE_DIR = '/run/frakti/shared';
export const SHARE_TAG = 'frakti-shared';

export class PodContext {
  readonly pods: RecordStore<PodRecordMeta, PodRecordStatus>;
  readonly containers: RecordStore<ContainerRecordMeta, ContainerRecordStatus>;
  readonly podNames = new NameRegistry('pod');
  readonly containerNames = new NameRegistry('container');
  readonly livePods = new Map<string, LivePod>();
  readonly liveContainers = new Map<string, LiveContainer>();
  /** Extra consumers of a container's output besides its log (`frakti run` prints it, attach sessions stream it). */
  readonly outputTaps = new Map<string, Set<OutputTap>>();
  /** Pods and containers with an operation under way: overlapping calls are refused. */
  readonly busy = new Set<string>();
  /** Container lifecycle events, from every change of the container store. */
  readonly events = new ContainerEventHub();
  /** Pod VMs booted ahead (--vm-pool); none when the pool is off. */
  pool?: VmPool;

  constructor(
    readonly opts: PodManagerOptions,
    readonly deps: PodManagerDeps,
  ) {
    this.pods = new RecordStore(join(opts.rootDir, 'pods'), 'pod');
    this.containers = new RecordStore(join(opts.rootDir, 'containers'), 'container');
    this.containers.observer = (meta, before, after) => this.events.recordChanged(meta.id, meta.podId, before, after);
  }

  /** Short (unix socket paths are limited to 107 bytes); 16 hex digits of a random id do not collide. */
  vmDir(podId: string): string {
    return join(this.opts.stateDir, 'vm', podId.slice(0, VM_DIR_ID_CHARS));
  }

  /** The pod's shared directory on the host (virtio-fs source). */
  shareDir(podId: string): string {
    return join(this.opts.stateDir, 'pods', podId, 'shared');
  }

  /** A container's writable layer (persistent). */
  containerScratchDir(containerId: string): string {
    return join(this.opts.rootDir, 'containers', containerId, 'rw');
  }

  containersOf(podId: string) {
    return this.containers.list().filter((c) => c.meta.podId === podId);
  }
}

export function newId(): string {
  return randomBytes(32).toString('hex');
}

export function podName(m: { name: string; namespace: string; uid: string; attempt: number }): string {
  return `${m.name}_${m.namespace}_${m.uid}_${m.attempt}`;
}
