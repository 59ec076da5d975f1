// Containers: create, start, stop, remove.
//
//   (create) --> CREATED --start--> RUNNING --exit/stop--> EXITED --remove--> (gone)
//
// The rootfs is an overlay under the pod's shared directory; the agent
// creates the container from a spec; output is pumped into the CRI log.
import { mkdir, readdir, rm, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { runCommand, runOrThrow } from '../lib/command.js';
import { errorMessage } from '../lib/errors.js';
import { failPoint } from '../lib/fail-point.js';
import { logger } from '../lib/log.js';
import { UndoStack } from '../lib/undo.js';
import type { GuestContainerSpec, GuestMount, ProcessIo } from './agent-port.js';
import { GUEST_SHARE_DIR, newId, type PodContext } from './context.js';
import { openContainerLog, type CriLogWriter } from './cri-log-writer.js';
import { resolvConf } from './guest-files.js';
import { PodError } from './errors.js';
import { mergeArgs, mergeEnv, resolveUser, type ImageDefaults } from './process-spec.js';
import { mountRootfs, unmountRootfs } from './rootfs-mount.js';
import { containerDisks, plugDisks, unplugDisks } from './container-disks.js';
import { memoryEmptyDir, POD_SHM } from './memory-volumes.js';
import { stopSignalFor } from './stop-signal.js';
import { seccompFilter } from './seccomp/index.js';
import type { ContainerSpec } from './types.js';

const log = logger('pod');
export const KILL_WAIT_MS = 10_000;
/**
 * How long a container's setup (create) or its process' start may take in
 * the guest: the agent bounds both at 30 s (a starved guest under TCG has
 * taken over 10 s); the answer then still has to come back.
 */
export const GUEST_SETUP_TIMEOUT_MS = 40_000;
/** The capabilities a container gets by default, as Docker and containerd give them. */
export const DEFAULT_CAPABILITIES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

export function containerName(ctx: PodContext, podId: string, spec: ContainerSpec): string {
  const m = ctx.pods.must(podId).meta.spec.metadata;
  return `${spec.name}_${m.name}_${m.namespace}_${m.uid}_${spec.attempt}`;
}

/** Every capability the guest kernel knows (Linux 6.1), in number order: what `ALL` adds. */
export const ALL_CAPABILITIES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW',
  'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD',
  'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG',
  'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];
const KNOWN_CAPABILITIES = new Set(ALL_CAPABILITIES);

/**
 * The container's capability set, as containerd computes it: the defaults,
 * or none when `ALL` is dropped; `ALL` added means every one; names in any
 * case, with or without `CAP_`. A name the guest kernel does not know is
 * left out with a warning (runc ignores it likewise).
 */
/** The CRI's add_ambient_capabilities, as CAP_ names the agent knows. */
export function ambientCapabilities(spec: Pick<ContainerSpec, 'capabilities'>): string[] {
  const norm = (c: string) => (c.toUpperCase().startsWith('CAP_') ? c.toUpperCase() : `CAP_${c.toUpperCase()}`);
  const ambient = (spec.capabilities.ambient ?? []).map(norm);
  const unknown = ambient.filter((c) => !KNOWN_CAPABILITIES.has(c));
  if (unknown.length > 0) throw new PodError('INVALID_ARGUMENT', `unknown ambient capabilities: ${unknown.slice(0, 8).join(', ')}`);
  return ambient;
}

export function capabilities(spec: Pick<ContainerSpec, 'capabilities' | 'name'>): string[] {
  const norm = (c: string) => (c.toUpperCase().startsWith('CAP_') ? c.toUpperCase() : `CAP_${c.toUpperCase()}`);
  const isAll = (c: string) => c.toUpperCase() === 'ALL';
  const { add, drop } = spec.capabilities;
  // containerd's order: ALL added, then ALL dropped, then single adds, then single drops.
  let caps = new Set(add.some(isAll) ? ALL_CAPABILITIES : DEFAULT_CAPABILITIES);
  if (drop.some(isAll)) caps = new Set();
  for (const c of add.filter((x) => !isAll(x))) caps.add(norm(c));
  for (const c of drop.filter((x) => !isAll(x))) caps.delete(norm(c));
  // An ambient capability is held too: asking for it means the process should have it.
  for (const c of ambientCapabilities(spec)) caps.add(c);
  const unknown = [...caps].filter((c) => !KNOWN_CAPABILITIES.has(c));
  if (unknown.length > 0) log.warn('unknown capabilities left out', { container: spec.name, capabilities: unknown.slice(0, 16) });
  return [...caps].filter((c) => KNOWN_CAPABILITIES.has(c));
}

/** A mount or unmount of a host path (a hung network file system must not hold the pod's lock for ever). */
const MOUNT_TIMEOUT_MS = 30_000;

const depth = (p: string) => p.split('/').filter(Boolean).length;

/**
 * A bind of hostPath that later host mounts under it do not reach (PRIVATE).
 * A bind of a shared mount joins its peer group at once, and the share
 * passes it on to virtiofsd's namespace as a member of that group: so the
 * bind is made in a staging place first, made private there, and only then
 * bound into the share, where it starts a peer group of its own.
 */
async function bindPrivately(hostPath: string, target: string, staging: string, isDir: boolean): Promise<void> {
  await mkdir(dirname(staging), { recursive: true });
  if (isDir) await mkdir(staging, { recursive: true });
  else await writeFile(staging, '');
  try {
    await runOrThrow('mount', ['--rbind', hostPath, staging], { timeoutMs: MOUNT_TIMEOUT_MS });
    try {
      await runOrThrow('mount', ['--make-rprivate', staging], { timeoutMs: MOUNT_TIMEOUT_MS });
      await runOrThrow('mount', ['--rbind', staging, target], { timeoutMs: MOUNT_TIMEOUT_MS });
    } finally {
      await runCommand('umount', ['-R', '-l', staging], { timeoutMs: MOUNT_TIMEOUT_MS });
    }
  } finally {
    // Never recursive: were the unmount to fail, the host's files would be below.
    await (isDir ? rmdir(staging) : unlink(staging)).catch((err: unknown) => log.warn('staging bind left', { staging, error: errorMessage(err) }));
  }
}

/** Host-path mounts reach the guest as bind mounts into the share (readonly remounted so). */
async function shareHostPaths(ctx: PodContext, podId: string, id: string, spec: ContainerSpec, undo: UndoStack): Promise<GuestMount[]> {
  const out: GuestMount[] = [];
  // Shallow paths first, as containerd orders them: /data before /data/cache,
  // whatever order the request gave.
  const byDepth = [...spec.mounts.entries()].sort(([, a], [, b]) => depth(a.containerPath) - depth(b.containerPath));
  for (const [i, m] of byDepth) {
    if (!posix.isAbsolute(m.containerPath) || m.containerPath.split('/').includes('..')) {
      throw new PodError('INVALID_ARGUMENT', `mount container path ${JSON.stringify(m.containerPath)} must be absolute without ..`);
    }
    // A host path that does not exist is made a directory, as containerd and
    // Docker do (kubelet's hostPath volumes without a type rely on it).
    let st = await stat(m.hostPath).catch(() => undefined);
    if (st?.isBlockDevice()) continue; // a disk of the VM: container-disks.ts
    const memory = st?.isDirectory() ? await memoryEmptyDir(m.hostPath) : undefined;
    if (memory) {
      out.push({ kind: 'tmpfs', source: memory.guestPath, destination: m.containerPath, readonly: m.readonly, options: [`size=${memory.sizeBytes}`] });
      continue;
    }
    if (!st) {
      if (!posix.isAbsolute(m.hostPath)) throw new PodError('INVALID_ARGUMENT', `mount host path ${JSON.stringify(m.hostPath)} is not absolute`);
      await mkdir(m.hostPath, { recursive: true, mode: 0o755 });
      st = await stat(m.hostPath);
    }
    const target = join(ctx.shareDir(podId), id, 'mounts', String(i));
    await mkdir(dirname(target), { recursive: true });
    if (st.isDirectory()) await mkdir(target);
    else await writeFile(target, '');
    if (m.propagation === 'private') await bindPrivately(m.hostPath, target, `${ctx.containerScratchDir(id)}.private-${i}`, st.isDirectory());
    else await runOrThrow('mount', ['--rbind', m.hostPath, target], { timeoutMs: MOUNT_TIMEOUT_MS });
    undo.push(`unmount ${target}`, () => runOrThrow('umount', ['-R', '-l', target], { timeoutMs: MOUNT_TIMEOUT_MS }).then(() => undefined));
    if (m.readonly) await runOrThrow('mount', ['-o', 'remount,bind,ro', target], { timeoutMs: MOUNT_TIMEOUT_MS });
    out.push({ kind: 'bind', source: `${GUEST_SHARE_DIR}/${id}/mounts/${i}`, destination: m.containerPath, readonly: m.readonly });
  }
  return out;
}

export async function createContainer(ctx: PodContext, podId: string, spec: ContainerSpec): Promise<string> {
  const pod = ctx.pods.must(podId);
  const live = ctx.livePods.get(podId);
  if (pod.status.state !== 'READY' || !live) throw new PodError('FAILED_PRECONDITION', `pod ${podId} is not ready (${pod.status.reason ?? pod.status.state})`);
  if (spec.privileged) throw new PodError('INVALID_ARGUMENT', 'privileged containers cannot run in a VM pod: make the pod privileged, or annotate it runtime.frakti.alpha.kubernetes.io/OSContainer=true, to run it as OS containers');
  const id = newId();
  const name = containerName(ctx, podId, spec);
  ctx.containerNames.reserve(name, id);
  const undo = new UndoStack();
  undo.push(`release name ${name}`, () => ctx.containerNames.release(name, id));
  const t0 = Date.now();
  const mark = (step: string) => log.trace(`create ${id.slice(0, 12)}: ${step} at ${Date.now() - t0} ms`);
  try {
    const image = await ctx.deps.images.acquireImage(spec.imageRef, id);
    undo.push(`release image ${image.id}`, () => ctx.deps.images.releaseImage(image.id, id));
    const layers = await ctx.deps.images.rootfsLayers(image.id);
    const rootfs = join(ctx.shareDir(podId), id, 'rootfs');
    // Before the mount's own undo steps, so it runs after them: the whole folder, not only its rw.
    undo.push(`remove ${dirname(ctx.containerScratchDir(id))}`, () => rm(dirname(ctx.containerScratchDir(id)), { recursive: true, force: true }));
    await mountRootfs({ layers, scratchDir: ctx.containerScratchDir(id), target: rootfs }, undo);
    mark('rootfs mounted');
    undo.push(`remove ${join(ctx.shareDir(podId), id)}`, () => rm(join(ctx.shareDir(podId), id), { recursive: true, force: true }));

    const defaults: ImageDefaults = { ...image.config };
    const stopSignal = stopSignalFor(spec.stopSignal, image.config.stopSignal ?? '');
    const user = await resolveUser(rootfs, defaults, spec.user);
    const podFiles = `${GUEST_SHARE_DIR}/.pod`;
    const mounts: GuestMount[] = [
      { kind: 'bind', source: `${podFiles}/hostname`, destination: '/etc/hostname', readonly: true },
      { kind: 'bind', source: `${podFiles}/hosts`, destination: '/etc/hosts', readonly: true },
      ...(resolvConf(pod.meta.spec.dns) !== '' ? [{ kind: 'bind' as const, source: `${podFiles}/resolv.conf`, destination: '/etc/resolv.conf', readonly: true }] : []),
      ...(await shareHostPaths(ctx, podId, id, spec, undo)),
      ...(await plugDisks(live.vm.qmp, id, await containerDisks(spec), undo)),
    ];
    // First: a user mount under /dev/shm goes on top of it.
    if (!spec.mounts.some((m) => posix.normalize(m.containerPath) === '/dev/shm')) mounts.unshift({ ...POD_SHM, options: [...POD_SHM.options] });
    const caps = spec.privileged ? [] : capabilities(spec);
    const seccomp = await seccompFilter(spec.seccomp, caps);
    const guestSpec: GuestContainerSpec = {
      id,
      rootfs: `${GUEST_SHARE_DIR}/${id}/rootfs`,
      readonlyRootfs: spec.readonlyRootfs,
      hostname: pod.meta.spec.hostname,
      process: {
        args: mergeArgs(defaults, spec),
        // HOSTNAME first, so that the image or the container can set another (containerd does the same).
        env: mergeEnv([`HOSTNAME=${pod.meta.spec.hostname}`, ...defaults.env], spec.env),
        cwd: spec.workingDir || defaults.workingDir || '/',
        ...user,
        terminal: spec.tty,
        stdin: spec.stdin,
      },
      mounts,
      capabilities: caps,
      ambientCapabilities: ambientCapabilities(spec),
      noNewPrivileges: spec.noNewPrivileges,
      pidNamespace: pod.meta.spec.pidMode,
      resources: { ...spec.resources },
      maskedPaths: spec.maskedPaths ?? [],
      readonlyPaths: spec.readonlyPaths ?? [],
      ...(seccomp ? { seccompFilter: seccomp } : {}),
    };
    if (spec.logPath) await mkdir(dirname(spec.logPath), { recursive: true });
    mark('spec ready');
    await live.agent.createContainer(guestSpec, { timeoutMs: GUEST_SETUP_TIMEOUT_MS });
    undo.push('remove container in the guest', () => live.agent.removeContainer(id));
    mark('created in the guest');
    await ctx.containers.create({ id, podId, spec: { ...spec, imageId: image.id, stopSignal }, createdAt: Date.now() }, { state: 'CREATED' });
    mark('stored');
    undo.commit();
    return id;
  } catch (err) {
    const failures = await undo.run();
    if (failures.length > 0) log.error('container cleanup after a failed create left work undone', { container: id, failures });
    if (err instanceof PodError) throw err;
    throw new PodError('INTERNAL', `create container ${spec.name}: ${errorMessage(err)}`, { container: id }, err);
  }
}

export async function startContainer(ctx: PodContext, id: string): Promise<void> {
  const c = ctx.containers.must(id);
  if (c.status.state !== 'CREATED') throw new PodError('FAILED_PRECONDITION', `container ${id} is ${c.status.state}, not CREATED`);
  const live = ctx.livePods.get(c.meta.podId);
  if (!live) throw new PodError('FAILED_PRECONDITION', `the pod of container ${id} is not running`);
  const t0 = Date.now();
  const mark = (step: string) => log.trace(`start ${id.slice(0, 12)}: ${step} at ${Date.now() - t0} ms`);
  const logFile = await openContainerLog(c.meta.spec.logPath);
  try {
    const io = await live.agent.startContainer(id, { ack: 'caller', timeoutMs: GUEST_SETUP_TIMEOUT_MS });
    mark('started in the guest');
    failPoint('start container: started in the guest, not stored');
    await ctx.containers.update(id, (s) => ({ ...s, state: 'RUNNING', startedAt: Date.now(), pid: io.pid }));
    mark('stored');
    follow(ctx, id, io, logFile);
  } catch (err) {
    await logFile.close();
    await ctx.containers.update(id, (s) => ({ ...s, state: 'EXITED', finishedAt: Date.now(), exitCode: 128, reason: 'StartError', message: errorMessage(err) }));
    throw new PodError('INTERNAL', `start container ${id}: ${errorMessage(err)}`, {}, err);
  }
}

/** Pumps a process' output into its log and records its exit. Used after start and after a reconnect. */
export function follow(ctx: PodContext, id: string, io: ProcessIo, logFile: CriLogWriter): void {
  const c = ctx.containers.must(id);
  const live = ctx.livePods.get(c.meta.podId)!;
  // The agent forgets output only once it is in the log file (io opened
  // with ack 'caller'): a frakti that dies in between gets it again.
  const pump = (stream: NodeJS.ReadableStream, name: 'stdout' | 'stderr') =>
    new Promise<void>((resolve) => {
      let acked = 0;
      const ack = (stored: number) => {
        if (stored <= acked) return;
        try {
          io.acknowledge(name, stored - acked);
        } catch (err) {
          // Our own accounting broke: say so, and let the output keep flowing.
          log.error('output acknowledgement refused', { container: id, stream: name, err: errorMessage(err) });
        }
        acked = stored;
      };
      stream.on('data', (chunk: Buffer) => {
        for (const tap of ctx.outputTaps.get(id) ?? []) tap(name, chunk);
        // Backpressure: the agent's stream pauses while the log write is pending.
        stream.pause();
        logFile.write(name, chunk).then(
          (stored) => {
            ack(stored);
            stream.resume();
          },
          (err) => {
            // Dropped, loudly: a log that cannot be written must not stop the container.
            log.error('log write failed; output dropped', { container: id, stream: name, bytes: logFile.takenBytes(name) - acked, err: errorMessage(err) });
            ack(logFile.takenBytes(name));
            stream.resume();
          },
        );
      });
      stream.on('end', () => void logFile.end(name).then(ack, () => ack(logFile.takenBytes(name))).then(resolve, resolve));
      stream.on('error', () => resolve());
      stream.on('close', () => resolve());
    });
  const drained = Promise.all([pump(io.stdout, 'stdout'), pump(io.stderr, 'stderr')]);
  const exited = live.agent.wait(id, '').then(
    async (exit) => {
      await drained;
      await logFile.close();
      await ctx.containers.update(id, (s) => ({
        ...s,
        state: 'EXITED',
        exitCode: exit.exitCode,
        finishedAt: exit.exitedAt.getTime(),
        reason: s.reason === 'OOMKilled' ? 'OOMKilled' : exit.exitCode === 0 ? 'Completed' : 'Error',
      }));
    },
    async (err) => {
      // The channel closed: the VM died (watchVm marks it) or frakti is going down (recovery re-attaches).
      log.warn('lost the wait on a container', { container: id, err: errorMessage(err) });
      await logFile.close().catch(() => {});
    },
  );
  ctx.liveContainers.set(id, { log: logFile, io, exited });
}

/** SIGTERM (or the image's stop signal), then SIGKILL after timeoutSec. */
export async function stopContainerProcess(ctx: PodContext, id: string, timeoutSec: number): Promise<void> {
  const c = ctx.containers.must(id);
  if (c.status.state !== 'RUNNING') return;
  const live = ctx.livePods.get(c.meta.podId);
  if (!live) return;
  const exited = ctx.liveContainers.get(id)?.exited ?? Promise.resolve();
  const within = (ms: number) => Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
  if (timeoutSec > 0) {
    await live.agent.signal(id, '', c.meta.spec.stopSignal || 'SIGTERM').catch(() => {});
    if (await within(timeoutSec * 1000)) return;
  }
  await live.agent.signal(id, '', 'SIGKILL').catch(() => {});
  if (!(await within(KILL_WAIT_MS))) throw new PodError('DEADLINE_EXCEEDED', `container ${id} did not exit within ${KILL_WAIT_MS} ms of SIGKILL`);
}

export async function removeContainer(ctx: PodContext, id: string): Promise<void> {
  const c = ctx.containers.get(id);
  if (!c) return;
  if (c.status.state === 'RUNNING') await stopContainerProcess(ctx, id, 0);
  const live = ctx.livePods.get(c.meta.podId);
  if (live) {
    await live.agent.removeContainer(id).catch((err) => log.warn('agent remove failed', { container: id, err: errorMessage(err) }));
    // Its disks go once the guest let go of them (the container's mounts went with it).
    await unplugDisks(live.vm.qmp, id).catch((err) => log.warn('unplug of a container disk failed', { container: id, err: errorMessage(err) }));
    failPoint('remove container: gone from the guest');
  }
  // Each host path is bound at mounts/<n>: the folder itself is no mount point.
  const mounts = join(ctx.shareDir(c.meta.podId), id, 'mounts');
  for (const n of await readdir(mounts).catch(() => [] as string[])) await runCommand('umount', ['-R', '-l', join(mounts, n)], { timeoutMs: MOUNT_TIMEOUT_MS });
  await unmountRootfs(join(ctx.shareDir(c.meta.podId), id, 'rootfs'));
  failPoint('remove container: rootfs unmounted');
  await rm(join(ctx.shareDir(c.meta.podId), id), { recursive: true, force: true });
  await rm(dirname(ctx.containerScratchDir(id)), { recursive: true, force: true });
  failPoint('remove container: folders removed');
  await ctx.deps.images.releaseImage(c.meta.spec.imageId, id).catch(() => {});
  await ctx.liveContainers.get(id)?.log?.close().catch(() => {});
  ctx.liveContainers.delete(id);
  ctx.outputTaps.delete(id);
  await ctx.containers.delete(id);
  ctx.containerNames.release(containerName(ctx, c.meta.podId, c.meta.spec), id);
}
