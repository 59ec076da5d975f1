// Finds processes whose command line mentions a path: what a test must not
// leave behind (QEMU, virtiofsd), and a way to kill them if it did.
import { readdir, readFile } from 'node:fs/promises';

export async function processesMentioning(needle: string): Promise<{ pid: number; cmd: string }[]> {
  const out: { pid: number; cmd: string }[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = (await readFile(`/proc/${name}/cmdline`, 'utf8')).split('\0').join(' ');
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (state !== 'Z' && cmd.includes(needle) && Number(name) !== process.pid) out.push({ pid: Number(name), cmd });
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

export async function mountsUnder(prefix: string): Promise<string[]> {
  const mounts = await readFile('/proc/mounts', 'utf8');
  return mounts
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m === prefix || m.startsWith(prefix + '/'));
}

/** Kills whatever a failed test left running under `needle`; returns what it found. */
export async function killLeftovers(needle: string): Promise<string[]> {
  const left = await processesMentioning(needle);
  for (const p of left) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  return left.map((p) => `${p.pid} ${p.cmd.slice(0, 120)}`);
}

/** QEMU and virtiofsd processes working under a directory (not the daemon that made them). */
export async function vmProcessesUnder(dir: string): Promise<{ pid: number; cmd: string }[]> {
  return (await processesMentioning(dir)).filter((p) => /qemu-system|virtiofsd/.test(p.cmd));
}
