// Pod sandboxes: run, stop, remove, status.
//
//   (run) --> READY --stop--> NOTREADY --remove--> (gone)
//               \--VM died--> NOTREADY (reason set)
//   a teardown step that fails leaves `unknown` set and the name reserved;
//   a later stop/remove finishes the job.
import { randomInt } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../lib/errors.js';
import { failPoint } from '../lib/fail-point.js';
import { logger } from '../lib/log.js';
import { UndoStack } from '../lib/undo.js';
import type { Vm, VmNic } from '../vmm/index.js';
import { GUEST_SHARE_DIR, SHARE_TAG, newId, podName, type PodContext, type PodManagerOptions } from './context.js';
import { PodError } from './errors.js';
import { checkHostname, hostDns, hostsFile, resolvConf } from './guest-files.js';
import { POD_TAP, attachPodNetwork, createPodNetns, placeholderMac, tearDownPodNetwork, podNetnsName, type PodNetwork } from './pod-network.js';
import { createTap, deleteNetns, netnsPath } from '../network/index.js';
import { MAX_MEMORY_MIB, MAX_VCPUS, destroyVmDir, growMemory } from '../vmm/index.js';
import type { PoolVm } from './vm-pool.js';
import type { PodAgent, SandboxSetup } from './agent-port.js';
import { MAX_POD_DISKS } from './container-disks.js';
import { removeContainer, stopContainerProcess } from './container-ops.js';
import type { PodRecordMeta, PodSpec } from './types.js';

import { podStartSeconds } from '../lib/metrics.js';

const log = logger('pod');
export const AGENT_READY_TIMEOUT_MS = 60_000;
export const UNDO_TIMEOUT_MS = 60_000;
export const POD_STOP_GRACE_MS = 10_000;

/** One operation at a time per pod: a second one meanwhile is FAILED_PRECONDITION. */
export function guard<T>(ctx: PodContext, id: string, what: string, fn: () => Promise<T>): Promise<T> {
  if (ctx.busy.has(id)) return Promise.reject(new PodError('FAILED_PRECONDITION', `${what}: another operation on ${id} is under way`));
  ctx.busy.add(id);
  return fn().finally(() => ctx.busy.delete(id));
}

/** Files the pod's containers bind-mount: written by the host into the share. */
export function podFilesDir(ctx: PodContext, podId: string): string {
  return join(ctx.shareDir(podId), '.pod');
}

