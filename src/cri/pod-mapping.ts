// CRI pods and containers <-> the pod room's own types. Validation of what
// a client sends happens here, with messages that name the field.
import { isIP } from 'node:net';
import type { ContainerRecordMeta, ContainerRecordStatus, ContainerResources, ContainerSpec, PodRecordMeta, PodRecordStatus, PodSpec } from '../pod/index.js';
import { CriError, invalidArgument } from './errors.js';
import type { StringMap } from './cri-types.js';
import type {
  Container, ContainerConfig, ContainerState, ContainerStatus, LinuxContainerResources, NamespaceOption, PodSandbox, PodSandboxConfig, PodSandboxState, PodSandboxStatus, SecurityProfile,
} from './runtime-types.js';

export interface VmSizing {
  defaultCpus: number;
  defaultMemoryMiB: number;
  /** Memory the guest kernel and agent need on top of the containers' limits. */
  guestOverheadMiB: number;
  maxCpus: number;
  /**
   * The node's memory: a VM never gets more. A limit above it (Kubernetes
   * allows one) would only let a guest push the node into its OOM killer.
   */
  maxMemoryMiB?: number;
}

const MIB = 1024 * 1024;
/**
 * Labels or annotations of one object. The CRI sets no limit and Kubernetes
 * none on the count; this only bounds what one request can make us store.
 */
export const MAX_LABELS = 16_384;
/**
 * Mounts of one container. kubelet sends one per volume plus a few of its
 * own (/etc/hosts, the termination log, the service account); each is a
 * bind mount on the host and in the guest, so this bounds what one request
 * makes us mount.
 */
export const MAX_MOUNTS = 256;
/** Longest pod or container name, namespace or uid: a DNS subdomain's bound, the longest name Kubernetes makes. */
export const MAX_NAME_BYTES = 253;
/**
 * What Kubernetes names and UIDs are made of. It also keeps out what a name
 * must not carry further: CNI_ARGS' separators ';' and '=', NUL (an
 * environment variable cannot hold one), newlines and other control characters.
 */
const NAME_RE = /^[A-Za-z0-9._-]*$/;

/** A client's value in a message, cut short: a refusal of a 1 MiB value should not be 1 MiB long. */
function quoted(v: string): string {
  return JSON.stringify(v.length > 64 ? `${v.slice(0, 64)}...` : v);
}

function checkName(v: string, field: string): string {
  if (v.length > MAX_NAME_BYTES || !NAME_RE.test(v)) {
    throw invalidArgument(`${field} ${quoted(v)} must be at most ${MAX_NAME_BYTES} letters, digits, '.', '_' or '-'`);
  }
  return v;
}

/** Longest path Linux takes (PATH_MAX, with its NUL). */
export const MAX_PATH_BYTES = 4095;

/**
 * A path of the request: no NUL (no system call takes one), at most
 * MAX_PATH_BYTES, absolute where the CRI means a path on the node or in the
 * container (a relative one would be resolved against frakti's own working
 * directory).
 */
function checkPath(v: string, field: string, absolute: boolean): string {
  if (v.includes('\0') || Buffer.byteLength(v) > MAX_PATH_BYTES) throw invalidArgument(`${field} ${quoted(v)} must be a path of at most ${MAX_PATH_BYTES} bytes without NUL`);
  if (absolute && !v.startsWith('/')) throw invalidArgument(`${field} ${quoted(v)} is not an absolute path`);
  return v;
}

/** Longest argument or environment string Linux's execve takes (MAX_ARG_STRLEN). */
export const MAX_ARG_BYTES = 128 * 1024;
/** Most arguments (command and args together), and most environment entries, of a container's process, as the pod room bounds them. */
export const MAX_PROCESS_LIST = 4096;

/** The arguments or environment of the container's process: the guest makes C strings of them for execve. */
function checkProcessStrings(list: string[], field: string): void {
  if (list.length > MAX_PROCESS_LIST) throw invalidArgument(`CreateContainer: ${field}: ${list.length} entries, more than ${MAX_PROCESS_LIST}`);
  list.forEach((v, i) => {
    if (v.includes('\0') || Buffer.byteLength(v) > MAX_ARG_BYTES) throw invalidArgument(`CreateContainer: ${field}[${i}] ${quoted(v)} must be at most ${MAX_ARG_BYTES} bytes without NUL`);
  });
}

