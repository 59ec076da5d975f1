// The RuntimeService messages frakti's pod and container handlers read and
// write, as @grpc/proto-loader presents them (PROTO_LOADER_OPTIONS in
// proto.ts: names as in api.proto, int64 as decimal strings, enums as names,
// unset messages as null). Only the fields frakti uses are typed.
import type { ImageSpec, Int64, Int64Value, StringMap, UInt64Value, FilesystemUsage } from './cri-types.js';

export type NamespaceMode = 'POD' | 'CONTAINER' | 'NODE' | 'TARGET';
export type PodSandboxState = 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
export type ContainerState = 'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';
export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface PodSandboxMetadata { name: string; uid: string; namespace: string; attempt: number }
export interface NamespaceOption { network: NamespaceMode; pid: NamespaceMode; ipc: NamespaceMode; target_id: string }
export interface LinuxContainerResources {
  cpu_period: Int64; cpu_quota: Int64; cpu_shares: Int64; memory_limit_in_bytes: Int64;
  oom_score_adj: Int64; cpuset_cpus: string; cpuset_mems: string; unified: StringMap; memory_swap_limit_in_bytes: Int64;
}
export interface PodSandboxConfig {
  metadata: PodSandboxMetadata | null;
  hostname: string;
  log_directory: string;
  dns_config: { servers: string[]; searches: string[]; options: string[] } | null;
  port_mappings: { protocol: Protocol; container_port: number; host_port: number; host_ip: string }[];
  labels: StringMap;
  annotations: StringMap;
  linux: {
    cgroup_parent: string;
    security_context: { namespace_options: NamespaceOption | null; privileged: boolean; seccomp_profile_path?: string; seccomp?: SecurityProfile | null } | null;
    sysctls: StringMap;
    overhead: LinuxContainerResources | null;
    resources: LinuxContainerResources | null;
  } | null;
}

export interface ContainerConfig {
  metadata: { name: string; attempt: number } | null;
  image: ImageSpec | null;
  command: string[];
  args: string[];
  working_dir: string;
  envs: { key: string; value: string }[];
  mounts: { container_path: string; host_path: string; readonly: boolean; propagation: string }[];
  devices: { container_path: string; host_path: string; permissions: string }[];
  /** A Signal enum name ("SIGNAL_SIGUSR1"); absent or SIGNAL_RUNTIME_DEFAULT: the image's or SIGTERM. */
  stop_signal?: string;
  labels: StringMap;
  annotations: StringMap;
  log_path: string;
  stdin: boolean;
  stdin_once: boolean;
  tty: boolean;
  linux: {
    resources: LinuxContainerResources | null;
    security_context: {
      capabilities: { add_capabilities: string[]; drop_capabilities: string[]; add_ambient_capabilities?: string[] } | null;
      privileged: boolean;
      namespace_options: NamespaceOption | null;
      run_as_user: Int64Value | null;
      run_as_username: string;
      run_as_group: Int64Value | null;
      readonly_rootfs: boolean;
      supplemental_groups: Int64[];
      no_new_privs: boolean;
      seccomp_profile_path?: string;
      seccomp?: SecurityProfile | null;
      masked_paths?: string[];
      readonly_paths?: string[];
      apparmor?: SecurityProfile | null;
      apparmor_profile?: string;
    } | null;
  } | null;
}

export interface SecurityProfile {
  profile_type: 'RuntimeDefault' | 'Unconfined' | 'Localhost';
  localhost_ref: string;
}

export interface PodSandboxStatus {
  id: string;
  metadata: PodSandboxMetadata;
  state: PodSandboxState;
  created_at: Int64;
  network: { ip: string; additional_ips: { ip: string }[] } | null;
  linux: { namespaces: { options: NamespaceOption } } | null;
  labels: StringMap;
  annotations: StringMap;
  runtime_handler: string;
}

export interface PodSandbox {
  id: string;
  metadata: PodSandboxMetadata;
  state: PodSandboxState;
  created_at: Int64;
  labels: StringMap;
  annotations: StringMap;
  runtime_handler: string;
}

export interface Container {
  id: string;
  pod_sandbox_id: string;
  metadata: { name: string; attempt: number };
  image: { image: string };
  image_ref: string;
  state: ContainerState;
  created_at: Int64;
  labels: StringMap;
  annotations: StringMap;
  image_id: string;
}

export interface ContainerStatus {
  id: string;
  metadata: { name: string; attempt: number };
  state: ContainerState;
  created_at: Int64;
  started_at: Int64;
  finished_at: Int64;
  exit_code: number;
  image: { image: string };
  image_ref: string;
  reason: string;
  message: string;
  labels: StringMap;
  annotations: StringMap;
  mounts: { container_path: string; host_path: string; readonly: boolean }[];
  log_path: string;
  image_id: string;
  stop_signal?: string;
}

export interface CpuUsage { timestamp: Int64; usage_core_nano_seconds: UInt64Value | null; usage_nano_cores: UInt64Value | null }
export interface MemoryUsage { timestamp: Int64; working_set_bytes: UInt64Value | null; usage_bytes: UInt64Value | null; available_bytes: UInt64Value | null }
export interface ContainerStats {
  attributes: { id: string; metadata: { name: string; attempt: number }; labels: StringMap; annotations: StringMap };
  cpu: CpuUsage | null;
  memory: MemoryUsage | null;
  writable_layer: FilesystemUsage | null;
}
