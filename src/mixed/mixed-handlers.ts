// Mixed runtimes behind one CRI socket: the handler tables of frakti's own
// (VM) runtime, wrapped so that pods that need the host go to the
// OS-container runtime (containerd) and every later call follows its pod.
//
// Ownership needs no record of its own: a pod or container that frakti's
// record store knows is a VM's, any other id is the OS runtime's. Both
// stores survive their daemon's restart, so the routing does too, and it
// can never disagree with what either runtime holds.
import { CriError, streamedList, type AnyStream, type AnyUnary, type CallContext, type HandlerTable } from '../cri/index.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { OS_PULL_TIMEOUT_MS, type OsRuntime } from './os-runtime.js';
import { osRuntimeReason } from './pod-routing.js';

const log = logger('mixed');

export interface MixedDeps {
  /** The OS runtime; undefined when the operator configured none. */
  os: OsRuntime | undefined;
  /** RuntimeClass handlers that go to the OS runtime. */
  osHandlers: readonly string[];
  /** frakti holds this pod (a full id or a unique prefix). */
  ownsPod(id: string): boolean;
  ownsContainer(id: string): boolean;
}

/* eslint-disable @typescript-eslint/no-explicit-any */
type Owner = 'vm' | 'os';

function need(table: HandlerTable, name: string): AnyUnary {
  const h = table.unary?.[name];
  if (!h) throw new Error(`the VM runtime has no ${name} handler`);
  return h;
}

/**
 * Who answers for an id frakti does not hold: the OS runtime when its socket
 * is there; with no OS runtime on the node, frakti alone (NOT_FOUND, or
 * success for an idempotent stop or remove, as without mixed runtimes).
 */
function ownerOf(d: MixedDeps, vmHolds: boolean): Owner {
  if (vmHolds || !d.os || !d.os.present()) return 'vm';
  return 'os';
}

/**
 * `vmImages`: frakti's image handlers, to bring an image frakti holds into
 * the OS runtime when a host pod needs it there (pulled while containerd was
 * down, or before it was installed).
 */