/** What Linux takes as a host name (HOST_NAME_MAX). */
export const MAX_HOSTNAME_BYTES = 64;

/** int64 nanoseconds since the epoch, as the CRI wants timestamps. */
export function nanos(ms: number | undefined): string {
  return ms === undefined ? '0' : (BigInt(Math.round(ms)) * 1_000_000n).toString();
}

function int(v: string | number | undefined | null): number {
  const n = Number(v ?? 0);
  return Number.isFinite(n) ? n : 0;
}

function boundedList<T>(items: T[], max: number, field: string): T[] {
  if (items.length > max) throw invalidArgument(`CreateContainer: ${field}: ${items.length} entries, more than ${max}`);
  return items;
}

function stringMap(m: StringMap | undefined | null, field: string): Record<string, string> {
  const out = { ...(m ?? {}) };
  if (Object.keys(out).length > MAX_LABELS) throw invalidArgument(`${field}: more than ${MAX_LABELS} entries`);
  return out;
}

/**
 * An enum field as the request has it: proto-loader gives a known value by
 * its name and an unknown one as its number, which would otherwise be read
 * as whatever the code's default branch makes of it (an unknown seccomp
 * profile type as no profile at all).
 */
function knownEnum<T extends string>(v: T | number | null | undefined, field: string): T | undefined {
  if (typeof v === 'number') throw invalidArgument(`${field}: ${v} is not a value runtime.v1 defines`);
  return v ?? undefined;
}

/** A VM pod cannot share the node's namespaces: say so plainly (another runtime serves such pods). */
function checkNamespaces(ns: NamespaceOption | null | undefined, where: string): 'pod' | 'container' {
  // No options at all means every mode is POD (the enum's zero), as containerd reads it.
  if (!ns) return 'pod';
  for (const [kind, mode] of [['network', ns.network], ['pid', ns.pid], ['ipc', ns.ipc]] as const) {
    knownEnum(mode, `${where}: namespace_options.${kind}`);
    if (mode === 'NODE') {
      throw new CriError('INVALID_ARGUMENT', `${where}: a VM pod cannot share the host's ${kind} namespace (host${kind === 'network' ? 'Network' : kind === 'pid' ? 'PID' : 'IPC'}); frakti sends such pods to the OS-container runtime`);
    }
  }
  if (ns.pid === 'TARGET') throw new CriError('INVALID_ARGUMENT', `${where}: PID namespace TARGET is not supported by VM pods`);
  return ns.pid === 'POD' ? 'pod' : 'container';
}

/**
 * The pod's sysctls: those of the namespaces the pod's containers share in
 * the VM (the network and IPC namespaces: net.*, kernel.shm*, kernel.msg*,
 * kernel.sem, fs.mqueue.*), which are kubelet's namespaced ones but the UTS
 * pair. Any other would change the guest kernel for everything in it, which
 * kubelet never asks of a runtime: refused.
 */
const POD_SYSCTL_RE = /^(net\.|fs\.mqueue\.|kernel\.(shm(all|max|mni|_rmid_forced)|msg(max|mnb|mni)|sem)$)/;