export async function runPodSandbox(ctx: PodContext, requested: PodSpec): Promise<string> {
  const spec = requested.dnsFromHost ? { ...requested, dns: await hostDns() } : requested;
  checkHostname(spec.hostname);
  const resolv = resolvConf(spec.dns);
  const name = podName(spec.metadata);
  // A pool VM's id becomes the pod's: its namespace, share and VM folder are already named by it.
  const pooled = ctx.pool?.take(spec);
  const id = pooled?.id ?? newId();
  try {
    ctx.podNames.reserve(name, id);
  } catch (err) {
    if (pooled) void discardTaken(ctx, pooled);
    throw err;
  }
  const undo = new UndoStack();
  undo.push(`release name ${name}`, () => ctx.podNames.release(name, id));
  return guard(ctx, id, 'RunPodSandbox', async () => {
    try {
      const meta: PodRecordMeta = { id, spec, createdAt: Date.now(), netns: podNetnsName(id) };
      // Stored first, NOTREADY: a frakti that dies midway finds the pod and can clean it up.
      await ctx.pods.create(meta, { state: 'NOTREADY', ips: [], unknown: 'starting' });
      undo.push('forget the pod record', () => ctx.pods.delete(id));

      const t0 = Date.now();
      const mark = (step: string) => log.trace(`run ${id.slice(0, 12)}: ${step} at ${Date.now() - t0} ms`);
      let net: PodNetwork;
      let vm: Vm;
      let agent: PodAgent;
      // Every pod VM boots with its NIC, on a tap made in the namespace
      // before QEMU starts, under a MAC of its own until CNI's is known: no
      // hot-plug on the pod's path (a NIC hot-plugged while the guest was
      // still booting could go unseen by it).
      const nic: VmNic = pooled?.nic ?? { tap: POD_TAP, mac: placeholderMac() };
      if (pooled) {
        // The pool VM's parts are the pod's now: undone as a cold start's would be.
        undo.push(`delete netns ${meta.netns}`, () => deleteNetns(meta.netns));
        undo.push(`remove ${ctx.shareDir(id)}`, () => rm(join(ctx.shareDir(id), '..'), { recursive: true, force: true }));
        undo.push(`stop VM ${id}`, () => pooled.vm.stop({ timeoutMs: POD_STOP_GRACE_MS }));
        undo.push('close agent', () => pooled.agent.close());
        await writePodFileContents(ctx, id, spec, resolv);
        // The guest's setup needs nothing of the network but the hosts file
        // (sent with the NIC's configuration below): it runs while CNI works.
        const setup = pooled.agent.setupSandbox({ ...sandboxSetup(spec, resolv), hosts: '' });
        setup.catch(() => {});
        net = await ctx.deps.network().then((cni) => attachPodNetwork(id, spec, cni, undo, { tapExists: true }));
        await setup;
        ({ vm, agent } = pooled);
        mark('network (pool VM)');
      } else {
        // The namespace is made while the share and virtiofsd come up: only
        // QEMU and CNI need it. It settles before any undo runs (both branches
        // below wait for it), so a namespace made late cannot escape.
        const netnsReady = createPodNetns(id, undo).then((ns) => createTap(ns, nic.tap));
        netnsReady.catch(() => {});
        await writePodFiles(ctx, id, spec, resolv, undo).catch(async (err) => {
          await netnsReady.catch(() => {});
          throw err;
        });

        // The VM boots (in the pod's namespace, its NIC on the tap) while CNI
        // sets up the network and the tap is wired to it.
        // Both branches settle before anything is undone, so nothing they
        // acquired escapes the undo stack.
        const [netR, vmR] = await Promise.allSettled([
          netnsReady.then(() => ctx.deps.network()).then((cni) => attachPodNetwork(id, spec, cni, undo, { tapExists: true })),
          launchPodVm(ctx, id, spec, netnsPath(meta.netns), netnsReady, [nic]).then((v) => {
            undo.push(`stop VM ${id}`, () => v.stop({ timeoutMs: POD_STOP_GRACE_MS }));
            return v;
          }),
        ]);
        if (netR.status === 'rejected') throw netR.reason;
        if (vmR.status === 'rejected') throw vmR.reason;
        net = netR.value;
        vm = vmR.value;
        mark('network and VM');
      }
      const hosts = hostsFile(spec.hostname, net.ips);
      await writeFile(join(podFilesDir(ctx, id), 'hosts'), hosts);
      if (!pooled) {
        agent = await waitForPodAgent(ctx, vm);
        undo.push('close agent', () => agent.close());
        mark('agent ready');
      }
      // Independent calls: sent together, the second waits for no round trip.
      await Promise.all([
        agent!.setupSandbox(pooled ? { hostname: '', resolvConf: '', hosts, sysctls: {}, shares: [] } : { ...sandboxSetup(spec, resolv), hosts }),
        configureGuestNetwork(agent!, net, nic.mac),
      ]);
      // A pool VM has the pool's memory: more is added as a resize adds it.
      if (pooled && spec.memoryMiB > pooled.memoryMiB) {
        await growMemory(vm.qmp, spec.memoryMiB, vm.spec.maxMemoryMiB, true);
        await agent!.onlineHotplugged();
      }
      mark('guest configured');
      await ctx.pods.update(id, (s) => ({ ...s, state: 'READY', unknown: undefined, ips: net.ips, vmPid: vm.pid }));
      ctx.livePods.set(id, { vm, agent: agent! });
      watchVm(ctx, id, vm);
      undo.commit();
      log.info('pod running', { pod: id, name, ips: net.ips, pooled: pooled !== undefined });
      podStartSeconds.observe({ kind: pooled ? 'pool' : 'cold' }, (Date.now() - t0) / 1000);
      return id;
    } catch (err) {
      const failures = await withDeadline(undo.run(), UNDO_TIMEOUT_MS);
      if (failures.length > 0) {
        log.error('pod cleanup after a failed start left work undone', { pod: id, failures });
        // The record and name stay so that StopPodSandbox/RemovePodSandbox can finish the job.
        if (ctx.pods.get(id)) await ctx.pods.update(id, (s) => ({ ...s, state: 'NOTREADY', unknown: failures.join('; ') })).catch(() => {});
      }
      if (err instanceof PodError) throw err;
      log.error('run pod failed', { pod: id, err: errorMessage(err), stack: err instanceof Error ? err.stack : undefined });
      throw new PodError('INTERNAL', `run pod ${spec.metadata.namespace}/${spec.metadata.name}: ${errorMessage(err)}`, { pod: id }, err);
    }
  });
}