export function mixedRuntimeHandlers(vm: HandlerTable, d: MixedDeps, vmImages: HandlerTable): HandlerTable {
  const os = d.os;
  if (!os) return withoutOsRuntime(vm, d);
  const ensureImage = osImageFromFraktiStore(os, need(vmImages, 'ImageStatus'));
  const routed = (name: string, holds: (req: any) => boolean): AnyUnary => {
    const own = need(vm, name);
    return (req, ctx) => (ownerOf(d, holds(req)) === 'vm' ? own(req, ctx) : os.call('runtime', name, req, ctx));
  };
  const byPod = (name: string, field = 'pod_sandbox_id') => routed(name, (req) => d.ownsPod(String(req?.[field] ?? '')));
  const byContainer = (name: string) => routed(name, (req) => d.ownsContainer(String(req?.container_id ?? '')));

  /** A List call: frakti's part and the OS runtime's, each filtered alike; a filter by one id asks its owner only. */
  const merged = (name: string, items: string, only: (filter: any) => Owner | undefined): AnyUnary => {
    const own = need(vm, name);
    return async (req, ctx) => {
      const target = os.present() ? only(req?.filter ?? {}) : 'vm';
      if (target === 'vm') return own(req, ctx);
      if (target === 'os') return os.call('runtime', name, req, ctx);
      const [mine, theirs] = await Promise.all([own(req, ctx), osPart(os, name, req, ctx)]);
      return { ...mine, [items]: [...(mine[items] ?? []), ...(theirs?.[items] ?? [])] };
    };
  };
  const filterOwner = (idOwner: (id: string) => boolean) => (filter: any): Owner | undefined => {
    const id = String(filter?.id ?? '');
    if (id) return idOwner(id) ? 'vm' : 'os';
    const pod = String(filter?.pod_sandbox_id ?? '');
    if (pod) return d.ownsPod(pod) ? 'vm' : 'os';
    return undefined;
  };
  const lists = {
    ListPodSandbox: merged('ListPodSandbox', 'items', filterOwner(d.ownsPod)),
    ListContainers: merged('ListContainers', 'containers', filterOwner(d.ownsContainer)),
    ListContainerStats: merged('ListContainerStats', 'stats', filterOwner(d.ownsContainer)),
    ListPodSandboxStats: merged('ListPodSandboxStats', 'stats', filterOwner(d.ownsPod)),
    ListPodSandboxMetrics: merged('ListPodSandboxMetrics', 'pod_metrics', () => undefined),
  };
  const runPod = need(vm, 'RunPodSandbox');
  const status = need(vm, 'Status');
  const updateConfig = need(vm, 'UpdateRuntimeConfig');
  const vmCreate = need(vm, 'CreateContainer');
  return {
    unary: {
      ...vm.unary,
      Status: async (req, ctx) => {
        const res = await status(req, ctx);
        res.status.conditions.push(await osCondition(os, ctx));
        res.runtime_handlers = [...res.runtime_handlers, ...d.osHandlers.map((name) => ({ name, features: { recursive_read_only_mounts: false, user_namespaces: false } }))];
        return res;
      },
      UpdateRuntimeConfig: async (req, ctx) => {
        const res = await updateConfig(req, ctx);
        // The pod CIDR matters to the OS runtime's CNI too; it being down must not fail ours.
        if (os.present()) await os.call('runtime', 'UpdateRuntimeConfig', req, ctx).catch((err: unknown) => log.warn('OS runtime did not take the runtime config', { err: errorMessage(err) }));
        return res;
      },
      RunPodSandbox: async (req, ctx) => {
        const reason = osRuntimeReason(req, d.osHandlers);
        if (!reason) return runPod(req, ctx);
        if (!os.present()) throw noOsRuntime(reason, `its socket ${os.socketPath} does not exist`);
        try {
          return await os.call('runtime', 'RunPodSandbox', req, ctx);
        } catch (err) {
          if (err instanceof CriError && err.code === 'UNAVAILABLE') throw noOsRuntime(reason, errorMessage(err));
          throw err;
        }
      },
      StopPodSandbox: byPod('StopPodSandbox'),
      RemovePodSandbox: byPod('RemovePodSandbox'),
      PodSandboxStatus: byPod('PodSandboxStatus'),
      PodSandboxStats: byPod('PodSandboxStats'),
      UpdatePodSandboxResources: byPod('UpdatePodSandboxResources'),
      PortForward: byPod('PortForward'),
      CreateContainer: async (req, ctx) => {
        if (ownerOf(d, d.ownsPod(String(req?.pod_sandbox_id ?? ''))) === 'vm') return vmCreate(req, ctx);
        try {
          return await os.call('runtime', 'CreateContainer', req, ctx);
        } catch (err) {
          // containerd 1.6/1.7: NotFound "failed to resolve image ...". Rare, so not asked before every create.
          if (!(err instanceof CriError && err.code === 'NOT_FOUND' && /image/i.test(err.message))) throw err;
          if (!(await ensureImage(String(req?.config?.image?.image ?? ''), ctx))) throw err;
          return os.call('runtime', 'CreateContainer', req, ctx);
        }
      },
      StartContainer: byContainer('StartContainer'),
      StopContainer: byContainer('StopContainer'),
      RemoveContainer: byContainer('RemoveContainer'),
      ContainerStatus: byContainer('ContainerStatus'),
      ContainerStats: byContainer('ContainerStats'),
      ExecSync: byContainer('ExecSync'),
      Exec: byContainer('Exec'),
      Attach: byContainer('Attach'),
      UpdateContainerResources: byContainer('UpdateContainerResources'),
      ReopenContainerLog: byContainer('ReopenContainerLog'),
      ...lists,
    },
    stream: {
      ...vm.stream,
      GetContainerEvents: mergedEvents(os, vm.stream?.GetContainerEvents),
      StreamPodSandboxes: streamedList(lists.ListPodSandbox, (r: any) => r.items, (x) => ({ pod_sandboxes: [x] })),
      StreamContainers: streamedList(lists.ListContainers, (r: any) => r.containers, (x) => ({ containers: [x] })),
      StreamContainerStats: streamedList(lists.ListContainerStats, (r: any) => r.stats, (x) => ({ container_stats: [x] })),
      StreamPodSandboxStats: streamedList(lists.ListPodSandboxStats, (r: any) => r.stats, (x) => ({ pod_sandbox_stats: [x] })),
    } as Record<string, AnyStream>,
  };
}

