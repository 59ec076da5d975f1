// Temporary names carry the pid of their writer, so that a later process can
// tell the leftovers of a dead writer (removed on open) from the work of a
// live one (another frakti process on the same root; left alone).
import { randomBytes } from 'node:crypto';

const TEMP = /^\.tmp-(\d+)-[0-9a-f]+/;

export function tempName(tag = ''): string {
  return `.tmp-${process.pid}-${randomBytes(6).toString('hex')}${tag}`;
}

export function isTempName(name: string): boolean {
  return TEMP.test(name);
}

/** True when the temp file's writer is gone (or the name is not ours to judge). */
export function tempWriterDead(name: string): boolean {
  const m = TEMP.exec(name);
  if (!m) return false;
  const pid = Number(m[1]);
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
