// Liveness of processes frakti may not parent (QEMU and virtiofsd run in
// sessions of their own, so they outlive a frakti restart). A zombie counts as gone.
import { access, readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

export async function isAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Field 3, after the parenthesised command name, is the state.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Polls until the process is gone; false if it still runs after timeoutMs. */
export async function waitGone(pid: number, timeoutMs: number, intervalMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!(await isAlive(pid))) return true;
    if (Date.now() >= deadline) return false;
    await sleep(intervalMs);
  }
}

/** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. */
export async function terminate(pid: number, graceMs: number): Promise<void> {
  signal(pid, 'SIGTERM');
  if (await waitGone(pid, graceMs)) return;
  signal(pid, 'SIGKILL');
  await waitGone(pid, 5_000);
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** Reads a pid file; undefined when it is missing or holds no pid. */
export async function readPidFile(path: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 1 ? pid : undefined;
}

/** Waits until a path exists (a socket a child creates), bounded. */
export async function waitForPath(path: string, timeoutMs: number, isUp: () => Promise<boolean>, intervalMs = 10): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await access(path);
      return true;
    } catch {
      /* not yet */
    }
    if (Date.now() >= deadline || !(await isUp())) return false;
    await sleep(intervalMs);
  }
}

/**
 * Kills the processes whose command line names a path under `dir` (QEMU's
 * -pidfile, virtiofsd's --socket-path): the ones a frakti killed between
 * spawning them and writing their pid file left without one. Returns their pids.
 */
export async function killStragglers(dir: string): Promise<number[]> {
  const needle = dir.endsWith('/') ? dir : `${dir}/`;
  const killed: number[] = [];
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (!cmd.split('\0').some((arg) => arg.includes(needle))) continue;
    signal(pid, 'SIGKILL');
    killed.push(pid);
  }
  for (const pid of killed) await waitGone(pid, 5_000);
  return killed;
}