/**
 * An image the OS runtime lacks but frakti holds is pulled into the OS
 * runtime before a host pod's container is created from it: by the name
 * kubelet gave, or, for an image id, by the digest frakti pulled (the same
 * content, so the same id). Without the pull's credentials: a private image
 * the OS runtime missed at pull time needs pulling again.
 */
function osImageFromFraktiStore(os: OsRuntime, vmImageStatus: AnyUnary) {
  /** True when it pulled the image into the OS runtime; false when frakti does not hold it either. */
  return async (ref: string, ctx: CallContext): Promise<boolean> => {
    if (!ref) return false;
    const ours = (await vmImageStatus({ image: { image: ref }, verbose: false }, ctx).catch(() => undefined))?.image;
    if (!ours) return false; // neither has it: the OS runtime's own error says so
    const source = /^sha256:[0-9a-f]{64}$/.test(ref) ? (ours.repo_digests?.[0] ?? ours.repo_tags?.[0]) : ref;
    if (!source) return false;
    log.info('pulling into the OS runtime an image frakti holds', { image: ref, from: source });
    try {
      await os.call('image', 'PullImage', { image: { image: source } }, ctx, OS_PULL_TIMEOUT_MS);
    } catch (err) {
      throw new CriError('FAILED_PRECONDITION', `image ${ref} is in frakti's store but not in the OS-container runtime, and pulling ${source} into it failed: ${errorMessage(err)}; pull the image again`, { image: ref }, err);
    }
    return true;
  };
}

/** How long to wait before following the OS runtime's events again after its stream broke. */
const EVENTS_RETRY_MS = 1000;

/**
 * GetContainerEvents: frakti's events and the OS runtime's, as they come.
 * containerd 1.7 streams its own; 1.6 answers UNIMPLEMENTED, and then only
 * frakti's come (kubelet's evented PLEG still relists every few minutes).
 * A broken OS stream (containerd restarted) is followed again after a pause.
 */
function mergedEvents(os: OsRuntime, own: AnyStream | undefined): AnyStream | undefined {
  if (!own) return undefined;
  return async (req, ctx, send) => {
    const done = new AbortController();
    const over = AbortSignal.any([ctx.signal, ctx.stopping, done.signal]);
    const theirs = (async () => {
      while (!over.aborted) {
        try {
          if (os.present()) await os.follow('GetContainerEvents', req, over, send);
        } catch (err) {
          if (err instanceof CriError && err.code === 'UNIMPLEMENTED') return;
          log.debug('OS runtime events interrupted', { err: errorMessage(err) });
        }
        await sleep(EVENTS_RETRY_MS, undefined, { signal: over }).catch(() => {});
      }
    })();
    try {
      await own(req, ctx, send);
    } finally {
      done.abort();
      await theirs;
    }
  };
}

/** No OS runtime configured: VM pods as ever; a pod that needs the host is refused, saying how to enable one. */
function withoutOsRuntime(vm: HandlerTable, d: MixedDeps): HandlerTable {
  const runPod = need(vm, 'RunPodSandbox');
  return {
    ...vm,
    unary: {
      ...vm.unary,
      RunPodSandbox: (req, ctx) => {
        const reason = osRuntimeReason(req, d.osHandlers);
        return reason ? Promise.reject(noOsRuntime(reason, 'none is configured')) : runPod(req, ctx);
      },
    },
  };
}