function podSysctls(sysctls: Record<string, string>): Record<string, string> {
  for (const [k, v] of Object.entries(sysctls)) {
    if (!POD_SYSCTL_RE.test(k.replace(/\//g, '.'))) {
      throw invalidArgument(`RunPodSandbox: sysctl ${k} is not one of the pod's namespaces (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*); it would change the VM's kernel as a whole`);
    }
    if (typeof v !== 'string' || v.length > 4096 || /[\n\0]/.test(v)) throw invalidArgument(`RunPodSandbox: sysctl ${k}: bad value`);
  }
  return { ...sysctls };
}

/** containerd's (and runc's spec) default masked and read-only paths. */
export const DEFAULT_MASKED_PATHS = ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware'];
export const DEFAULT_READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

const LEGACY_SECCOMP = new Set(['', 'unconfined', 'runtime/default', 'docker/default']);

/**
 * A seccomp request must be one containerd would take: a Localhost profile
 * names its file, the deprecated path string is one of the known values or
 * `localhost/<path>`. (Applying the profile in the guest is not done yet.)
 */
function checkSeccomp(sc: { privileged: boolean; seccomp_profile_path?: string; seccomp?: SecurityProfile | null } | null | undefined, where: string): void {
  if (!sc || sc.privileged) return; // containerd ignores seccomp for privileged containers
  if (sc.seccomp) {
    knownEnum(sc.seccomp.profile_type, `${where}: seccomp.profile_type`);
    if (sc.seccomp.profile_type === 'Localhost' && !sc.seccomp.localhost_ref) throw invalidArgument(`${where}: a Localhost seccomp profile needs localhost_ref`);
    return;
  }
  const path = sc.seccomp_profile_path ?? '';
  if (LEGACY_SECCOMP.has(path) || (path.startsWith('localhost/') && path.length > 'localhost/'.length)) return;
  throw invalidArgument(`${where}: seccomp profile ${quoted(path)} is not unconfined, runtime/default, docker/default or localhost/<path>`);
}

/**
 * AppArmor cannot confine a container inside a VM: the guest kernel has none,
 * and the host's cannot see the guest's processes. The runtime default and
 * unconfined are taken (the VM is the confinement kubelet's default asks
 * for); a named profile is refused, as containerd refuses one on a host
 * without AppArmor ("apparmor is not supported"). SELinux options are
 * ignored, as containerd ignores them on a host with SELinux off.
 */
function checkAppArmor(sc: { apparmor?: SecurityProfile | null; apparmor_profile?: string; privileged: boolean } | null | undefined): void {
  if (!sc || sc.privileged) return;
  knownEnum(sc.apparmor?.profile_type, 'CreateContainer: apparmor.profile_type');
  const named = sc.apparmor?.profile_type === 'Localhost' ? sc.apparmor.localhost_ref : sc.apparmor_profile?.startsWith('localhost/') ? sc.apparmor_profile.slice('localhost/'.length) : '';
  if (named) throw invalidArgument(`CreateContainer: AppArmor profile ${quoted(named)} cannot be applied in a VM pod (the guest kernel has no AppArmor); use RuntimeDefault or Unconfined, or run the pod as OS containers`);
}

/**
 * The container's seccomp profile, as containerd reads the request: the
 * SecurityProfile if given, else the older path string; nothing asked means
 * unconfined (kubelet asks for RuntimeDefault when the pod or the node's
 * seccompDefault does). A Localhost profile names an absolute file on the host.
 */
function containerSeccomp(sc: Parameters<typeof checkSeccomp>[0]): { type: 'unconfined' } | { type: 'runtime-default' } | { type: 'localhost'; path: string } {
  checkSeccomp(sc, 'CreateContainer');
  if (!sc || sc.privileged) return { type: 'unconfined' };
  const localhost = (path: string) => ({ type: 'localhost' as const, path: checkPath(path, 'CreateContainer: seccomp profile', true) });
  if (sc.seccomp) {
    if (sc.seccomp.profile_type === 'RuntimeDefault') return { type: 'runtime-default' };
    if (sc.seccomp.profile_type === 'Localhost') return localhost(sc.seccomp.localhost_ref);
    return { type: 'unconfined' };
  }
  const path = sc.seccomp_profile_path ?? '';
  if (path === 'runtime/default' || path === 'docker/default') return { type: 'runtime-default' };
  if (path.startsWith('localhost/')) return localhost(path.slice('localhost/'.length));
  return { type: 'unconfined' };
}

/** The VM's vCPUs and memory: from the pod's resources and overhead when kubelet sends them. */
export function vmSize(linux: PodSandboxConfig['linux'], s: VmSizing): { cpus: number; memoryMiB: number } {
  const t = vmSizeFor(linux?.resources, linux?.overhead, s);
  return { cpus: t.cpus ?? s.defaultCpus, memoryMiB: t.memoryMiB ?? s.defaultMemoryMiB };
}

/** What resources plus overhead ask of the VM; a dimension they leave unset stays unset. */
export function vmSizeFor(r: LinuxContainerResources | null | undefined, o: LinuxContainerResources | null | undefined, s: VmSizing): { cpus?: number; memoryMiB?: number } {
  const period = int(r?.cpu_period) || int(o?.cpu_period) || 100_000;
  const quota = Math.max(0, int(r?.cpu_quota)) + Math.max(0, int(o?.cpu_quota));
  const mem = Math.max(0, int(r?.memory_limit_in_bytes)) + Math.max(0, int(o?.memory_limit_in_bytes));
  return {
    ...(quota > 0 ? { cpus: Math.min(s.maxCpus, Math.max(1, Math.ceil(quota / period))) } : {}),
    ...(mem > 0 ? { memoryMiB: Math.min(s.maxMemoryMiB ?? Infinity, Math.ceil(mem / MIB) + s.guestOverheadMiB) } : {}),
  };
}

/**
 * The pod's host name when the request names none (crictl and test suites
 * send none): the pod's name cut the way kubelet cuts it for a pod's
 * hostname (63 bytes, no trailing '-' or '.'), with anything a host name
 * cannot hold made '-'. containerd gives such pods the node's name instead;
 * a tenant's VM is not told which node it runs on.
 */
export function hostnameFromPodName(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9.-]/g, '-').slice(0, 63).replace(/^[-.]+|[-.]+$/g, '');
  return cleaned || 'pod';
}