/** What the guest sets up for the pod (an empty field is left as it is). */
function sandboxSetup(spec: PodSpec, resolv: string): Omit<SandboxSetup, 'hosts'> {
  return { hostname: spec.hostname, resolvConf: resolv, sysctls: spec.sysctls, shares: [{ tag: SHARE_TAG, mountPoint: GUEST_SHARE_DIR }] };
}

/** A pool VM taken for a pod that could not have it after all: it goes, as it would have with the pod. */
async function discardTaken(ctx: PodContext, vm: PoolVm): Promise<void> {
  vm.agent.close();
  await vm.vm.stop({ timeoutMs: POD_STOP_GRACE_MS }).catch(() => {});
  await rm(join(ctx.shareDir(vm.id), '..'), { recursive: true, force: true }).catch(() => {});
  await deleteNetns(podNetnsName(vm.id)).catch(() => {});
}

/** The guest agent of a VM just booted (a pod's or the pool's), its console's last lines when it does not come up. */
export async function waitForPodAgent(ctx: PodContext, vm: Vm): Promise<PodAgent> {
  return ctx.deps.waitForAgent(vm.agentEndpoint(), { timeoutMs: AGENT_READY_TIMEOUT_MS }).catch(async (err) => {
    const console = await vm.readConsole(4096).catch(() => '');
    throw new PodError('INTERNAL', `the guest agent did not come up: ${errorMessage(err)}${console ? `; console: ${console.trim().split('\n').slice(-3).join(' | ')}` : ''}`);
  });
}

/** The pod's share, and the files its containers bind-mount from it. */
async function writePodFiles(ctx: PodContext, id: string, spec: PodSpec, resolv: string, undo: UndoStack): Promise<void> {
  const share = ctx.shareDir(id);
  await mkdir(share, { recursive: true, mode: 0o711 });
  undo.push(`remove ${share}`, () => rm(join(share, '..'), { recursive: true, force: true }));
  await mkdir(podFilesDir(ctx, id), { mode: 0o755 });
  await writePodFileContents(ctx, id, spec, resolv);
}

/** The pod's hostname and resolv.conf, into the share's .pod folder (a pool VM's exists already). */
async function writePodFileContents(ctx: PodContext, id: string, spec: PodSpec, resolv: string): Promise<void> {
  const files = podFilesDir(ctx, id);
  await writeFile(join(files, 'hostname'), spec.hostname + '\n');
  await writeFile(join(files, 'resolv.conf'), resolv);
}

/**
 * The NIC the VM booted with (found by its boot MAC: the guest probed it
 * before the agent ran) takes CNI's MAC, MTU, addresses and routes.
 */
