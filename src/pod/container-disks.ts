// Block volumes of a container: a CRI device or a mount whose host path is
// a block device is hot-plugged into the pod's VM as virtio-blk (read-only
// in QEMU when the container may not write it) and found by the agent
// through the disk's serial. A disk's QEMU id carries its container's id,
// so the disks of a container are found in QEMU again after a restart of
// frakti and unplugged when the container goes.
import { realpath, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { errorMessage } from '../lib/errors.js';
import type { UndoStack } from '../lib/undo.js';
import { hotplugBlock, pluggedBlockIds, unplugBlock, type QmpClient } from '../vmm/index.js';
import type { GuestMount } from './agent-port.js';
import { PodError } from './errors.js';
import type { ContainerSpec } from './types.js';

/** Disks a pod VM can hold: its PCIe root ports, less the one its NIC takes. */
export const MAX_POD_DISKS = 4;

/** Character devices every container has already: asking for them again is fine. */
const EVERY_CONTAINER_HAS = new Set(['1:3', '1:5', '1:7', '1:8', '1:9', '5:0']);

const major = (rdev: number) => Number((BigInt(rdev) >> 8n) & 0xfffn);
const minor = (rdev: number) => Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & 0xfff00n));

/** The QEMU id prefix of a container's disks (also their serials: <= 20 bytes with the index). */
export function diskPrefix(containerId: string): string {
  return `blk-${containerId.slice(0, 12)}-`;
}

interface Disk {
  hostPath: string;
  destination: string;
  readonly: boolean;
  node: boolean;
  /** A device node's CRI permissions (r, w, m), enforced by the container's device cgroup in the guest. */
  access: string;
}

async function statDevice(path: string, what: string): Promise<Stats> {
  try {
    return await stat(path);
  } catch (err) {
    throw new PodError('INVALID_ARGUMENT', `${what}: host device ${path} cannot be used: ${errorMessage(err)}`);
  }
}

/** The container's disks: its block devices, and its mounts whose host path is a block device. */
export async function containerDisks(spec: ContainerSpec): Promise<Disk[]> {
  const disks: Disk[] = [];
  for (const d of spec.devices ?? []) {
    const st = await statDevice(d.hostPath, `device ${d.containerPath}`);
    if (st.isCharacterDevice()) {
      if (EVERY_CONTAINER_HAS.has(`${major(st.rdev)}:${minor(st.rdev)}`)) continue;
      throw new PodError('INVALID_ARGUMENT', `device ${d.containerPath}: ${d.hostPath} is a character device of the host, which a VM pod cannot be given (only block devices are hot-plugged into the VM)`);
    }
    if (!st.isBlockDevice()) throw new PodError('INVALID_ARGUMENT', `device ${d.containerPath}: ${d.hostPath} is not a device`);
    // kubelet sends "mrw"; '' is all of them, as runc reads an empty access.
    const access = d.permissions === '' ? 'rwm' : d.permissions;
    if (!/^[rwm]{1,3}$/.test(access) || new Set(access).size !== access.length) {
      throw new PodError('INVALID_ARGUMENT', `device ${d.containerPath}: permissions ${JSON.stringify(d.permissions)} must be made of r, w and m, each at most once`);
    }
    disks.push({ hostPath: d.hostPath, destination: d.containerPath, readonly: !access.includes('w'), node: true, access });
  }
  for (const m of spec.mounts) {
    const st = await stat(m.hostPath).catch(() => undefined);
    if (st?.isBlockDevice()) disks.push({ hostPath: m.hostPath, destination: m.containerPath, readonly: m.readonly, node: false, access: '' });
  }
  return disks;
}

/** Plugs the disks into the VM; every one registers its unplug. Returns the guest's view of them. */
export async function plugDisks(qmp: QmpClient, containerId: string, disks: Disk[], undo: UndoStack): Promise<GuestMount[]> {
  if (disks.length === 0) return [];
  const prefix = diskPrefix(containerId);
  const inUse = (await pluggedBlockIds(qmp, 'blk-')).length;
  if (inUse + disks.length > MAX_POD_DISKS) {
    throw new PodError('RESOURCE_EXHAUSTED', `a VM pod holds at most ${MAX_POD_DISKS} block devices; it has ${inUse} and this container asks for ${disks.length}`);
  }
  const out: GuestMount[] = [];
  for (const [i, d] of disks.entries()) {
    const id = `${prefix}${i}`;
    // QEMU opens the device itself: a symlink (kubelet's volumeDevices paths are) is resolved first.
    const path = await realpath(d.hostPath);
    try {
      await hotplugBlock(qmp, { id, path, readonly: d.readonly, serial: id });
    } catch (err) {
      // Another container of the pod took the last root port meanwhile: the same bound as above.
      const full = /no free PCIe root port/.test(errorMessage(err));
      throw new PodError(full ? 'RESOURCE_EXHAUSTED' : 'INVALID_ARGUMENT', `block device ${d.hostPath} for ${d.destination}: ${full ? `a VM pod holds at most ${MAX_POD_DISKS} block devices` : `QEMU refused it: ${errorMessage(err)}`}`, {}, err);
    }
    undo.push(`unplug ${id}`, () => unplugBlock(qmp, id));
    out.push(d.node ? { kind: 'blockdev', serial: id, destination: d.destination, readonly: d.readonly, access: d.access } : { kind: 'block', serial: id, destination: d.destination, readonly: d.readonly });
  }
  return out;
}

/** Unplugs whatever disks of this container QEMU holds. */
export async function unplugDisks(qmp: QmpClient, containerId: string): Promise<void> {
  for (const id of await pluggedBlockIds(qmp, diskPrefix(containerId))) await unplugBlock(qmp, id);
}
