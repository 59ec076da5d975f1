// A small tmpfs for a test that needs a file system to run out of space or
// inodes (root only): mounted, handed to the test, unmounted whatever happened.
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Runs fn with a fresh tmpfs at `at` (mount options such as "size=1m,nr_inodes=3"), unmounted afterwards. */
export async function onTmpfs<T>(at: string, options: string, fn: () => Promise<T>): Promise<T> {
  await mkdir(at, { recursive: true });
  await run('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', at]);
  try {
    return await fn();
  } finally {
    await run('umount', [at]);
  }
}