function podHostname(config: PodSandboxConfig, name: string): string {
  if (!config.hostname) return hostnameFromPodName(name);
  if (Buffer.byteLength(config.hostname) > MAX_HOSTNAME_BYTES) throw invalidArgument(`RunPodSandbox: hostname is ${Buffer.byteLength(config.hostname)} bytes; Linux takes at most ${MAX_HOSTNAME_BYTES}`);
  return config.hostname;
}

export function toPodSpec(config: PodSandboxConfig | null, runtimeHandler: string, sizing: VmSizing): PodSpec {
  if (!config?.metadata) throw invalidArgument('RunPodSandbox: config.metadata is required');
  const m = config.metadata;
  // containerd takes an empty namespace or uid (crictl's examples leave uid out); the name makes the pod's identity.
  if (!m.name) throw invalidArgument('RunPodSandbox: metadata.name is required');
  for (const k of ['name', 'namespace', 'uid'] as const) checkName(m[k], `RunPodSandbox: metadata.${k}`);
  if (config.log_directory) checkPath(config.log_directory, 'RunPodSandbox: log_directory', true);
  // They size the VM only; checked here, a value out of range is refused before anything is made.
  resources(config.linux?.resources);
  resources(config.linux?.overhead);
  const ports = config.port_mappings.map((p) => {
    if (!Number.isInteger(p.container_port) || p.container_port < 1 || p.container_port > 65535) throw invalidArgument(`port mapping: container_port ${p.container_port} out of range`);
    if (!Number.isInteger(p.host_port) || p.host_port < 0 || p.host_port > 65535) throw invalidArgument(`port mapping: host_port ${p.host_port} out of range`);
    const protocol = knownEnum(p.protocol, 'port mapping: protocol') || 'TCP';
    // CNI's portmap plugin takes an address or nothing; anything else fails the pod's network after its VM booted.
    if (p.host_ip && isIP(p.host_ip) === 0) throw invalidArgument(`port mapping: host_ip ${quoted(p.host_ip)} is not an IP address`);
    return { protocol: protocol.toLowerCase() as 'tcp' | 'udp' | 'sctp', containerPort: p.container_port, hostPort: p.host_port, hostIp: p.host_ip };
  });
  const pidMode = checkNamespaces(config.linux?.security_context?.namespace_options, 'RunPodSandbox');
  checkSeccomp(config.linux?.security_context, 'RunPodSandbox');
  if (config.linux?.security_context?.privileged) throw invalidArgument('RunPodSandbox: privileged pods cannot run in a VM; frakti sends them to the OS-container runtime');
  return {
    metadata: { name: m.name, uid: m.uid, namespace: m.namespace, attempt: m.attempt },
    hostname: podHostname(config, m.name),
    logDirectory: config.log_directory,
    dns: { servers: config.dns_config?.servers ?? [], searches: config.dns_config?.searches ?? [], options: config.dns_config?.options ?? [] },
    ...(config.dns_config ? {} : { dnsFromHost: true }),
    portMappings: ports.filter((p) => p.hostPort > 0),
    labels: stringMap(config.labels, 'labels'),
    annotations: stringMap(config.annotations, 'annotations'),
    pidMode,
    sysctls: podSysctls(config.linux?.sysctls ?? {}),
    ...vmSize(config.linux, sizing),
    runtimeHandler,
  };
}

