// Checks of what callers hand the client, and their conversion to the
// request messages of agent.proto. A bad value is AGENT_OPTIONS before
// anything is sent; the agent checks again on its side.
import { AgentError } from './errors.js';
import type { GuestContainerSpec, GuestMount, GuestNetwork, GuestResources, ProcessSpec, SandboxSetup } from './types.js';

const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const EXEC_ID = /^[A-Za-z0-9_-]{1,64}$/;
const SIGNAL = /^SIG[A-Z0-9+]{2,12}$/;
const MAX_PATH_BYTES = 4096;
const MAX_LIST_ITEMS = 4096;
const MOUNT_KINDS = new Set(['bind', 'tmpfs', 'proc', 'sysfs', 'devpts', 'mqueue', 'block', 'blockdev']);

function bad(message: string, fields: Record<string, unknown> = {}): AgentError {
  return new AgentError('AGENT_OPTIONS', message, fields);
}

export function checkContainerId(id: string): string {
  if (typeof id !== 'string' || !CONTAINER_ID.test(id)) throw bad(`invalid container id ${JSON.stringify(id)}`, { id });
  return id;
}

/** execId '' names the init process where `emptyMeansInit`. */
export function checkExecId(id: string, emptyMeansInit: boolean): string {
  if (emptyMeansInit && id === '') return id;
  if (typeof id !== 'string' || !EXEC_ID.test(id)) throw bad(`invalid exec id ${JSON.stringify(id)}`, { execId: id });
  return id;
}

export function signalName(name: string): string {
  if (typeof name !== 'string' || !SIGNAL.test(name)) throw bad(`invalid signal ${JSON.stringify(name)}`);
  return name;
}

export function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad(`invalid port ${port}`);
  return port;
}

function str(v: unknown, what: string, maxBytes = MAX_PATH_BYTES): string {
  if (typeof v !== 'string' || Buffer.byteLength(v) > maxBytes || v.includes('\0')) throw bad(`${what} must be a string of at most ${maxBytes} bytes without NUL`);
  return v;
}

function absPath(v: unknown, what: string): string {
  const p = str(v, what);
  if (!p.startsWith('/')) throw bad(`${what} must be an absolute path, not ${JSON.stringify(p)}`);
  return p;
}

function list<T>(v: unknown, what: string): T[] {
  if (!Array.isArray(v) || v.length > MAX_LIST_ITEMS) throw bad(`${what} must be a list of at most ${MAX_LIST_ITEMS} items`);
  return v as T[];
}

function int(v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(`${what} must be an integer in [${min}, ${max}], not ${String(v)}`);
  return v;
}

export function sandboxBody(s: SandboxSetup): Record<string, unknown> {
  const sysctls: Record<string, string> = {};
  for (const [k, v] of Object.entries(s.sysctls ?? {})) {
    if (!/^[a-z0-9_][a-z0-9_./-]{0,255}$/.test(k) || k.includes('..')) throw bad(`invalid sysctl name ${JSON.stringify(k)}`);
    sysctls[k] = str(v, `sysctl ${k}`, 4096);
  }
  return {
    hostname: str(s.hostname, 'hostname', 64),
    resolvConf: str(s.resolvConf, 'resolvConf', 65536),
    hosts: str(s.hosts, 'hosts', 65536),
    sysctls,
    shares: list<{ tag: string; mountPoint: string }>(s.shares, 'shares').map((m) => ({
      tag: str(m.tag, 'share tag', 36),
      mountPoint: absPath(m.mountPoint, 'share mountPoint'),
    })),
  };
}

export function networkBody(n: GuestNetwork): Record<string, unknown> {
  const mac = (v: unknown, what: string) => {
    const m = str(v, what, 17).toLowerCase();
    if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(m)) throw bad(`${what} is not a MAC address: ${m}`);
    return m;
  };
  return {
    interfaces: list<GuestNetwork['interfaces'][number]>(n.interfaces, 'interfaces').map((i) => ({
      mac: mac(i.mac, 'interface mac'),
      name: str(i.name ?? '', 'interface name', 15),
      mtu: int(i.mtu, 'mtu', 0, 65536),
      addresses: list<string>(i.addresses, 'addresses').map((a) => str(a, 'address', 64)),
      setMac: i.setMac === undefined || i.setMac === '' ? '' : mac(i.setMac, 'interface setMac'),
    })),
    routes: list<GuestNetwork['routes'][number]>(n.routes, 'routes').map((r) => ({
      dst: str(r.dst, 'route dst', 64),
      gateway: str(r.gateway ?? '', 'route gateway', 64),
      device: str(r.device ?? '', 'route device', 15),
    })),
    neighbors: list<NonNullable<GuestNetwork['neighbors']>[number]>(n.neighbors ?? [], 'neighbors').map((x) => ({
      ip: str(x.ip, 'neighbor ip', 64),
      mac: mac(x.mac, 'neighbor mac'),
      device: str(x.device ?? '', 'neighbor device', 15),
    })),
  };
}

/** `forExec`: -1 uid/gid mean the container's user. */
export function processBody(p: ProcessSpec, forExec: boolean): Record<string, unknown> {
  const args = list<string>(p.args, 'args').map((a) => str(a, 'arg', 131072));
  if (args.length === 0) throw bad('args must not be empty');
  const minId = forExec ? -1 : 0;
  return {
    args,
    env: list<string>(p.env, 'env').map((e) => {
      const v = str(e, 'env entry', 131072);
      if (!v.includes('=')) throw bad(`env entry ${JSON.stringify(v.slice(0, 64))} has no '='`);
      return v;
    }),
    cwd: p.cwd === '' && forExec ? '' : absPath(p.cwd, 'cwd'),
    uid: int(p.uid, 'uid', minId, 0xfffffffe),
    gid: int(p.gid, 'gid', minId, 0xfffffffe),
    additionalGids: list<number>(p.additionalGids, 'additionalGids').map((g) => int(g, 'additional gid', 0, 0xfffffffe)),
    terminal: Boolean(p.terminal),
    withStdin: Boolean(p.stdin),
  };
}