async function configureGuestNetwork(agent: PodAgent, net: PodNetwork, bootMac: string): Promise<void> {
  await agent.configureNetwork({
    interfaces: [{ mac: bootMac, setMac: net.wiring.iface.mac, mtu: net.wiring.iface.mtu, addresses: net.wiring.iface.addresses }],
    routes: net.wiring.routes.map((r) => ({ dst: r.dst, gateway: r.gateway })),
  });
}

/**
 * How far the pod's VM may grow in place (UpdatePodSandboxResources): never
 * below its boot size, never past what a VM spec allows (a host with more
 * memory than that must not make every pod fail to start). vCPUs only under
 * KVM: there QEMU adds them safely (see hotplugCpus).
 */
export function growthRoom(spec: Pick<PodSpec, 'cpus' | 'memoryMiB'>, opts: Pick<PodManagerOptions, 'accel' | 'maxCpus' | 'maxMemoryMiB'>): { maxCpus: number; maxMemoryMiB: number } {
  return {
    maxMemoryMiB: Math.max(spec.memoryMiB, Math.min(MAX_MEMORY_MIB, opts.maxMemoryMiB ?? 0)),
    maxCpus: opts.accel === 'kvm' ? Math.max(spec.cpus, Math.min(MAX_VCPUS, opts.maxCpus ?? 0)) : spec.cpus,
  };
}

export async function launchPodVm(ctx: PodContext, id: string, spec: Pick<PodSpec, 'cpus' | 'memoryMiB'>, netnsPath: string, netnsReady: Promise<unknown>, nics: VmNic[] = []): Promise<Vm> {
  const base = {
    id: id.slice(0, 32),
    dir: ctx.vmDir(id),
    cpus: spec.cpus,
    memoryMiB: spec.memoryMiB,
    ...growthRoom(spec, ctx.opts),
    kernel: ctx.opts.guest.kernel,
    initrd: ctx.opts.guest.initrd,
    accel: ctx.opts.accel,
    ...(ctx.opts.tcgCacheMiB === undefined ? {} : { tcgCacheMiB: ctx.opts.tcgCacheMiB }),
    share: { source: ctx.shareDir(id), tag: SHARE_TAG },
    netns: netnsPath,
    nics,
    // Ports for block volumes (the NIC is there from boot). Each port costs
    // guest boot time, so there are no spares.
    pcieRootPorts: MAX_POD_DISKS,
  };
  const opts = { beforeQemu: netnsReady };
  if (!ctx.opts.vsock) return ctx.deps.launchVm({ ...base, channel: { kind: 'serial' } }, opts);
  // A guest CID must be unique on the host; a random one collides rarely, and then once more.
  try {
    return await ctx.deps.launchVm({ ...base, channel: { kind: 'vsock', cid: randomInt(3, 2 ** 31) } }, opts);
  } catch (err) {
    if (!/cid|Address already in use/i.test(errorMessage(err))) throw err;
    return ctx.deps.launchVm({ ...base, channel: { kind: 'vsock', cid: randomInt(3, 2 ** 31) } }, opts);
  }
}

/** A VM that goes away without being asked makes the pod NOTREADY and its running containers EXITED. */
export function watchVm(ctx: PodContext, id: string, vm: Vm): void {
  vm.on('exit', (exit) => {
    void (async () => {
      log.warn('pod VM exited', { pod: id, reason: exit.reason });
      ctx.livePods.get(id)?.agent.close();
      ctx.livePods.delete(id);
      // Containers first: whoever sees the pod NOTREADY must also see them EXITED.
      await markContainersGone(ctx, id, `the pod VM exited (${exit.reason})`);
      if (ctx.pods.get(id)) await ctx.pods.update(id, (s) => ({ ...s, state: 'NOTREADY', reason: `VM exited: ${exit.reason}`, vmPid: undefined })).catch(() => {});
    })();
  });
}

