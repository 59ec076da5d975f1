// Hotplug over QMP: vCPUs, memory (DIMMs) and block devices (virtio-blk on
// a free PCIe root port). The guest onlines CPUs and memory itself (its
// agent's job); frakti only adds and removes devices.
import { stat } from 'node:fs/promises';
import { VmError } from './errors.js';
import type { QmpClient } from './qmp-client.js';
import { MEMORY_HOTPLUG_SLOTS } from './qemu-args.js';

export const DEVICE_DELETE_TIMEOUT_MS = 15_000;
/** x86 Linux onlines memory in 128 MiB blocks. */
export const MEMORY_BLOCK_MIB = 128;
const ID_RE = /^[A-Za-z0-9_-]{1,32}$/;

interface HotpluggableCpu {
  type: string;
  'vcpus-count': number;
  props: Record<string, number>;
  'qom-path'?: string;
}

/**
 * Adds vCPUs until `count` are plugged in (never above maxcpus). Returns how
 * many were added. KVM only: under TCG, QEMU (7.2) aborts when a vCPU thread
 * starts after the translation cache has used up its regions, which a busy
 * guest always reaches in time (tcg_region_initial_alloc).
 */
export async function hotplugCpus(qmp: QmpClient, count: number): Promise<number> {
  const kvm = await qmp.execute<{ enabled: boolean }>('query-kvm');
  if (!kvm.enabled) {
    throw new VmError('HOTPLUG', 'vCPU hotplug needs KVM: under TCG QEMU aborts when a vCPU is added once its translation cache has filled; start the VM with the vCPUs it needs');
  }
  const slots = await qmp.execute<HotpluggableCpu[]>('query-hotpluggable-cpus');
  const plugged = slots.filter((s) => s['qom-path']).length;
  const free = slots.filter((s) => !s['qom-path']);
  if (!Number.isInteger(count) || count < plugged) throw new VmError('HOTPLUG', `vCPUs can only be added: ${plugged} present, ${count} asked`);
  if (count > slots.length) throw new VmError('HOTPLUG', `vCPUs: ${count} asked, the VM was started with maxcpus=${slots.length}`);
  let added = 0;
  for (const slot of free.slice(0, count - plugged)) {
    const id = `cpu-${Object.values(slot.props).join('-')}`;
    await qmp.execute('device_add', { driver: slot.type, id, ...slot.props });
    added++;
  }
  return added;
}

export interface MemoryDevice {
  id: string;
  sizeMiB: number;
}

/**
 * Adds a DIMM of sizeMiB. `shared` must be true when the VM serves a
 * virtio-fs share: virtiofsd needs to map all guest memory.
 */
export async function hotplugMemory(qmp: QmpClient, id: string, sizeMiB: number, shared: boolean): Promise<void> {
  if (!ID_RE.test(id)) throw new VmError('HOTPLUG', `memory device id must match ${ID_RE}`);
  if (!Number.isInteger(sizeMiB) || sizeMiB <= 0 || sizeMiB % MEMORY_BLOCK_MIB !== 0) {
    throw new VmError('HOTPLUG', `memory is added in multiples of ${MEMORY_BLOCK_MIB} MiB, got ${sizeMiB}`);
  }
  const backend = `${id}-backend`;
  await qmp.execute('object-add', {
    'qom-type': shared ? 'memory-backend-memfd' : 'memory-backend-ram',
    id: backend,
    size: sizeMiB * 1024 * 1024,
    ...(shared ? { share: true } : {}),
  });
  try {
    await qmp.execute('device_add', { driver: 'pc-dimm', id, memdev: backend });
  } catch (err) {
    await qmp.execute('object-del', { id: backend }).catch(() => {});
    throw err;
  }
}

export async function listMemoryDevices(qmp: QmpClient): Promise<MemoryDevice[]> {
  const devs = await qmp.execute<{ type: string; data: { id?: string; size: number } }[]>('query-memory-devices');
  return devs.filter((d) => d.type === 'dimm' && d.data.id).map((d) => ({ id: d.data.id!, sizeMiB: d.data.size / (1024 * 1024) }));
}

/** The guest's RAM now, boot memory and DIMMs together, and its vCPUs. */
export async function vmSizeNow(qmp: QmpClient): Promise<{ cpus: number; memoryMiB: number }> {
  const mem = await qmp.execute<{ 'base-memory': number; 'plugged-memory'?: number }>('query-memory-size-summary');
  const cpus = await qmp.execute<unknown[]>('query-cpus-fast');
  return { cpus: cpus.length, memoryMiB: Math.round((mem['base-memory'] + (mem['plugged-memory'] ?? 0)) / (1024 * 1024)) };
}

