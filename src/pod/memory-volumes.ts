// A memory-backed emptyDir (`medium: Memory`) is a tmpfs kubelet mounted on
// the host. Reached through virtio-fs, its pages would live on the host and
// every access would cross the VM; instead the pod gets a tmpfs of the same
// size inside the guest, one per volume, shared by the pod's containers.
import { createHash } from 'node:crypto';
import { statfs } from 'node:fs/promises';

const TMPFS_MAGIC = 0x01021994;
/** kubelet's folder for emptyDir volumes: /var/lib/kubelet/pods/UID/volumes/kubernetes.io~empty-dir/NAME. */
const EMPTY_DIR_RE = /\/volumes\/kubernetes\.io~empty-dir\/[^/]+\/?$/;
/** Where the agent keeps the pod's tmpfs volumes (initrd/agent/agent.h POD_TMPFS_DIR). */
export const GUEST_POD_TMPFS_DIR = '/run/frakti/tmpfs';

/**
 * The pod's /dev/shm: one tmpfs in the guest that every container of the pod
 * binds, as containerd gives a pod's containers the sandbox's /dev/shm (a
 * container that mounts its own /dev/shm keeps it).
 */
export const POD_SHM = { kind: 'tmpfs', source: `${GUEST_POD_TMPFS_DIR}/shm`, destination: '/dev/shm', readonly: false, options: ['size=65536k', 'noexec'] } as const;

/** The guest tmpfs for `hostPath` when it is a memory-backed emptyDir, else undefined. */
export async function memoryEmptyDir(hostPath: string): Promise<{ guestPath: string; sizeBytes: number } | undefined> {
  if (!EMPTY_DIR_RE.test(hostPath)) return undefined;
  const fs = await statfs(hostPath).catch(() => undefined);
  if (!fs || fs.type !== TMPFS_MAGIC) return undefined;
  // The same volume gets the same guest tmpfs, whichever container names it first.
  const name = createHash('sha256').update(hostPath.replace(/\/$/, '')).digest('hex').slice(0, 24);
  return { guestPath: `${GUEST_POD_TMPFS_DIR}/${name}`, sizeBytes: fs.blocks * fs.bsize };
}
