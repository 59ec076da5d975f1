// A real pod VM for agent tests: our kernel and initrd under QEMU, a
// virtio-fs share, the agent connected; plus busybox root filesystems built
// from Debian's /bin/busybox under the share. Everything is removed in
// stop(), also when a test failed.
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { AgentClient, connectAgent, waitForAgent, type GuestContainerSpec, type ProcessSpec } from '../../src/agent-protocol/index.js';
import { guestAssets, Vm } from '../../src/vmm/index.js';
import { killLeftovers, mountsUnder } from './vmm-leaks.js';

export const SHARE_TAG = 'frakti-shared';
/** Where the guest mounts the share. */
export const GUEST_SHARE = '/run/frakti/shared';
const APPLETS = [
  'sh', 'echo', 'cat', 'sleep', 'id', 'ls', 'nc', 'sha256sum', 'dd', 'head', 'true', 'false', 'hostname', 'ps', 'touch',
  'kill', 'stty', 'wc', 'yes', 'seq', 'grep', 'tr', 'mkdir', 'env', 'pwd', 'tee', 'sed', 'ip',
];

export interface AgentVm {
  vm: Vm;
  agent: AgentClient;
  dir: string;
  share: string;
  /** Builds a busybox rootfs named `name` under the share; returns its guest path. */
  rootfs(name: string): Promise<string>;
  /** A new host connection; `once`: one attempt, no retry after a handshake timeout. */
  reconnect(opts?: { once?: boolean }): Promise<AgentClient>;
  stop(): Promise<void>;
}

export interface AgentVmOptions {
  cpus?: number;
  maxCpus?: number;
  memoryMiB?: number;
  /** Above memoryMiB: DIMMs can be hot-plugged up to this. */
  maxMemoryMiB?: number;
  /** Appended to the guest kernel command line. */
  kernelArgs?: string[];
}

export async function startAgentVm(opts: AgentVmOptions = {}): Promise<AgentVm> {
  const assets = guestAssets();
  const dir = await mkdtemp(join(tmpdir(), 'frakti-agentvm-'));
  const share = join(dir, 'share');
  await mkdir(share);
  let vm: Vm | undefined;
  let agent: AgentClient | undefined;
  const stop = async () => {
    try {
      if (vm) await vm.stop({ graceful: async () => { if (agent && !agent.closed) await agent.shutdown(); }, timeoutMs: 10_000 });
    } finally {
      agent?.close();
      await killLeftovers(dir);
      for (const m of (await mountsUnder(dir)).reverse()) await execa('umount', ['-l', m], { reject: false });
      await rm(dir, { recursive: true, force: true });
    }
  };
  try {
    vm = await Vm.launch({
      id: 'agent-test',
      dir: join(dir, 'vm'),
      cpus: opts.cpus ?? 1,
      maxCpus: opts.maxCpus ?? opts.cpus ?? 1,
      memoryMiB: opts.memoryMiB ?? 512,
      maxMemoryMiB: opts.maxMemoryMiB ?? opts.memoryMiB ?? 512,
      kernelArgs: opts.kernelArgs ?? [],
      kernel: assets.kernel,
      initrd: assets.initrd,
      accel: 'tcg',
      channel: { kind: 'serial' },
      share: { source: share, tag: SHARE_TAG },
    });
    agent = await waitForAgent(vm.agentEndpoint(), { timeoutMs: 30_000 });
    await agent.setupSandbox({ hostname: 'pod-test', resolvConf: 'nameserver 10.9.9.9\n', hosts: '127.0.0.1 localhost\n', sysctls: { 'net.ipv4.ip_forward': '1' }, shares: [{ tag: SHARE_TAG, mountPoint: GUEST_SHARE }] });
  } catch (err) {
    await stop();
    throw err;
  }
  const result: AgentVm = {
    vm,
    agent,
    dir,
    share,
    async rootfs(name) {
      const root = join(share, name);
      await mkdir(join(root, 'bin'), { recursive: true });
      await mkdir(join(root, 'etc'));
      await mkdir(join(root, 'tmp'), { mode: 0o1777 });
      await copyFile('/bin/busybox', join(root, 'bin/busybox'));
      for (const a of APPLETS) await symlink('busybox', join(root, 'bin', a));
      await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n');
      await writeFile(join(root, 'etc/group'), 'root:x:0:\nuser:x:1000:\nextra:x:2000:user\n');
      return `${GUEST_SHARE}/${name}`;
    },
    async reconnect(opts = {}) {
      result.agent.close();
      agent = opts.once
        ? await connectAgent(vm!.agentEndpoint(), { timeoutMs: 10_000 })
        : await waitForAgent(vm!.agentEndpoint(), { timeoutMs: 30_000 });
      result.agent = agent;
      return agent;
    },
    stop,
  };
  return result;
}

/** A container of the VM running `sleep` (unless extra says otherwise), in a PID namespace of its own. */
export function containerSpec(id: string, rootfs: string, extra: Partial<GuestContainerSpec> = {}): GuestContainerSpec {
  return {
    id,
    rootfs,
    readonlyRootfs: false,
    hostname: id,
    process: proc(['sleep', '100000']),
    mounts: [],
    capabilities: ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_SETUID', 'CAP_SETGID', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'],
    noNewPrivileges: true,
    pidNamespace: 'container',
    resources: {},
    ...extra,
  };
}

export function proc(args: string[], extra: Partial<ProcessSpec> = {}): ProcessSpec {
  return { args, env: ['PATH=/bin', 'HOME=/'], cwd: '/', uid: 0, gid: 0, additionalGids: [], terminal: false, stdin: false, ...extra };
}

/** Exec defaults: the container's env, cwd and user. */
export function execProc(args: string[], extra: Partial<ProcessSpec> = {}): ProcessSpec {
  return { args, env: [], cwd: '', uid: -1, gid: -1, additionalGids: [], terminal: false, stdin: false, ...extra };
}

export async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}