export function resourcesBody(r: GuestResources): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (r.cpuShares !== undefined) out.cpuShares = int(r.cpuShares, 'cpuShares', 0, 262144);
  if (r.cpuQuota !== undefined) out.cpuQuota = int(r.cpuQuota, 'cpuQuota', -1, Number.MAX_SAFE_INTEGER);
  if (r.cpuPeriod !== undefined) out.cpuPeriod = int(r.cpuPeriod, 'cpuPeriod', 0, 1_000_000);
  if (r.memoryLimitBytes !== undefined) out.memoryLimitBytes = int(r.memoryLimitBytes, 'memoryLimitBytes', -1, Number.MAX_SAFE_INTEGER);
  if (r.pidsLimit !== undefined) out.pidsLimit = int(r.pidsLimit, 'pidsLimit', -1, 4194304);
  if (r.cpusetCpus !== undefined) {
    const c = str(r.cpusetCpus, 'cpusetCpus', 256);
    if (!/^[0-9,-]*$/.test(c)) throw bad(`invalid cpusetCpus ${JSON.stringify(c)}`);
    out.cpusetCpus = c;
  }
  return out;
}

/** A device cgroup access string: each of r, w, m at most once. */
function deviceAccess(v: unknown): string {
  const a = str(v, 'device access', 3);
  if (!/^[rwm]*$/.test(a) || new Set(a).size !== a.length) throw bad(`device access ${JSON.stringify(a)} must be made of r, w and m, each once`);
  return a;
}

function mountBody(m: GuestMount): Record<string, unknown> {
  if (!MOUNT_KINDS.has(m.kind)) throw bad(`unknown mount kind ${JSON.stringify(m.kind)}`);
  if (m.kind === 'bind') {
    return { kind: 'bind', source: absPath(m.source, 'bind source'), destination: absPath(m.destination, 'mount destination'), readonly: Boolean(m.readonly) };
  }
  if (m.kind === 'block' || m.kind === 'blockdev') {
    if (typeof m.serial !== 'string' || !/^[A-Za-z0-9_-]{1,20}$/.test(m.serial)) throw bad('a disk serial must be 1-20 of [A-Za-z0-9_-]');
    return {
      kind: m.kind,
      source: m.serial,
      destination: absPath(m.destination, 'mount destination'),
      readonly: Boolean(m.readonly),
      fsType: str(m.fsType ?? '', 'fsType', 16),
      deviceAccess: deviceAccess(m.access ?? ''),
      options: list<string>(m.options ?? [], 'mount options').map((o) => str(o, 'mount option', 256)),
    };
  }
  const pod = 'source' in m && m.kind === 'tmpfs' ? { source: absPath(m.source, 'pod tmpfs'), readonly: Boolean(m.readonly) } : {};
  return {
    kind: m.kind,
    ...pod,
    destination: absPath(m.destination, 'mount destination'),
    options: list<string>(m.options ?? [], 'mount options').map((o) => str(o, 'mount option', 256)),
  };
}

/** Masked and read-only paths: at most 64, each absolute. */
function pathList(v: string[] | undefined, what: string): string[] {
  const paths = list<string>(v ?? [], what);
  if (paths.length > 64) throw bad(`${what}: at most 64 paths`);
  return paths.map((p) => absPath(p, what));
}

function capabilityName(c: string): string {
  const v = str(c, 'capability', 64);
  if (!/^(CAP_)?[A-Z_]+$/.test(v)) throw bad(`invalid capability ${JSON.stringify(v)}`);
  return v.startsWith('CAP_') ? v : `CAP_${v}`;
}

function seccompBody(f: Buffer | undefined): Buffer {
  if (f === undefined) return Buffer.alloc(0);
  if (!Buffer.isBuffer(f) || f.length % 8 !== 0 || f.length > 4096 * 8) throw bad('seccompFilter must be a BPF program of at most 4096 instructions');
  return f;
}

export function containerSpecBody(spec: GuestContainerSpec): Record<string, unknown> {
  if (spec.pidNamespace !== 'pod' && spec.pidNamespace !== 'container') throw bad(`pidNamespace must be 'pod' or 'container'`);
  return {
    id: checkContainerId(spec.id),
    rootfs: absPath(spec.rootfs, 'rootfs'),
    readonlyRootfs: Boolean(spec.readonlyRootfs),
    hostname: str(spec.hostname, 'hostname', 64),
    process: processBody(spec.process, false),
    mounts: list<GuestMount>(spec.mounts, 'mounts').map(mountBody),
    capabilities: list<string>(spec.capabilities, 'capabilities').map((c) => capabilityName(c)),
    noNewPrivileges: Boolean(spec.noNewPrivileges),
    ownPidNamespace: spec.pidNamespace === 'container',
    resources: resourcesBody(spec.resources ?? {}),
    maskedPaths: pathList(spec.maskedPaths, 'maskedPaths'),
    readonlyPaths: pathList(spec.readonlyPaths, 'readonlyPaths'),
    seccompFilter: seccompBody(spec.seccompFilter),
    ambientCapabilities: list<string>(spec.ambientCapabilities ?? [], 'ambientCapabilities').map((c) => capabilityName(c)),
  };
}