/** Largest cgroup v1 CPU shares, and CPU period (1 s), the kernel takes. */
const MAX_CPU_SHARES = 262_144;
const MAX_CPU_PERIOD_US = 1_000_000;

/** A resource value, refused past `max` (an int64 of 2^63 would otherwise reach the guest as a float). */
function upTo(v: string | number | undefined | null, max: number, field: string): number {
  const n = int(v);
  if (n > max) throw invalidArgument(`resources: ${field} ${String(v)} exceeds ${max}`);
  return n;
}

function resources(r: LinuxContainerResources | null | undefined): ContainerResources {
  if (!r) return {};
  const out: ContainerResources = {};
  const shares = upTo(r.cpu_shares, MAX_CPU_SHARES, 'cpu_shares');
  const quota = upTo(r.cpu_quota, Number.MAX_SAFE_INTEGER, 'cpu_quota');
  const period = upTo(r.cpu_period, MAX_CPU_PERIOD_US, 'cpu_period');
  const memory = upTo(r.memory_limit_in_bytes, Number.MAX_SAFE_INTEGER, 'memory_limit_in_bytes');
  if (shares > 0) out.cpuShares = shares;
  if (quota > 0) out.cpuQuota = quota;
  if (period > 0) out.cpuPeriod = period;
  if (memory > 0) out.memoryLimitBytes = memory;
  // cpuset_cpus and cpuset_mems are left out: kubelet's CPU manager numbers the
  // host's CPUs and NUMA nodes, which the guest does not have.
  return out;
}

export function toResources(r: LinuxContainerResources | null | undefined): ContainerResources {
  return resources(r);
}

/** A user or group id: 0 .. 2^32-2 ((uid_t)-1 means "no id" to the kernel). */
function linuxId(v: string | number, field: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 0xfffffffe) throw invalidArgument(`CreateContainer: ${field} ${String(v)} is not a user or group id (0 to ${0xfffffffe})`);
  return n;
}

/** The CRI's Signal name as the pod room takes it ("SIGRTMIN+1"); '' for the runtime's default. */
function stopSignal(name: string | undefined): string {
  return name && name !== 'SIGNAL_RUNTIME_DEFAULT' ? name.replace(/^SIGNAL_/, '').replace('PLUS', '+') : '';
}

