// One VM: launch from a spec (a short recipe of steps, each registering its
// undo), attach to one already running, watch it, stop it.
//
//   launching --QMP up--> running --stop()--> stopping --> stopped
//                          \--QEMU gone unexpectedly--> exited
//
// QEMU runs in a session of its own with a pid file, so it outlives frakti;
// after a restart Vm.attach() finds it again through its directory.
import { EventEmitter } from 'node:events';
import { spawn } from 'node:child_process';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { errorMessage } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { UndoStack } from '../lib/undo.js';
import { VmError } from './errors.js';
import { isAlive, killStragglers, readPidFile, signal, terminate, waitForPath, waitGone } from './process-watch.js';
import { CONSOLE_CHARDEV_ID, qemuArgs } from './qemu-args.js';
import { QmpClient, type QmpEvent } from './qmp-client.js';
import { makeSharedMount, readTail, startVirtiofsd, stopVirtiofsd, unmountShare } from './virtiofsd.js';
import { validateVmSpec, type ValidVmSpec, type VmSpec } from './vm-spec.js';
import { vmPaths, type VmPaths } from './vm-paths.js';

const log = logger('vmm');

export const QEMU_START_TIMEOUT_MS = 15_000;
export const VM_STOP_TIMEOUT_MS = 10_000;
export const QMP_QUIT_GRACE_MS = 3_000;
export const KILL_GRACE_MS = 2_000;
/** How often a VM's QEMU and virtiofsd are looked at (an exit QMP did not tell, a virtiofsd that died). */
export const VIRTIOFSD_WATCH_MS = 1_000;

export interface LaunchOptions {
  /** Bound on QEMU coming up (QMP socket and handshake). Default QEMU_START_TIMEOUT_MS. */
  startTimeoutMs?: number;
  /**
   * QEMU starts only once this resolves; a rejection fails the launch and
   * undoes what it did. The caller prepares something QEMU needs (e.g. the
   * network namespace it runs in) while the share and virtiofsd come up.
   */
  beforeQemu?: Promise<unknown>;
}

/** The guest agent listens on this vsock port. */
export const AGENT_VSOCK_PORT = 1024;

export type VmState = 'running' | 'stopping' | 'stopped' | 'exited';

export interface VmExit {
  /** True when frakti did not ask for it (a crash, a kill, a guest panic). */
  unexpected: boolean;
  /** QEMU's last SHUTDOWN reason if it sent one (guest-shutdown, guest-panic, host-signal, ...). */
  reason: string;
}

export type AgentEndpoint = { kind: 'unix'; path: string } | { kind: 'vsock'; cid: number; port: number };

export interface StopOptions {
  /** Asks the guest to power itself off (the agent's shutdown call); tried first. */
  graceful?: () => Promise<void>;
  /** Bound on the whole stop. Default VM_STOP_TIMEOUT_MS. */
  timeoutMs?: number;
}

export declare interface Vm {
  on(event: 'exit', fn: (exit: VmExit) => void): this;
}

export class Vm extends EventEmitter {
  private state: VmState = 'running';
  private shutdownReason = '';
  private exitInfo?: VmExit;
  private processWatch?: NodeJS.Timeout;

  private constructor(
    readonly spec: ValidVmSpec,
    readonly paths: VmPaths,
    readonly pid: number,
    private qmpClient: QmpClient,
  ) {
    super();
    this.watch(qmpClient);
    this.watchProcesses();
  }

  get id(): string {
    return this.spec.id;
  }

  get qmp(): QmpClient {
    return this.qmpClient;
  }

  get currentState(): VmState {
    return this.state;
  }

  get exit(): VmExit | undefined {
    return this.exitInfo;
  }

  agentEndpoint(): AgentEndpoint {
    return this.spec.channel.kind === 'serial'
      ? { kind: 'unix', path: this.paths.agentSocket }
      : { kind: 'vsock', cid: this.spec.channel.cid, port: AGENT_VSOCK_PORT };
  }

