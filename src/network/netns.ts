// Named network namespaces (/run/netns/NAME, as `ip netns` makes them, so an
// operator can `ip netns exec` into a pod's network).
import { access } from 'node:fs/promises';
import { runCommand } from '../lib/command.js';
import { NetworkError } from './errors.js';

export const NETNS_DIR = '/run/netns';
const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const IP_TIMEOUT_MS = 10_000;

export function netnsPath(name: string): string {
  return `${NETNS_DIR}/${name}`;
}

function checkName(name: string): void {
  if (!NAME_RE.test(name)) throw new NetworkError('NETNS_NAME', `network namespace name must match ${NAME_RE}, got ${JSON.stringify(name)}`);
}

export async function netnsExists(name: string): Promise<boolean> {
  checkName(name);
  return access(netnsPath(name)).then(
    () => true,
    () => false,
  );
}

export async function createNetns(name: string): Promise<string> {
  checkName(name);
  const res = await runCommand('ip', ['netns', 'add', name], { timeoutMs: IP_TIMEOUT_MS });
  if (res.exitCode !== 0) throw new NetworkError('NETNS_CREATE', `create network namespace ${name}: ${res.stderr.trim() || `exit ${res.exitCode}`}`);
  // Loopback up, as in any pod.
  await ipIn(name, ['link', 'set', 'lo', 'up']);
  return netnsPath(name);
}

/** Removes the namespace; a missing one is not an error (teardown is idempotent). */
export async function deleteNetns(name: string): Promise<void> {
  checkName(name);
  if (!(await netnsExists(name))) return;
  const res = await runCommand('ip', ['netns', 'delete', name], { timeoutMs: IP_TIMEOUT_MS });
  if (res.exitCode !== 0 && (await netnsExists(name))) {
    throw new NetworkError('NETNS_DELETE', `delete network namespace ${name}: ${res.stderr.trim() || `exit ${res.exitCode}`}`);
  }
}

/** Runs a command inside the namespace and returns its stdout; a failure is an error naming the command. */
export async function execIn(name: string, cmd: string, args: string[]): Promise<string> {
  checkName(name);
  const res = await runCommand('ip', ['netns', 'exec', name, cmd, ...args], { timeoutMs: IP_TIMEOUT_MS, maxBuffer: 4 * 1024 * 1024 });
  if (res.exitCode !== 0) {
    throw new NetworkError('NETNS_EXEC', `in netns ${name}: ${cmd} ${args.join(' ')}: ${res.stderr.trim() || `exit ${res.exitCode}`}`);
  }
  return res.stdout;
}

/** `ip -n NAME ...`: iproute2 enters the namespace itself, cheaper than `ip netns exec` (no remount of /sys). */
export function ipIn(name: string, args: string[]): Promise<string> {
  return run(name, 'ip', ['-n', name, ...args]);
}

/** `ip -n NAME -j -batch -`: several reads, one process; each command's JSON comes back on a line of its own. */
export async function ipJsonBatchIn(name: string, lines: string[]): Promise<unknown[]> {
  const out = await run(name, 'ip', ['-n', name, '-j', '-batch', '-'], lines.join('\n') + '\n');
  return out.split('\n').filter((l) => l.trim() !== '').map((l) => {
    try {
      return JSON.parse(l) as unknown;
    } catch {
      throw new NetworkError('NETNS_EXEC', `in netns ${name}: ip -batch printed something that is not JSON: ${l.slice(0, 120)}`);
    }
  });
}

/** `tc -n NAME -batch -`: several changes, one process; the first that fails stops it, named in the error. */
export function tcBatchIn(name: string, lines: string[]): Promise<string> {
  return run(name, 'tc', ['-n', name, '-batch', '-'], lines.join('\n') + '\n');
}

async function run(name: string, cmd: string, args: string[], input?: string): Promise<string> {
  checkName(name);
  const res = await runCommand(cmd, args, { timeoutMs: IP_TIMEOUT_MS, maxBuffer: 4 * 1024 * 1024, input });
  if (res.exitCode !== 0) {
    throw new NetworkError('NETNS_EXEC', `in netns ${name}: ${cmd} ${args.slice(2).join(' ')}: ${res.stderr.trim() || `exit ${res.exitCode}`}`);
  }
  return res.stdout;
}