function noOsRuntime(reason: string, why: string): CriError {
  return new CriError(
    'FAILED_PRECONDITION',
    `this pod needs the OS-container runtime (${reason}): a VM cannot give it the host, and the OS-container runtime is not available: ${why}; ` +
      'run containerd and point --os-runtime-endpoint (TOML [os_runtime] endpoint) at its socket',
    { reason },
  );
}

/** The OS runtime's part of a merged list; down or failing, it is missing and logged, never fails frakti's part. */
async function osPart(os: OsRuntime, name: string, req: unknown, ctx: CallContext): Promise<any> {
  try {
    return await os.call('runtime', name, req, ctx);
  } catch (err) {
    if (!(err instanceof CriError && err.code === 'UNIMPLEMENTED')) log.warn('OS runtime left out of a list', { call: name, err: errorMessage(err) });
    return undefined;
  }
}

/** A Status condition for the OS runtime: its own RuntimeReady, or why it cannot be asked. */
async function osCondition(os: OsRuntime, ctx: CallContext) {
  const type = 'OSContainerRuntimeReady';
  if (!os.present()) return { type, status: false, reason: 'OSRuntimeNotPresent', message: `no socket at ${os.socketPath}: pods that need the host cannot run` };
  try {
    const res = await os.call('runtime', 'Status', {}, ctx, 5000);
    const ready = (res?.status?.conditions ?? []).find((c: any) => c.type === 'RuntimeReady');
    if (ready?.status) return { type, status: true, reason: '', message: '' };
    return { type, status: false, reason: 'OSRuntimeNotReady', message: ready?.message || 'the OS runtime reports it is not ready' };
  } catch (err) {
    return { type, status: false, reason: 'OSRuntimeUnreachable', message: errorMessage(err) };
  }
}

/**
 * Images: kubelet pulls through frakti once and may start a pod of either
 * kind with the image, so a pull goes to both stores at once (with the same
 * credentials). frakti's store answers for the node (lists, status, fs
 * usage: what kubelet's image GC sees); a remove removes from both. The OS
 * runtime failing its pull does not fail the pull: VM pods can run; a host
 * pod then gets the OS runtime's own error at CreateContainer.
 */
export function mixedImageHandlers(vm: HandlerTable, d: MixedDeps): HandlerTable {
  const os = d.os;
  if (!os) return vm;
  const pull = need(vm, 'PullImage');
  const remove = need(vm, 'RemoveImage');
  return {
    ...vm,
    unary: {
      ...vm.unary,
      PullImage: async (req, ctx) => {
        const theirs = os.present()
          ? os.call('image', 'PullImage', req, ctx, OS_PULL_TIMEOUT_MS).then(
              () => true,
              (err: unknown) => {
                log.warn('OS runtime did not pull the image; pods that need the host cannot use it', { image: req?.image?.image, err: errorMessage(err) });
                return false;
              },
            )
          : Promise.resolve(false);
        try {
          return await pull(req, ctx);
        } catch (err) {
          // Failed for the node: kubelet will not see the image, so neither store keeps it.
          if (await theirs) await os.call('image', 'RemoveImage', { image: req?.image }).catch(() => {});
          throw err;
        } finally {
          await theirs;
        }
      },
      RemoveImage: async (req, ctx) => {
        const res = await remove(req, ctx);
        if (os.present()) {
          await os.call('image', 'RemoveImage', req, ctx).catch((err: unknown) => {
            if (!(err instanceof CriError && err.code === 'NOT_FOUND')) log.warn('OS runtime did not remove the image', { image: req?.image?.image, err: errorMessage(err) });
          });
        }
        return res;
      },
    },
  };
}
