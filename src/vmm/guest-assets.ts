// Where the bundled guest kernel and initrds are found: FRAKTI_GUEST_DIR, or
// build/guest beside the installed program (dist/src/vmm -> ../../../build/guest).
import { access, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export interface GuestAssets {
  dir: string;
  kernel: string;
  initrd: string;
  /** Trivial init that powers off at once: the accelerator probe and the boot floor. */
  bareInitrd: string;
}

export function defaultGuestDir(): string {
  return process.env.FRAKTI_GUEST_DIR ?? fileURLToPath(new URL('../../../build/guest', import.meta.url));
}

export function guestAssets(dir = defaultGuestDir()): GuestAssets {
  return { dir, kernel: join(dir, 'vmlinux'), initrd: join(dir, 'initrd.img'), bareInitrd: join(dir, 'bare-initrd.img') };
}

export interface KernelInfo {
  release: string;
  sourceVersion: string;
  configHash: string;
}

/** The version facts the kernel build recorded beside vmlinux. */
export async function kernelInfo(dir = defaultGuestDir()): Promise<KernelInfo | undefined> {
  const read = async (f: string) => (await readFile(join(dir, f), 'utf8')).trim();
  try {
    await access(join(dir, 'vmlinux'));
    return { release: await read('release'), sourceVersion: await read('source-version'), configHash: await read('config-hash') };
  } catch {
    return undefined;
  }
}
