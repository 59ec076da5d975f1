// The shapes of the agent calls as the host sees them. They match what the
// pod room asks of an agent (src/pod/agent-port.ts) field for field, so an
// AgentClient is a PodAgent without either room importing the other.

export interface ShareMount {
  tag: string;
  mountPoint: string;
}

export interface SandboxSetup {
  hostname: string;
  /** Full content of /etc/resolv.conf ('' = leave the guest's). */
  resolvConf: string;
  /** /etc/hosts content ('' = leave the guest's). */
  hosts: string;
  sysctls: Record<string, string>;
  shares: ShareMount[];
}

export interface GuestInterface {
  mac: string;
  /** Default: the NIC with that MAC keeps its name. */
  name?: string;
  mtu: number;
  /** CIDRs. */
  addresses: string[];
  /** The MAC the NIC found by `mac` takes (a pool VM's NIC, booted before the pod's MAC was known). */
  setMac?: string;
}
export interface GuestRoute {
  /** CIDR or 'default'. */
  dst: string;
  gateway?: string;
  device?: string;
}
export interface GuestNeighbor {
  ip: string;
  mac: string;
  device?: string;
}
export interface GuestNetwork {
  interfaces: GuestInterface[];
  routes: GuestRoute[];
  neighbors?: GuestNeighbor[];
}

export type GuestMount =
  | { kind: 'bind'; source: string; destination: string; readonly: boolean }
  | { kind: 'tmpfs' | 'proc' | 'sysfs' | 'devpts' | 'mqueue'; destination: string; options?: string[] }
  /** The pod's own tmpfs under /run/frakti/tmpfs (made on first use), bound into the container. */
  | { kind: 'tmpfs'; source: string; destination: string; readonly: boolean; options?: string[] }
  /** A hot-plugged disk, found by its virtio serial: mounted with its filesystem (block) or as a device node (blockdev). */
  | { kind: 'block' | 'blockdev'; serial: string; destination: string; readonly: boolean; fsType?: string; options?: string[]; /** blockdev: the CRI permissions, of "rwm" */ access?: string };

export interface ProcessSpec {
  /** For exec: env [] and cwd '' mean the container's; uid/gid -1 mean the container's user. */
  args: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  additionalGids: number[];
  terminal: boolean;
  stdin: boolean;
}

export interface GuestResources {
  cpuShares?: number;
  cpuQuota?: number;
  cpuPeriod?: number;
  memoryLimitBytes?: number;
  pidsLimit?: number;
  cpusetCpus?: string;
}

export interface GuestContainerSpec {
  id: string;
  rootfs: string;
  readonlyRootfs: boolean;
  hostname: string;
  process: ProcessSpec;
  mounts: GuestMount[];
  capabilities: string[];
  noNewPrivileges: boolean;
  /** 'pod': the pod's shared PID namespace; 'container': its own. */
  pidNamespace: 'pod' | 'container';
  resources: GuestResources;
  /** Hidden from the container (runc's maskedPaths). */
  maskedPaths?: string[];
  /** Read-only in the container (runc's readonlyPaths). */
  readonlyPaths?: string[];
  /** Of `capabilities`: raised as ambient too (kept by a non-root user across execve). */
  ambientCapabilities?: string[];
  /** A compiled seccomp filter: struct sock_filter entries; absent: unconfined. */
  seccompFilter?: Buffer;
}

export interface ExitStatus {
  exitCode: number;
  signal?: string;
  exitedAt: Date;
}

export interface ContainerStats {
  cpuUsageNs: bigint;
  memoryUsageBytes: number;
  memoryWorkingSetBytes: number;
  pids: number;
  timestamp: Date;
}

export interface GuestStats {
  memTotalBytes: number;
  memAvailableBytes: number;
  cpus: number;
}

/** Output of one process; backpressure: the agent stops the writer when the host stops reading. */
export interface ProcessIo {
  /** With a terminal everything arrives here. */
  stdout: NodeJS.ReadableStream;
  stderr: NodeJS.ReadableStream;
  /** Present when ProcessSpec.stdin was true; end() closes the process' stdin. */
  stdin?: NodeJS.WritableStream;
  /**
   * With `ack: 'caller'`: n more bytes read from that stream are stored, so
   * the agent may forget them. Unacknowledged output is sent again after a
   * reconnect (AttachIo). A no-op in the default mode, where reading is enough.
   */
  acknowledge(stream: 'stdout' | 'stderr', n: number): void;
}

export interface IoOptions {
  /**
   * 'read' (default): output counts as delivered once read from the stream.
   * 'caller': only once acknowledge() says so, e.g. after it reached a log
   * file, so a host crash in between loses nothing.
   */
  ack?: 'read' | 'caller';
}

export interface ContainerInfo {
  id: string;
  state: 'created' | 'running' | 'exited';
  pid: number;
  exit?: ExitStatus;
  /** Exec processes still running in the container. */
  runningExecs: string[];
}
