// The pod room's own description of pods and containers: what src/cri
// translates the CRI messages into. Plain data, persisted as JSON.

export interface PodMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt: number;
}

export interface DnsConfig {
  servers: string[];
  searches: string[];
  options: string[];
}

export interface PortMappingSpec {
  protocol: 'tcp' | 'udp' | 'sctp';
  containerPort: number;
  hostPort: number;
  hostIp: string;
}

/** How the pod's containers share PID namespaces: one per pod, or one per container. */
export type PidMode = 'pod' | 'container';

export interface PodSpec {
  metadata: PodMetadata;
  hostname: string;
  logDirectory: string;
  dns: DnsConfig;
  /** The request had no DNS config: the pod gets the node's resolver settings (containerd does the same). */
  dnsFromHost?: boolean;
  portMappings: PortMappingSpec[];
  labels: Record<string, string>;
  annotations: Record<string, string>;
  pidMode: PidMode;
  sysctls: Record<string, string>;
  /** VM size; from the pod's resources/overhead when given, else the daemon's defaults. */
  cpus: number;
  memoryMiB: number;
  runtimeHandler: string;
}

export type PodState = 'READY' | 'NOTREADY';

export interface PodRecordMeta {
  id: string;
  spec: PodSpec;
  createdAt: number;
  /** Network namespace name (/run/netns/NAME). */
  netns: string;
}

export interface PodRecordStatus {
  state: PodState;
  /** Set when a teardown step failed: a later Stop/Remove must finish it. */
  unknown?: string;
  ips: string[];
  vmPid?: number;
  /** Why the pod is NOTREADY when frakti did not stop it (e.g. the VM died). */
  reason?: string;
}

export interface MountSpec {
  containerPath: string;
  hostPath: string;
  readonly: boolean;
  /**
   * Whether mounts made on the host under hostPath later reach the container
   * (HOST_TO_CONTAINER; the default for records from before it existed) or
   * not (PRIVATE). Bidirectional cannot cross a VM.
   */
  propagation?: 'private' | 'host-to-container';
}

/** A host device for the container (CRI `devices`): a block device is hot-plugged into the pod's VM. */
export interface DeviceSpec {
  containerPath: string;
  hostPath: string;
  /** cgroup-style: r, w, m. Without w the disk is plugged read-only. */
  permissions: string;
}

export interface ContainerResources {
  cpuShares?: number;
  cpuQuota?: number;
  cpuPeriod?: number;
  memoryLimitBytes?: number;
  cpusetCpus?: string;
}

export interface ContainerSpec {
  name: string;
  attempt: number;
  /** The image as the client named it, and the resolved image id. */
  imageRef: string;
  imageId: string;
  command: string[];
  args: string[];
  env: [string, string][];
  workingDir: string;
  /** uid, or a user name to resolve inside the image. */
  user: { uid?: number; username?: string; gid?: number; additionalGids: number[] };
  mounts: MountSpec[];
  devices?: DeviceSpec[];
  /** The container's seccomp profile: none, frakti's RuntimeDefault, or a profile file on the host. */
  seccomp?: { type: 'unconfined' } | { type: 'runtime-default' } | { type: 'localhost'; path: string };
  /** As the client asked ("SIGUSR1"; empty: the image's or SIGTERM); the record holds the one chosen. */
  stopSignal?: string;
  /** runc's maskedPaths and readonlyPaths (records from before they existed have none). */
  maskedPaths?: string[];
  readonlyPaths?: string[];
  logPath: string;
  tty: boolean;
  stdin: boolean;
  stdinOnce: boolean;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  readonlyRootfs: boolean;
  privileged: boolean;
  /** ambient: also raised as ambient (kept by a non-root user across execve); records from before it have none. */
  capabilities: { add: string[]; drop: string[]; ambient?: string[] };
  noNewPrivileges: boolean;
  resources: ContainerResources;
}

export type ContainerState = 'CREATED' | 'RUNNING' | 'EXITED' | 'UNKNOWN';

export interface ContainerRecordMeta {
  id: string;
  podId: string;
  spec: ContainerSpec;
  createdAt: number;
}

export interface ContainerRecordStatus {
  state: ContainerState;
  startedAt?: number;
  finishedAt?: number;
  exitCode?: number;
  reason?: string;
  message?: string;
  pid?: number;
}
