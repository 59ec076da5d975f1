// A container's root filesystem on the host: an overlay of the image's
// unpacked layers (read-only) and a per-container upper dir, mounted under
// the pod's shared directory, which virtio-fs serves to the guest.
import { mkdir, rm, symlink } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { runCommand } from '../lib/command.js';
import type { UndoStack } from '../lib/undo.js';
import { PodError } from './errors.js';

/** The kernel reads mount options from one page. */
const MOUNT_OPTIONS_MAX_BYTES = 4096;
export const MAX_IMAGE_LAYERS = 500;

export interface RootfsMount {
  /** Image layer directories, lowest first. */
  layers: string[];
  /** Holds upper/ and work/ of this container (on the host's disk). */
  scratchDir: string;
  /** Where the rootfs appears: a directory under the pod's shared directory. */
  target: string;
  readonly?: boolean;
}

function commonParent(paths: string[]): string {
  let parent = dirname(paths[0]!);
  while (!paths.every((p) => p.startsWith(parent + '/')) && parent !== '/') parent = dirname(parent);
  return parent;
}

export async function mountRootfs(m: RootfsMount, undo: UndoStack): Promise<void> {
  if (m.layers.length === 0 || m.layers.length > MAX_IMAGE_LAYERS) {
    throw new PodError('INVALID_ARGUMENT', `an image needs 1..${MAX_IMAGE_LAYERS} layers, got ${m.layers.length}`);
  }
  const upper = join(m.scratchDir, 'upper');
  const work = join(m.scratchDir, 'work');
  await mkdir(upper, { recursive: true, mode: 0o755 });
  await mkdir(work, { recursive: true, mode: 0o700 });
  undo.push(`remove ${m.scratchDir}`, () => rm(m.scratchDir, { recursive: true, force: true }));
  await mkdir(m.target, { recursive: true, mode: 0o755 });
  undo.push(`remove ${m.target}`, () => rm(m.target, { recursive: true, force: true }));

  // overlayfs wants the top layer first. Paths relative to their common
  // parent keep the option string short for images with many layers.
  const parent = commonParent(m.layers);
  const lower = [...m.layers].reverse().map((l) => relative(parent, l)).join(':');
  let opts = m.readonly ? `lowerdir=${lower}` : `lowerdir=${lower},upperdir=${upper},workdir=${work}`;
  let cwd = parent;
  if (Buffer.byteLength(opts) >= MOUNT_OPTIONS_MAX_BYTES) {
    // Too long for the page the kernel reads (about 60 layers of digest-named
    // directories): short symlinks in the scratch dir name the layers instead;
    // overlayfs resolves them once, at mount time.
    ({ opts, cwd } = await shortLayerNames(m, upper, work));
  }
  const res = await runCommand('mount', ['-t', 'overlay', 'overlay', '-o', opts, m.target], { cwd, timeoutMs: 30_000 });
  if (res.exitCode !== 0) throw new PodError('INTERNAL', `mount rootfs at ${m.target}: ${res.stderr.trim() || `exit ${res.exitCode}`}`);
  undo.push(`unmount ${m.target}`, () => unmountRootfs(m.target));
}

/** Overlay options naming the layers by symlinks `l/0`, `l/1`, ... in the scratch dir (which is the mount's cwd). */
async function shortLayerNames(m: RootfsMount, upper: string, work: string): Promise<{ opts: string; cwd: string }> {
  const dir = join(m.scratchDir, 'l');
  await mkdir(dir, { mode: 0o700 });
  const top = [...m.layers].reverse();
  for (const [i, layer] of top.entries()) await symlink(layer, join(dir, String(i)));
  const lower = top.map((_, i) => `l/${i}`).join(':');
  const opts = m.readonly ? `lowerdir=${lower}` : `lowerdir=${lower},upperdir=${relative(m.scratchDir, upper)},workdir=${relative(m.scratchDir, work)}`;
  return { opts, cwd: m.scratchDir };
}

/**
 * The guest may still hold inodes of the rootfs (FACTS.md: a plain umount is
 * then busy), so a lazy unmount follows a failed plain one.
 */
export async function unmountRootfs(target: string): Promise<void> {
  const plain = await runCommand('umount', [target], { timeoutMs: 30_000 });
  if (plain.exitCode === 0 || /not mounted|no mount point/.test(plain.stderr)) return;
  const lazy = await runCommand('umount', ['-l', target], { timeoutMs: 30_000 });
  if (lazy.exitCode !== 0 && !/not mounted|no mount point/.test(lazy.stderr)) {
    throw new PodError('INTERNAL', `unmount rootfs ${target}: ${lazy.stderr.trim()}`);
  }
}
