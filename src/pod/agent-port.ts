// What the pod room needs of the guest agent. src/agent-protocol's
// AgentClient implements it; the pod room depends on this shape only, so
// the two rooms stay apart (DESIGN: bottom rooms never import each other,
// and pod composes them).

export interface ShareMount { tag: string; mountPoint: string }          // virtio-fs tag -> guest path
export interface SandboxSetup {
  hostname: string;
  /** Full content of /etc/resolv.conf for the pod ('' = leave the guest's). */
  resolvConf: string;
  /** /etc/hosts content for the pod. */
  hosts: string;
  sysctls: Record<string, string>;
  shares: ShareMount[];
}
export interface GuestInterface { mac: string; name?: string /* default: the NIC with that MAC keeps its name */; mtu: number; addresses: string[] /* CIDRs */ }
export interface GuestRoute { dst: string /* CIDR or 'default' */; gateway?: string; device?: string }
export interface GuestNeighbor { ip: string; mac: string; device?: string }
export interface GuestNetwork { interfaces: GuestInterface[]; routes: GuestRoute[]; neighbors?: GuestNeighbor[] }

export type GuestMount =
  | { kind: 'bind'; source: string /* path inside the guest, e.g. under a share */; destination: string; readonly: boolean }
  | { kind: 'tmpfs' | 'proc' | 'sysfs' | 'devpts' | 'mqueue'; destination: string; options?: string[] };

export interface ProcessSpec {
  /** For exec: env [] and cwd '' mean the container's; uid/gid -1 mean the container's user. */
  args: string[]; env: string[]; cwd: string;
  uid: number; gid: number; additionalGids: number[];
  terminal: boolean; stdin: boolean;
}
export interface GuestContainerSpec {
  id: string;                 // [a-f0-9]{64} or short; validated by the agent too
  rootfs: string;             // path inside the guest (under a share mount)
  readonlyRootfs: boolean;
  hostname: string;
  process: ProcessSpec;
  mounts: GuestMount[];
  capabilities: string[];     // e.g. 'CAP_NET_BIND_SERVICE' (bounding/effective/permitted set)
  noNewPrivileges: boolean;
  /** 'pod': join the pod's shared PID namespace; 'container': its own. */
  pidNamespace: 'pod' | 'container';
  resources: GuestResources;
}
export interface GuestResources { cpuShares?: number; cpuQuota?: number; cpuPeriod?: number; memoryLimitBytes?: number; pidsLimit?: number; cpusetCpus?: string }
export interface ExitStatus { exitCode: number; signal?: string; exitedAt: Date }
export interface ContainerStats { cpuUsageNs: bigint; memoryUsageBytes: number; memoryWorkingSetBytes: number; pids: number; timestamp: Date }
export interface GuestStats { memTotalBytes: number; memAvailableBytes: number; cpus: number }

/** Output of one process; backpressure: the agent stops the writer when the host stops reading. */
export interface ProcessIo {
  stdout: NodeJS.ReadableStream;   // for terminal processes everything arrives on stdout
  stderr: NodeJS.ReadableStream;
  /** present when ProcessSpec.stdin was true */
  stdin?: NodeJS.WritableStream;   // end() closes the process' stdin
}

export interface PodAgent {
  version(opts?: { timeoutMs?: number }): Promise<{ agentVersion: string; protocolVersion: number; kernelRelease: string }>;
  shutdown(opts?: { timeoutMs?: number }): Promise<void>;
  close(): void;
  readonly closed: boolean;
  setupSandbox(s: SandboxSetup): Promise<void>;
  configureNetwork(n: GuestNetwork): Promise<void>;
  createContainer(spec: GuestContainerSpec): Promise<void>;
  /** Starts the container's init process; output flows from here on into the returned streams. */
  startContainer(containerId: string): Promise<ProcessIo & { pid: number }>;
  /** execId: caller-chosen [A-Za-z0-9_-]{1,64}, unique within the container. */
  exec(containerId: string, execId: string, process: ProcessSpec): Promise<ProcessIo & { pid: number }>;
  /** execId '' = the container's init process. */
  signal(containerId: string, execId: string, signal: 'SIGTERM' | 'SIGKILL' | 'SIGINT' | 'SIGHUP' | string): Promise<void>;
  /** Resolves when the process has exited (and its output is drained); may be called again after a reconnect. */
  wait(containerId: string, execId: string): Promise<ExitStatus>;
  resizeTty(containerId: string, execId: string, rows: number, cols: number): Promise<void>;
  /** Re-attach to a running process' output after a reconnect (held output arrives first). */
  attachIo(containerId: string, execId: string): Promise<ProcessIo>;
  removeContainer(containerId: string): Promise<void>;   // the container must have exited; force kills first
  updateResources(containerId: string, r: GuestResources): Promise<void>;
  containerStats(containerId: string): Promise<ContainerStats>;
  guestStats(): Promise<GuestStats>;
  /** Online hot-plugged CPUs and memory blocks. */
  onlineHotplugged(): Promise<{ cpus: number; memoryBytes: number }>;
  /** A byte stream to 127.0.0.1:port inside the pod's network; ends when either side closes. */
  portForward(port: number): Promise<NodeJS.ReadWriteStream>;
  /** 'oom' events: (containerId) */
  on(event: 'oom', fn: (containerId: string) => void): this;
  /** Lists what the agent runs (for recovery after a frakti restart). */
  listContainers(): Promise<{ id: string; state: 'created' | 'running' | 'exited'; pid: number; exit?: ExitStatus }[]>;
}
