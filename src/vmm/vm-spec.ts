// The typed description of one VM, and its validation. Unknown keys are
// rejected so that a typo in a caller cannot silently drop a setting.
import { VmError } from './errors.js';

export type Accel = 'kvm' | 'tcg';

export type AgentChannel =
  /** virtio-serial port bound to a unix socket in the VM directory (works everywhere). */
  | { kind: 'serial' }
  /** vhost-vsock-pci with this guest CID (needs /dev/vhost-vsock). */
  | { kind: 'vsock'; cid: number };

export interface VirtioFsShare {
  /** Host directory served to the guest. */
  source: string;
  /** Mount tag the guest uses (`mount -t virtiofs TAG DIR`). */
  tag: string;
}

export interface VmNic {
  /** Tap device (already created in the VM's network namespace). */
  tap: string;
  /** The guest NIC's MAC: the CNI interface's, so the network's view of the pod stays true. */
  mac: string;
}

export interface VmSpec {
  /** [A-Za-z0-9_.-], 1..64 characters; names the VM in logs and errors. */
  id: string;
  /** Directory for the VM's sockets, pid files and logs; created by the launcher. */
  dir: string;
  /** Boot vCPUs, 1..maxCpus. */
  cpus: number;
  /** Hotplug ceiling of vCPUs. Default: cpus. */
  maxCpus?: number;
  /** Boot memory in MiB, at least 64. */
  memoryMiB: number;
  /** Hotplug ceiling in MiB. Default: memoryMiB (no memory hotplug). */
  maxMemoryMiB?: number;
  kernel: string;
  initrd: string;
  /** Appended to frakti's kernel command line. */
  kernelArgs?: string[];
  accel: Accel;
  /** Under TCG: the translation cache in MiB (memory per VM against speed of busy guests). Default DEFAULT_TCG_CACHE_MIB. */
  tcgCacheMiB?: number;
  channel: AgentChannel;
  share?: VirtioFsShare;
  /** Network namespace (a path such as /run/netns/NAME) QEMU runs in, so it can open the pod's tap. */
  netns?: string;
  /** virtio-net NICs on taps in that namespace. */
  nics?: VmNic[];
  /** Free PCIe root ports for later hotplug (block volumes, NICs). Default 2. */
  pcieRootPorts?: number;
  /** Firmware for q35. Default /usr/share/qemu/qboot.rom. */
  firmware?: string;
  /** QEMU binary. Default qemu-system-x86_64 from PATH. */
  qemu?: string;
  /** virtiofsd binary. Default /usr/lib/qemu/virtiofsd. */
  virtiofsd?: string;
}

const SPEC_KEYS = new Set([
  'id', 'dir', 'cpus', 'maxCpus', 'memoryMiB', 'maxMemoryMiB', 'kernel', 'initrd', 'kernelArgs',
  'accel', 'tcgCacheMiB', 'channel', 'share', 'netns', 'nics', 'pcieRootPorts', 'firmware', 'qemu', 'virtiofsd',
]);
export const MAX_VCPUS = 255;
export const MIN_MEMORY_MIB = 64;
export const MAX_MEMORY_MIB = 1024 * 1024;
export const MAX_PCIE_ROOT_PORTS = 16;
/**
 * TCG's translation cache: QEMU's default is 1 GiB of address space that
 * fills with use; bounded, it keeps each VM small. Each MiB more costs up
 * to about 1.7 MiB of host memory per VM. 10 MiB keeps an idle pod under
 * 80 MiB (78.7, bench-pod). At 8 MiB a busy guest translates the same code
 * again and again: busybox httpd (a fork per request) answered in 124.5 ms
 * against 9.6 ms with 10 MiB, in the same session (bench-net). Container
 * create and start are still 100-150 ms faster with 16.
 */
export const DEFAULT_TCG_CACHE_MIB = 10;
/** Below 8 MiB even a boot translates again and again; past 1 GiB is QEMU's own default. */
export const MIN_TCG_CACHE_MIB = 8;
export const MAX_TCG_CACHE_MIB = 1024;
/** sun_path holds 108 bytes including the terminating NUL. */
export const UNIX_PATH_MAX_BYTES = 107;
const ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const TAG_RE = /^[A-Za-z0-9_.-]{1,36}$/;
const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;
const MAC_RE = /^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/;
export const MAX_NICS = 8;
// Characters that would break QEMU's comma-separated option syntax.
const SAFE_PATH_RE = /^\/[^,\n\0]*$/;

function bad(spec: Partial<VmSpec>, message: string): never {
  throw new VmError('VM_SPEC_INVALID', `VM ${spec.id ?? '?'}: ${message}`);
}