  /** Launches QEMU (and virtiofsd when a share is asked for) and starts the guest. */
  static async launch(input: VmSpec, opts: LaunchOptions = {}): Promise<Vm> {
    const spec = validateVmSpec(input);
    const paths = vmPaths(spec.dir);
    const startTimeoutMs = opts.startTimeoutMs ?? QEMU_START_TIMEOUT_MS;
    // Awaited only after the share is up: marked handled now, so an early rejection is not "unhandled".
    opts.beforeQemu?.catch(() => {});
    const undo = new UndoStack();
    const t0 = Date.now();
    const mark = (step: string) => log.trace(`launch ${spec.id.slice(0, 12)}: ${step} at ${Date.now() - t0} ms`);
    try {
      await mkdir(spec.dir, { recursive: true, mode: 0o700 });
      undo.push(`remove ${spec.dir}`, () => rm(spec.dir, { recursive: true, force: true }));
      await writeFileAtomic(paths.specFile, JSON.stringify(spec, null, 2) + '\n', 0o600);

      if (spec.share) {
        await makeSharedMount(spec.share.source, undo);
        mark('share mounted');
        await startVirtiofsd(spec.virtiofsd, spec.share.source, paths, undo);
        mark('virtiofsd up');
      }

      // The caller's own preparation (the pod's network namespace) ran alongside the steps above.
      if (opts.beforeQemu) await opts.beforeQemu;
      const pid = await startQemu(spec, paths, startTimeoutMs, undo);
      mark('QMP socket up');
      // QEMU opens its QMP socket before it loads the kernel: a bad kernel or
      // initrd ends QEMU right after, and its log says why.
      const qmp = await connectQmp(paths.qmpSocket, pid, startTimeoutMs).catch(async (err) => {
        if (await waitGone(pid, 1_000)) throw new VmError('QEMU_START', `start QEMU: ${(await readTail(paths.qemuLog)) || errorMessage(err)}`, { vm: spec.id });
        throw err;
      });
      undo.push('close QMP', () => qmp.close());
      const vm = new Vm(spec, paths, pid, qmp);
      mark('QMP connected');
      undo.commit();
      log.info('VM launched', { vm: spec.id, pid, accel: spec.accel });
      return vm;
    } catch (err) {
      const undoFailures = await undo.run();
      const more = undoFailures.length > 0 ? ` (cleanup also failed: ${undoFailures.join('; ')})` : '';
      throw new VmError('VM_LAUNCH', `launch VM ${spec.id}: ${errorMessage(err)}${more}`, { vm: spec.id }, err);
    }
  }

  /** Attaches to a VM started earlier (e.g. by a frakti that has since restarted). */
  static async attach(dir: string, opts: { timeoutMs?: number } = {}): Promise<Vm> {
    const paths = vmPaths(dir);
    let spec: ValidVmSpec;
    try {
      spec = validateVmSpec(JSON.parse(await readFile(paths.specFile, 'utf8')) as VmSpec);
    } catch (err) {
      throw new VmError('VM_NOT_FOUND', `attach VM in ${dir}: no usable ${paths.specFile}: ${errorMessage(err)}`, { dir }, err);
    }
    const pid = await readPidFile(paths.pidFile);
    if (pid === undefined || !(await isAlive(pid))) {
      throw new VmError('VM_GONE', `attach VM ${spec.id}: QEMU is not running (pid file ${paths.pidFile})`, { vm: spec.id });
    }
    const qmp = await QmpClient.connect(paths.qmpSocket, { timeoutMs: opts.timeoutMs ?? QEMU_START_TIMEOUT_MS });
    return new Vm(spec, paths, pid, qmp);
  }