/**
 * Grows the guest's RAM to at least targetMiB with one DIMM (whole 128 MiB
 * blocks), within maxMiB (the VM's maxmem) and its free slots. Returns the
 * MiB added (0 when it already has that much).
 */
export async function growMemory(qmp: QmpClient, targetMiB: number, maxMiB: number, shared: boolean): Promise<number> {
  const { memoryMiB } = await vmSizeNow(qmp);
  if (targetMiB <= memoryMiB) return 0;
  if (targetMiB > maxMiB) throw new VmError('HOTPLUG', `memory can grow to at most ${maxMiB} MiB (the VM's maximum); ${targetMiB} MiB asked`);
  // Whole blocks, rounded up, but never past the maximum: the last part block is left out there.
  const add = Math.min(Math.ceil((targetMiB - memoryMiB) / MEMORY_BLOCK_MIB), Math.floor((maxMiB - memoryMiB) / MEMORY_BLOCK_MIB)) * MEMORY_BLOCK_MIB;
  if (add <= 0) throw new VmError('HOTPLUG', `memory: ${targetMiB} MiB asked, and less than a ${MEMORY_BLOCK_MIB} MiB block is left below the VM's maximum of ${maxMiB} MiB`);
  const dimms = await listMemoryDevices(qmp);
  if (dimms.length >= MEMORY_HOTPLUG_SLOTS) throw new VmError('HOTPLUG', `all ${MEMORY_HOTPLUG_SLOTS} memory slots of the VM are used`);
  // Ids from what QEMU holds, not from our memory: right after a restart too.
  const taken = new Set(dimms.map((d) => d.id));
  let n = dimms.length;
  while (taken.has(`mem${n}`)) n++;
  await hotplugMemory(qmp, `mem${n}`, add, shared);
  return add;
}

export interface BlockDevice {
  /** Device id, also the node name prefix. */
  id: string;
  /** Host file or block device. */
  path: string;
  readonly?: boolean;
  /** The virtio serial the guest reads in /sys/block/vdX/serial (at most 20 bytes). */
  serial?: string;
}

/** The ids of block devices plugged into the VM whose id starts with `prefix`, from QEMU's own object tree. */
export async function pluggedBlockIds(qmp: QmpClient, prefix: string): Promise<string[]> {
  const children = await qmp.execute<{ name: string; type: string }[]>('qom-list', { path: '/machine/peripheral' });
  return children.filter((c) => c.type === 'child<virtio-blk-pci>' && c.name.startsWith(prefix)).map((c) => c.name);
}

/**
 * The root ports that devices were added to, from QEMU's own object tree:
 * right even before the guest has enumerated the buses (query-pci is not then).
 */
async function portsInUse(qmp: QmpClient): Promise<Set<string>> {
  const children = await qmp.execute<{ name: string; type: string }[]>('qom-list', { path: '/machine/peripheral' });
  const used = new Set<string>();
  for (const c of children) {
    if (!c.type.startsWith('child<') || c.type === 'child<pcie-root-port>') continue;
    const bus = await qmp.execute<string>('qom-get', { path: `/machine/peripheral/${c.name}`, property: 'parent_bus' }).catch(() => '');
    const m = /\/(rp\d+)\//.exec(String(bus));
    if (m) used.add(m[1]!);
  }
  return used;
}

/** Root ports (rp0..) that hold no device yet. */
async function freeRootPort(qmp: QmpClient): Promise<string> {
  // Before the guest has numbered the buses (early boot), a port's bridge has no device list at all.
  const buses = await qmp.execute<{ devices: { qdev_id: string; pci_bridge?: { devices?: unknown[] } }[] }[]>('query-pci');
  const ports = buses.flatMap((b) => b.devices).filter((d) => /^rp\d+$/.test(d.qdev_id));
  const taken = await portsInUse(qmp);
  const free = ports.find((p) => (p.pci_bridge?.devices?.length ?? 0) === 0 && !taken.has(p.qdev_id));
  if (!free) throw new VmError('HOTPLUG', `no free PCIe root port (the VM has ${ports.length})`);
  return free.qdev_id;
}