export async function markContainersGone(ctx: PodContext, podId: string, message: string): Promise<void> {
  for (const c of ctx.containersOf(podId)) {
    if (c.status.state !== 'RUNNING' && c.status.state !== 'CREATED') continue;
    await ctx.containers
      .update(c.meta.id, (s) => ({ ...s, state: 'EXITED', exitCode: s.exitCode ?? 255, finishedAt: s.finishedAt ?? Date.now(), reason: 'Error', message }))
      .catch(() => {});
    const live = ctx.liveContainers.get(c.meta.id);
    await live?.log?.close().catch(() => {});
    ctx.liveContainers.delete(c.meta.id);
  }
}

/** How long a pod's stop waits for its containers before it stops the VM under them. */
export const POD_CONTAINERS_STOP_MS = 5_000;

/** Stops every container, the VM and the network. Idempotent. */
export async function stopPodSandbox(ctx: PodContext, id: string): Promise<void> {
  const rec = ctx.pods.must(id);
  await guard(ctx, id, 'StopPodSandbox', async () => {
    const failures: string[] = [];
    const live = ctx.livePods.get(id);
    if (live) {
      // Together and bounded: the VM's stop below ends whatever did not exit,
      // and a guest that stopped answering must not hold the pod's stop.
      const stops = ctx.containersOf(id)
        .filter((c) => c.status.state === 'RUNNING')
        .map((c) => stopContainerProcess(ctx, c.meta.id, 2).catch((err) => log.warn('a container did not stop: the VM stop ends it', { pod: id, container: c.meta.id, err: errorMessage(err) })));
      let bound: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(stops), new Promise((r) => (bound = setTimeout(r, POD_CONTAINERS_STOP_MS)))]);
      clearTimeout(bound);
      ctx.livePods.delete(id);
      await live.vm.stop({ graceful: () => live.agent.shutdown({ timeoutMs: 3_000 }), timeoutMs: POD_STOP_GRACE_MS }).catch((err) => failures.push(errorMessage(err)));
      live.agent.close();
      failPoint('stop pod: VM stopped');
    } else {
      // No live VM (never started, died, or frakti restarted without it): clean what may be left.
      await destroyVmDir(ctx.vmDir(id)).catch((err) => failures.push(errorMessage(err)));
    }
    await markContainersGone(ctx, id, 'the pod was stopped');
    const cni = await ctx.deps.network().catch(() => undefined);
    if (cni) await tearDownPodNetwork(id, rec.meta.spec, cni).catch((err) => failures.push(errorMessage(err)));
    failPoint('stop pod: network torn down');
    await ctx.pods.update(id, (s) => ({ ...s, state: 'NOTREADY', vmPid: undefined, unknown: failures.length > 0 ? failures.join('; ') : undefined }));
    if (failures.length > 0) throw new PodError('INTERNAL', `stop pod ${id}: ${failures.join('; ')}`);
  });
}

export async function removePodSandbox(ctx: PodContext, id: string): Promise<void> {
  const rec = ctx.pods.get(id);
  if (!rec) return; // Removing a pod that does not exist succeeds (CRI: idempotent).
  // Stop is idempotent and cheap when all is down; it also clears what a VM that died left (share mount, netns).
  await stopPodSandbox(ctx, id);
  for (const c of ctx.containersOf(id)) await removeContainer(ctx, c.meta.id);
  await guard(ctx, id, 'RemovePodSandbox', async () => {
    await rm(join(ctx.shareDir(id), '..'), { recursive: true, force: true });
    failPoint('remove pod: share folder removed');
    await rm(ctx.vmDir(id), { recursive: true, force: true });
    await ctx.pods.delete(id);
    ctx.podNames.release(podName(rec.meta.spec.metadata), id);
  });
}

function withDeadline<T>(p: Promise<T>, ms: number): Promise<T | string[]> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<string[]>((r) => (timer = setTimeout(() => r([`cleanup did not finish within ${ms} ms`]), ms)))]).finally(() => clearTimeout(timer));
}