export function toContainerSpec(config: ContainerConfig | null, pod: PodSpec): ContainerSpec {
  if (!config?.metadata?.name) throw invalidArgument('CreateContainer: config.metadata.name is required');
  checkName(config.metadata.name, 'CreateContainer: metadata.name');
  const image = config.image?.image;
  if (!image) throw invalidArgument('CreateContainer: config.image.image is required');
  const sc = config.linux?.security_context;
  checkNamespaces(sc?.namespace_options, 'CreateContainer');
  const seccomp = containerSeccomp(sc);
  checkAppArmor(sc);
  // As containerd: without both a log directory and a log path the container runs with no log file.
  const logPath = config.log_path && pod.logDirectory ? `${pod.logDirectory}/${config.log_path}` : '';
  if (logPath && !logPath.startsWith('/')) throw invalidArgument(`CreateContainer: log_directory ${quoted(pod.logDirectory)} is not an absolute path`);
  if (logPath.split('/').includes('..')) throw invalidArgument('CreateContainer: log path must not contain ..');
  checkPath(logPath, 'CreateContainer: log path', false);
  // runc cannot take a group without a user (containerd refuses it the same way).
  if (sc?.run_as_group && !sc.run_as_user && !sc.run_as_username) throw invalidArgument('CreateContainer: run_as_group needs run_as_user or run_as_username');
  if (config.working_dir) checkPath(config.working_dir, 'CreateContainer: working_dir', true);
  checkProcessStrings([...config.command, ...config.args], 'command and args');
  checkProcessStrings(config.envs.map((e) => `${e.key}=${e.value}`), 'envs');
  if ((sc?.supplemental_groups?.length ?? 0) > MAX_PROCESS_LIST) throw invalidArgument(`CreateContainer: supplemental_groups: more than ${MAX_PROCESS_LIST}`);
  for (const field of ['masked_paths', 'readonly_paths'] as const) sc?.[field]?.forEach((p, i) => checkPath(p, `CreateContainer: ${field}[${i}]`, true));
  return {
    name: config.metadata.name,
    attempt: config.metadata.attempt,
    imageRef: image,
    imageId: '',
    command: config.command,
    args: config.args,
    env: config.envs.map((e) => [e.key, e.value]),
    workingDir: config.working_dir,
    user: {
      ...(sc?.run_as_user ? { uid: linuxId(sc.run_as_user.value, 'run_as_user') } : {}),
      ...(sc?.run_as_username ? { username: sc.run_as_username } : {}),
      ...(sc?.run_as_group ? { gid: linuxId(sc.run_as_group.value, 'run_as_group') } : {}),
      additionalGids: (sc?.supplemental_groups ?? []).map((g) => linuxId(g, 'supplemental_groups')),
    },
    mounts: boundedList(config.mounts, MAX_MOUNTS, 'mounts').map((mnt) => {
      if (!mnt.host_path || !mnt.container_path) throw invalidArgument('CreateContainer: a mount needs host_path and container_path');
      checkPath(mnt.host_path, 'CreateContainer: mount host_path', true);
      checkPath(mnt.container_path, 'CreateContainer: mount container_path', true);
      knownEnum(mnt.propagation, `CreateContainer: mount ${quoted(mnt.container_path)}: propagation`);
      if (mnt.propagation === 'PROPAGATION_BIDIRECTIONAL') {
        throw invalidArgument(`CreateContainer: mount ${mnt.container_path}: bidirectional propagation cannot cross a VM (mounts made in the pod cannot reach the host); use HOST_TO_CONTAINER or PRIVATE, or run the pod as OS containers`);
      }
      const propagation = mnt.propagation === 'PROPAGATION_HOST_TO_CONTAINER' ? 'host-to-container' as const : 'private' as const;
      return { containerPath: mnt.container_path, hostPath: mnt.host_path, readonly: mnt.readonly, propagation };
    }),
    // kubelet sends the lists (empty for privileged or procMount Unmasked);
    // none at all gets containerd's defaults, as its base spec has them.
    maskedPaths: sc?.masked_paths?.length ? sc.masked_paths : DEFAULT_MASKED_PATHS,
    readonlyPaths: sc?.readonly_paths?.length ? sc.readonly_paths : DEFAULT_READONLY_PATHS,
    seccomp,
    stopSignal: stopSignal(knownEnum(config.stop_signal, 'CreateContainer: stop_signal')),
    devices: config.devices.map((d) => {
      checkPath(d.host_path, 'CreateContainer: device host_path', true);
      checkPath(d.container_path, 'CreateContainer: device container_path', true);
      if (!/^[rwm]*$/.test(d.permissions)) throw invalidArgument(`CreateContainer: device ${quoted(d.container_path)}: permissions ${quoted(d.permissions)} are not of r, w, m`);
      return { containerPath: d.container_path, hostPath: d.host_path, permissions: d.permissions || 'rwm' };
    }),
    logPath,
    tty: config.tty,
    stdin: config.stdin,
    stdinOnce: config.stdin_once,
    labels: stringMap(config.labels, 'labels'),
    annotations: stringMap(config.annotations, 'annotations'),
    readonlyRootfs: sc?.readonly_rootfs ?? false,
    privileged: sc?.privileged ?? false,
    capabilities: { add: sc?.capabilities?.add_capabilities ?? [], drop: sc?.capabilities?.drop_capabilities ?? [], ambient: sc?.capabilities?.add_ambient_capabilities ?? [] },
    noNewPrivileges: sc?.no_new_privs ?? false,
    resources: resources(config.linux?.resources),
  };
}

