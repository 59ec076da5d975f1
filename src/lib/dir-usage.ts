// Disk a directory tree takes: allocated blocks (a sparse file counts what
// it uses) and inodes, the root included, a hard-linked file once. The walk
// reads at most maxEntries entries and says when it stopped there.
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export interface DirUsage {
  bytes: number;
  inodes: number;
  /** The walk stopped at maxEntries. */
  partial: boolean;
}

export async function dirUsage(root: string, maxEntries: number): Promise<DirUsage> {
  const out: DirUsage = { bytes: 0, inodes: 0, partial: false };
  const top = await lstat(root).catch(() => undefined);
  if (!top) return out;
  out.bytes = top.blocks * 512;
  out.inodes = 1;
  const seen = new Set<string>();
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      if (out.inodes >= maxEntries) {
        out.partial = true;
        return out;
      }
      const path = join(dir, name);
      const st = await lstat(path).catch(() => undefined);
      if (!st) continue;
      const key = `${st.dev}:${st.ino}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.inodes++;
      out.bytes += st.blocks * 512;
      if (st.isDirectory()) stack.push(path);
    }
  }
  return out;
}
