// What the pod room needs of the guest agent. src/agent-protocol's
// AgentClient implements it; the pod room codes against this interface so
// that a test can hand in another agent. The data types are the protocol
// room's own.
import type {
  ContainerInfo, ContainerStats, ExitStatus, GuestContainerSpec, GuestNetwork, GuestResources, GuestStats, IoOptions, ProcessIo, ProcessSpec, SandboxSetup,
} from '../agent-protocol/index.js';

export type {
  ContainerStats, ExitStatus, GuestContainerSpec, GuestInterface, GuestMount, GuestNetwork, GuestResources, GuestRoute, GuestStats, ProcessIo, ProcessSpec, SandboxSetup, ShareMount,
} from '../agent-protocol/index.js';

export interface PodAgent {
  version(opts?: { timeoutMs?: number }): Promise<{ agentVersion: string; protocolVersion: number; kernelRelease: string }>;
  shutdown(opts?: { timeoutMs?: number }): Promise<void>;
  close(): void;
  readonly closed: boolean;
  setupSandbox(s: SandboxSetup): Promise<void>;
  configureNetwork(n: GuestNetwork): Promise<void>;
  createContainer(spec: GuestContainerSpec, opts?: { timeoutMs?: number }): Promise<void>;
  /** Starts the container's init process; output flows from here on into the returned streams. */
  startContainer(containerId: string, opts?: IoOptions & { timeoutMs?: number }): Promise<ProcessIo & { pid: number }>;
  /** execId: caller-chosen [A-Za-z0-9_-]{1,64}, unique within the container. */
  exec(containerId: string, execId: string, process: ProcessSpec, opts?: { timeoutMs?: number }): Promise<ProcessIo & { pid: number }>;
  /** execId '' = the container's init process. */
  signal(containerId: string, execId: string, signal: 'SIGTERM' | 'SIGKILL' | 'SIGINT' | 'SIGHUP' | string): Promise<void>;
  /** Resolves when the process has exited (and its output is drained); may be called again after a reconnect. */
  wait(containerId: string, execId: string): Promise<ExitStatus>;
  resizeTty(containerId: string, execId: string, rows: number, cols: number): Promise<void>;
  /** Re-attach to a process' output after a reconnect: what the last connection did not acknowledge comes first, then held output. */
  attachIo(containerId: string, execId: string, opts?: IoOptions): Promise<ProcessIo>;
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
  listContainers(): Promise<ContainerInfo[]>;
}