const POD_STATE: Record<string, PodSandboxState> = { READY: 'SANDBOX_READY', NOTREADY: 'SANDBOX_NOTREADY' };
const CONTAINER_STATE: Record<string, ContainerState> = { CREATED: 'CONTAINER_CREATED', RUNNING: 'CONTAINER_RUNNING', EXITED: 'CONTAINER_EXITED', UNKNOWN: 'CONTAINER_UNKNOWN' };

export function toPodSandbox(r: { meta: PodRecordMeta; status: PodRecordStatus }): PodSandbox {
  return {
    id: r.meta.id,
    metadata: r.meta.spec.metadata,
    state: POD_STATE[r.status.state] ?? 'SANDBOX_NOTREADY',
    created_at: nanos(r.meta.createdAt),
    labels: r.meta.spec.labels,
    annotations: r.meta.spec.annotations,
    runtime_handler: r.meta.spec.runtimeHandler,
  };
}

export function toPodSandboxStatus(r: { meta: PodRecordMeta; status: PodRecordStatus }): PodSandboxStatus {
  const [ip, ...more] = r.status.ips;
  const pid = r.meta.spec.pidMode === 'pod' ? 'POD' : 'CONTAINER';
  return {
    ...toPodSandbox(r),
    network: { ip: ip ?? '', additional_ips: more.map((x) => ({ ip: x })) },
    linux: { namespaces: { options: { network: 'POD', pid, ipc: 'POD', target_id: '' } } },
  };
}

export function toContainer(r: { meta: ContainerRecordMeta; status: ContainerRecordStatus }): Container {
  return {
    id: r.meta.id,
    pod_sandbox_id: r.meta.podId,
    metadata: { name: r.meta.spec.name, attempt: r.meta.spec.attempt },
    image: { image: r.meta.spec.imageRef },
    image_ref: r.meta.spec.imageId,
    image_id: r.meta.spec.imageId,
    state: CONTAINER_STATE[r.status.state] ?? 'CONTAINER_UNKNOWN',
    created_at: nanos(r.meta.createdAt),
    labels: r.meta.spec.labels,
    annotations: r.meta.spec.annotations,
  };
}

export function toContainerStatus(r: { meta: ContainerRecordMeta; status: ContainerRecordStatus }): ContainerStatus {
  const s = r.status;
  return {
    ...toContainer(r),
    started_at: nanos(s.startedAt),
    finished_at: nanos(s.finishedAt),
    exit_code: s.exitCode ?? 0,
    reason: s.reason ?? '',
    message: s.message ?? '',
    mounts: r.meta.spec.mounts.map((m) => ({
      container_path: m.containerPath,
      host_path: m.hostPath,
      readonly: m.readonly,
      propagation: m.propagation === 'private' ? 'PROPAGATION_PRIVATE' : 'PROPAGATION_HOST_TO_CONTAINER',
    })),
    log_path: r.meta.spec.logPath,
    stop_signal: r.meta.spec.stopSignal ? `SIGNAL_${r.meta.spec.stopSignal}` : 'SIGNAL_RUNTIME_DEFAULT',
  };
}

/** Every label of the selector must be present with the same value. */
export function matchesLabels(labels: Record<string, string>, selector: StringMap | undefined | null): boolean {
  return Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);
}