/** Attaches a file or block device as virtio-blk; the guest sees a new /dev/vdX. Returns the root port used. */
export async function hotplugBlock(qmp: QmpClient, dev: BlockDevice): Promise<string> {
  if (!ID_RE.test(dev.id)) throw new VmError('HOTPLUG', `block device id must match ${ID_RE}`);
  if (!dev.path.startsWith('/')) throw new VmError('HOTPLUG', `block device path must be absolute: ${dev.path}`);
  if (dev.serial !== undefined && !/^[A-Za-z0-9_-]{1,20}$/.test(dev.serial)) throw new VmError('HOTPLUG', 'block device serial must be 1-20 of [A-Za-z0-9_-]');
  const node = `${dev.id}-node`;
  const port = await freeRootPort(qmp);
  await qmp.execute('blockdev-add', {
    'node-name': node,
    driver: 'raw',
    'read-only': dev.readonly === true,
    // QEMU's file driver takes regular files only; a device node is host_device.
    file: { driver: (await stat(dev.path)).isBlockDevice() ? 'host_device' : 'file', filename: dev.path, 'read-only': dev.readonly === true },
  });
  try {
    await qmp.execute('device_add', { driver: 'virtio-blk-pci', id: dev.id, drive: node, bus: port, 'disable-legacy': 'on', ...(dev.serial ? { serial: dev.serial } : {}) });
  } catch (err) {
    await qmp.execute('blockdev-del', { 'node-name': node }).catch(() => {});
    throw err;
  }
  return port;
}

/** A request that arrives while the guest is still handling the plug is lost; it is repeated this often. */
export const DEVICE_DEL_RETRY_MS = 2_000;

/** Detaches a block device: the guest must release it (DEVICE_DELETED), then the node goes. */
export async function unplugBlock(qmp: QmpClient, id: string, timeoutMs = DEVICE_DELETE_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const deleted = qmp.waitEvent('DEVICE_DELETED', timeoutMs, (ev) => ev.data?.device === id).then(
    () => true,
    (err: Error) => err,
  );
  await qmp.execute('device_del', { id });
  for (;;) {
    const left = deadline - Date.now();
    const r = await Promise.race([deleted, new Promise<false>((res) => setTimeout(() => res(false), Math.max(0, Math.min(DEVICE_DEL_RETRY_MS, left))))]);
    if (r === true) break;
    if (r instanceof Error || left <= 0) {
      throw new VmError('HOTPLUG', `unplug ${id}: the guest did not release it: ${r instanceof Error ? r.message : `no DEVICE_DELETED within ${timeoutMs} ms`}`);
    }
    // Ask again; QEMU may answer that an unplug is already pending, which is fine.
    await qmp.execute('device_del', { id }).catch(() => {});
  }
  await qmp.execute('blockdev-del', { 'node-name': `${id}-node` });
}

export interface NicDevice {
  /** Device id (the netdev gets `${id}-dev`). */
  id: string;
  /** Tap in QEMU's network namespace. */
  tap: string;
  mac: string;
}

const MAC_RE = /^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/;
const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;

/**
 * Adds a virtio-net NIC on a tap to a running VM, on a free root port. For a
 * VM that is up: a NIC added while the guest still boots can go unseen by it,
 * so a VM's first NIC belongs in its spec (VmSpec.nics).
 */
export async function hotplugNic(qmp: QmpClient, nic: NicDevice): Promise<string> {
  if (!ID_RE.test(nic.id) || !IFNAME_RE.test(nic.tap) || !MAC_RE.test(nic.mac)) {
    throw new VmError('HOTPLUG', `NIC ${nic.id}: bad id, tap name or MAC (${nic.tap}, ${nic.mac})`);
  }
  const port = await freeRootPort(qmp);
  const netdev = `${nic.id}-dev`;
  // vhost off: /dev/vhost-net is not on every node, and TCG gains nothing from it.
  await qmp.execute('netdev_add', { type: 'tap', id: netdev, ifname: nic.tap, script: 'no', downscript: 'no', vhost: false });
  try {
    // romfile '': the firmware has long run; an option ROM would only take memory.
    await qmp.execute('device_add', { driver: 'virtio-net-pci', id: nic.id, netdev, mac: nic.mac.toLowerCase(), bus: port, 'disable-legacy': 'on', romfile: '' });
  } catch (err) {
    await qmp.execute('netdev_del', { id: netdev }).catch(() => {});
    throw err;
  }
  return port;
}