  /** The last bytes the guest printed on its serial console (bounded ring in QEMU). */
  async readConsole(maxBytes = 64 * 1024): Promise<string> {
    if (this.state !== 'running') return '';
    return this.qmpClient.execute<string>('ringbuf-read', { device: CONSOLE_CHARDEV_ID, size: maxBytes, format: 'utf8' });
  }

  /**
   * Stops the VM and removes everything it made: the guest is asked to power
   * off (graceful), then QEMU is told to quit, then killed; virtiofsd stopped,
   * the share unmounted, the VM directory removed. Bounded by timeoutMs.
   */
  async stop(opts: StopOptions = {}): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? VM_STOP_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    const left = () => Math.max(0, deadline - Date.now());
    if (this.state === 'running') {
      this.transition('stopping');
      if (opts.graceful) {
        try {
          await withTimeout(opts.graceful(), left() / 2);
          await waitGone(this.pid, left() / 2);
        } catch (err) {
          log.warn('graceful VM stop failed, quitting through QMP', { vm: this.id, err: errorMessage(err) });
        }
      }
      if (await isAlive(this.pid)) {
        await this.qmpClient.execute('quit', undefined, { timeoutMs: Math.min(QMP_QUIT_GRACE_MS, left()) }).catch(() => {});
        if (!(await waitGone(this.pid, Math.min(QMP_QUIT_GRACE_MS, left())))) await terminate(this.pid, KILL_GRACE_MS);
      }
      this.qmpClient.close();
      this.transition('stopped');
    }
    await this.cleanup();
  }

  /** Kills QEMU at once (no guest shutdown); used when a VM must go now. */
  kill(): void {
    signal(this.pid, 'SIGKILL');
  }

  /** Removes what the VM left on the host once QEMU is gone. Idempotent. */
  async cleanup(): Promise<void> {
    await stopVirtiofsd(this.paths);
    if (this.spec.share) await unmountShare(this.spec.share.source);
    await rm(this.paths.dir, { recursive: true, force: true });
  }

  private transition(to: VmState): void {
    log.debug(`VM ${this.id}: ${this.state} -> ${to}`);
    this.state = to;
    if (to !== 'running') clearInterval(this.processWatch);
  }

  /**
   * Every VIRTIOFSD_WATCH_MS: QEMU gone without its QMP close being seen (or
   * slower to die than onQmpClosed waits) is an exit all the same; and a
   * guest whose virtiofsd died waits on its file system for ever (QEMU goes
   * on), so such a VM is killed with the reason and ends as any VM that died
   * does, its containers exited and its pod not ready.
   */
  private watchProcesses(): void {
    let checking = false;
    let virtiofsd: number | undefined;
    this.processWatch = setInterval(() => {
      if (checking || this.state !== 'running') return;
      checking = true;
      void (async () => {
        if (!(await isAlive(this.pid))) return this.exited();
        if (!this.spec.share) return;
        const pid = (virtiofsd ??= await readPidFile(this.paths.virtiofsdPidFile));
        if (this.state === 'running' && (pid === undefined || !(await isAlive(pid)))) {
          log.warn('virtiofsd exited: the VM is killed, its file system is gone', { vm: this.id, virtiofsd: pid });
          this.shutdownReason ||= 'virtiofsd exited: the guest lost its file system';
          this.kill();
        }
      })().finally(() => (checking = false));
    }, VIRTIOFSD_WATCH_MS);
    this.processWatch.unref();
  }

  private watch(qmp: QmpClient): void {
    qmp.on('event', (ev: QmpEvent) => {
      if (ev.event === 'SHUTDOWN') this.shutdownReason = String(ev.data?.reason ?? 'shutdown');
    });
    qmp.on('close', (err?: Error) => {
      // Closed by frakti (shutting down, or giving the VM up): no longer watched.
      if (err === undefined) clearInterval(this.processWatch);
      else void this.onQmpClosed();
    });
  }

  // QEMU closes QMP when it exits: the sign of an exit, confirmed by the pid.
  private async onQmpClosed(): Promise<void> {
    if (this.state !== 'running') return;
    if (!(await waitGone(this.pid, 2_000))) {
      // Slow to die, or QMP alone went: the process watch reports the exit when it comes.
      log.warn('QMP connection lost but QEMU still runs', { vm: this.id, pid: this.pid });
      return;
    }
    this.exited();
  }

  private exited(): void {
    if (this.state !== 'running') return;
    this.transition('exited');
    this.exitInfo = { unexpected: true, reason: this.shutdownReason || 'QEMU exited (killed or crashed)' };
    log.warn('VM exited unexpectedly', { vm: this.id, reason: this.exitInfo.reason });
    this.emit('exit', this.exitInfo);
  }
}

