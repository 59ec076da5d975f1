// virtiofsd: one per VM that asks for a share. Started before QEMU (QEMU
// connects to its socket as vhost-user client) and gone with it: virtiofsd
// exits by itself when QEMU's connection closes.
import { spawn } from 'node:child_process';
import { open, rm } from 'node:fs/promises';
import { execa } from 'execa';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { logger } from '../lib/log.js';
import type { UndoStack } from '../lib/undo.js';
import { VmError } from './errors.js';
import { isAlive, readPidFile, terminate, waitForPath } from './process-watch.js';
import type { VmPaths } from './vm-paths.js';

const log = logger('virtiofsd');
export const VIRTIOFSD_START_TIMEOUT_MS = 5_000;
export const VIRTIOFSD_STOP_GRACE_MS = 2_000;

/**
 * Mounts made under the share after virtiofsd started are invisible to the
 * guest unless the share is a shared bind mount of itself (FACTS.md), so
 * container rootfs mounts made later need this.
 */
export async function makeSharedMount(dir: string, undo: UndoStack): Promise<void> {
  // One mount(8) both binds and sets the propagation: a process less on the pod's critical path.
  undo.push(`unmount share ${dir}`, () => unmountShare(dir));
  await execa('mount', ['--bind', '--make-rshared', dir, dir]);
}

export async function unmountShare(dir: string): Promise<void> {
  // Recursive and lazy: container rootfs mounts below may still be held by a dying guest.
  await execa('umount', ['-R', '-l', dir], { reject: false });
}

export async function startVirtiofsd(binary: string, source: string, paths: VmPaths, undo: UndoStack): Promise<number> {
  await rm(paths.virtiofsdSocket, { force: true });
  const logFile = await open(paths.virtiofsdLog, 'w');
  const child = spawn(
    binary,
    [
      `--socket-path=${paths.virtiofsdSocket}`,
      '-o', `source=${source}`,
      '-o', 'cache=auto',
      // Without it every file of every rootfs shows one st_dev in the guest and inode numbers collide.
      '-o', 'announce_submounts',
      '-o', 'xattr',
      '-o', 'log_level=warn',
    ],
    { detached: true, stdio: ['ignore', logFile.fd, logFile.fd] },
  );
  await logFile.close();
  const pid = child.pid;
  if (pid === undefined) throw new VmError('VIRTIOFSD_START', `start virtiofsd ${binary}: spawn failed`);
  child.unref();
  undo.push(`stop virtiofsd ${pid}`, () => terminate(pid, VIRTIOFSD_STOP_GRACE_MS));
  await writeFileAtomic(paths.virtiofsdPidFile, `${pid}\n`);
  const up = await waitForPath(paths.virtiofsdSocket, VIRTIOFSD_START_TIMEOUT_MS, () => isAlive(pid));
  if (!up) {
    const why = (await readTail(paths.virtiofsdLog)) || 'no socket within the timeout';
    throw new VmError('VIRTIOFSD_START', `start virtiofsd for ${source}: ${why}`);
  }
  log.debug('virtiofsd started', { pid, source });
  return pid;
}

export async function stopVirtiofsd(paths: VmPaths): Promise<void> {
  const pid = await readPidFile(paths.virtiofsdPidFile);
  if (pid !== undefined && (await isAlive(pid))) await terminate(pid, VIRTIOFSD_STOP_GRACE_MS);
}

/** The last line of a small log file, for error messages. */
export async function readTail(path: string, maxBytes = 4096): Promise<string> {
  try {
    const fh = await open(path, 'r');
    try {
      const { size } = await fh.stat();
      const len = Math.min(size, maxBytes);
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, size - len);
      const lines = buf.toString('utf8').trim().split('\n');
      return lines[lines.length - 1] ?? '';
    } finally {
      await fh.close();
    }
  } catch {
    return '';
  }
}
