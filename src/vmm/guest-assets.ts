// Where the bundled guest kernel and initrds are found: FRAKTI_GUEST_DIR, or
// the folder of the shipped vmlinux (build/guest in a checkout, the extracted
// assets in the single executable; the other guest files lie beside it).
import { access, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { shippedFile } from '../lib/shipped-files.js';

export interface GuestAssets {
  dir: string;
  kernel: string;
  initrd: string;
  /** Trivial init that powers off at once: the accelerator probe and the boot floor. */
  bareInitrd: string;
}

export function defaultGuestDir(): string {
  if (process.env.FRAKTI_GUEST_DIR) return process.env.FRAKTI_GUEST_DIR;
  // The whole guest set is extracted together, so that every file named below exists.
  for (const name of ['initrd.img', 'bare-initrd.img', 'release', 'source-version', 'config-hash'] as const) shippedFile(name);
  return dirname(shippedFile('vmlinux'));
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