/** QEMU binds its socket a moment before it listens: a refused connect is retried, bounded. */
async function connectQmp(path: string, pid: number, timeoutMs: number): Promise<QmpClient> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await QmpClient.connect(path, { timeoutMs: Math.max(1, deadline - Date.now()) });
    } catch (err) {
      const refused = /ECONNREFUSED|ENOENT/.test(errorMessage(err));
      if (!refused || Date.now() >= deadline || !(await isAlive(pid))) throw err;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/**
 * Removes whatever a VM directory still holds when no live Vm object exists
 * (frakti restarted, or the VM died): QEMU and virtiofsd if they still run,
 * the share mount, the directory. Idempotent.
 */
export async function destroyVmDir(dir: string): Promise<void> {
  const paths = vmPaths(dir);
  const pid = await readPidFile(paths.pidFile);
  if (pid !== undefined && (await isAlive(pid))) await terminate(pid, KILL_GRACE_MS);
  await stopVirtiofsd(paths);
  const stragglers = await killStragglers(dir);
  if (stragglers.length > 0) log.warn('killed VM processes that had no pid file', { dir, pids: stragglers });
  try {
    const spec = JSON.parse(await readFile(paths.specFile, 'utf8')) as VmSpec;
    if (spec.share?.source) await unmountShare(spec.share.source);
  } catch {
    /* no spec: nothing was shared */
  }
  await rm(dir, { recursive: true, force: true });
}

async function startQemu(spec: ValidVmSpec, paths: VmPaths, timeoutMs: number, undo: UndoStack): Promise<number> {
  for (const f of [paths.qmpSocket, paths.debugQmpSocket, paths.agentSocket, paths.pidFile]) await rm(f, { force: true });
  // QEMU's own stderr goes to a file: it must outlive frakti, so no pipe to us.
  const logFile = await open(paths.qemuLog, 'w', 0o600);
  let child;
  try {
    // In the pod's network namespace when it has one: the taps are there. nsenter execs, so the pid is QEMU's.
    const [cmd, args] = spec.netns ? ['nsenter', [`--net=${spec.netns}`, '--', spec.qemu, ...qemuArgs(spec, paths)]] : [spec.qemu, qemuArgs(spec, paths)];
    child = spawn(cmd, args, { detached: true, stdio: ['ignore', 'ignore', logFile.fd] });
  } finally {
    await logFile.close();
  }
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const pid = child.pid;
  if (pid === undefined) throw new VmError('QEMU_START', `start QEMU ${spec.qemu}: ${errorMessage(await spawnError)}`, { vm: spec.id });
  child.unref();
  undo.push(`kill QEMU ${pid}`, () => terminate(pid, KILL_GRACE_MS));
  // QEMU creates the QMP socket once the command line and every device are set up.
  const up = await waitForPath(paths.qmpSocket, timeoutMs, () => isAlive(pid));
  if (!up) {
    const alive = await isAlive(pid);
    const why = alive ? `no QMP socket within ${timeoutMs} ms` : (await readTail(paths.qemuLog)) || 'QEMU exited at once';
    throw new VmError('QEMU_START', `start QEMU: ${why}`, { vm: spec.id });
  }
  return pid;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${Math.round(ms)} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