function int(spec: Partial<VmSpec>, name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    bad(spec, `${name} must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function path(spec: Partial<VmSpec>, name: string, v: unknown): string {
  if (typeof v !== 'string' || !SAFE_PATH_RE.test(v)) bad(spec, `${name} must be an absolute path without commas, got ${JSON.stringify(v)}`);
  return v;
}

/** Checks a spec and fills in the defaults. */
export function validateVmSpec(input: VmSpec): Required<Omit<VmSpec, 'share' | 'netns'>> & { share?: VirtioFsShare; netns?: string } {
  const spec = input as Partial<VmSpec>;
  for (const k of Object.keys(spec)) if (!SPEC_KEYS.has(k)) bad(spec, `unknown key '${k}'`);
  if (typeof spec.id !== 'string' || !ID_RE.test(spec.id)) bad(spec, `id must match ${ID_RE}, got ${JSON.stringify(spec.id)}`);
  const cpus = int(spec, 'cpus', spec.cpus, 1, MAX_VCPUS);
  const maxCpus = int(spec, 'maxCpus', spec.maxCpus ?? cpus, cpus, MAX_VCPUS);
  const memoryMiB = int(spec, 'memoryMiB', spec.memoryMiB, MIN_MEMORY_MIB, MAX_MEMORY_MIB);
  const maxMemoryMiB = int(spec, 'maxMemoryMiB', spec.maxMemoryMiB ?? memoryMiB, memoryMiB, MAX_MEMORY_MIB);
  if (spec.accel !== 'kvm' && spec.accel !== 'tcg') bad(spec, `accel must be kvm or tcg, got ${JSON.stringify(spec.accel)}`);
  const ch = spec.channel as AgentChannel | undefined;
  if (!ch || (ch.kind !== 'serial' && ch.kind !== 'vsock')) bad(spec, 'channel must be {kind: "serial"} or {kind: "vsock", cid}');
  if (ch.kind === 'vsock') int(spec, 'channel.cid', ch.cid, 3, 0xfffffffe);
  if (spec.share !== undefined) {
    path(spec, 'share.source', spec.share.source);
    if (!TAG_RE.test(spec.share.tag)) bad(spec, `share.tag must match ${TAG_RE}`);
  }
  if (spec.netns !== undefined) path(spec, 'netns', spec.netns);
  const nics = spec.nics ?? [];
  if (!Array.isArray(nics) || nics.length > MAX_NICS) bad(spec, `nics must be a list of at most ${MAX_NICS}`);
  nics.forEach((n, i) => {
    if (!n || !IFNAME_RE.test(n.tap)) bad(spec, `nics[${i}].tap must match ${IFNAME_RE}`);
    if (!MAC_RE.test(n.mac)) bad(spec, `nics[${i}].mac is not a MAC address`);
  });
  if (nics.length > 0 && spec.netns === undefined) bad(spec, 'nics need the netns their taps live in');
  const kernelArgs = spec.kernelArgs ?? [];
  if (!Array.isArray(kernelArgs) || kernelArgs.some((a) => typeof a !== 'string' || /[\s\0]/.test(a))) {
    bad(spec, 'kernelArgs must be strings without white space');
  }
  // The longest socket name in the VM directory must fit a unix socket address.
  const dir = path(spec, 'dir', spec.dir);
  if (Buffer.byteLength(dir) + '/virtiofsd.sock'.length > UNIX_PATH_MAX_BYTES) {
    bad(spec, `dir ${dir} is too long for unix socket paths (at most ${UNIX_PATH_MAX_BYTES - '/virtiofsd.sock'.length} bytes)`);
  }
  return {
    id: spec.id,
    dir,
    cpus,
    maxCpus,
    memoryMiB,
    maxMemoryMiB,
    kernel: path(spec, 'kernel', spec.kernel),
    initrd: path(spec, 'initrd', spec.initrd),
    kernelArgs,
    accel: spec.accel,
    tcgCacheMiB: int(spec, 'tcgCacheMiB', spec.tcgCacheMiB ?? DEFAULT_TCG_CACHE_MIB, MIN_TCG_CACHE_MIB, MAX_TCG_CACHE_MIB),
    channel: ch,
    share: spec.share,
    netns: spec.netns,
    nics,
    pcieRootPorts: int(spec, 'pcieRootPorts', spec.pcieRootPorts ?? 2, 0, MAX_PCIE_ROOT_PORTS),
    firmware: path(spec, 'firmware', spec.firmware ?? '/usr/share/qemu/qboot.rom'),
    qemu: spec.qemu ?? 'qemu-system-x86_64',
    virtiofsd: path(spec, 'virtiofsd', spec.virtiofsd ?? '/usr/lib/qemu/virtiofsd'),
  };
}

export type ValidVmSpec = ReturnType<typeof validateVmSpec>;
