// What a container runs: the image's config merged with the container's, as
// Kubernetes defines it (command replaces the entrypoint and drops the
// image's cmd; args alone replace only the cmd), and its user resolved
// against the image's own /etc/passwd and /etc/group on the host side.
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { PodError } from './errors.js';
import type { ProcessSpec } from '../agent-protocol/index.js';
import type { ContainerSpec } from './types.js';

export interface ImageDefaults {
  entrypoint: string[];
  cmd: string[];
  env: string[];
  workingDir: string;
  /** "uid", "uid:gid", "name" or "name:group"; empty means root. */
  user: string;
}

/** The agent's process spec without what the CRI request itself decides. */
export type ResolvedProcess = Omit<ProcessSpec, 'terminal' | 'stdin'>;

export const MAX_ARGS = 4096;
export const MAX_ENV = 4096;
/** /etc/passwd and /etc/group of an image are read up to this size. */
export const ACCOUNT_FILE_MAX_BYTES = 1024 * 1024;
const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function mergeArgs(image: ImageDefaults, c: Pick<ContainerSpec, 'command' | 'args'>): string[] {
  const argv = c.command.length > 0 ? [...c.command, ...c.args] : [...image.entrypoint, ...(c.args.length > 0 ? c.args : image.cmd)];
  if (argv.length === 0) throw new PodError('INVALID_ARGUMENT', 'no command: neither the container nor the image names one');
  if (argv.length > MAX_ARGS) throw new PodError('INVALID_ARGUMENT', `more than ${MAX_ARGS} arguments`);
  return argv;
}

/** Image env first, container env overriding by name; PATH defaulted as runtimes do. */
export function mergeEnv(image: string[], container: [string, string][]): string[] {
  const env = new Map<string, string>();
  for (const kv of image) {
    const eq = kv.indexOf('=');
    if (eq > 0) env.set(kv.slice(0, eq), kv.slice(eq + 1));
  }
  for (const [k, v] of container) {
    if (k === '' || k.includes('=') || k.includes('\0') || v.includes('\0')) throw new PodError('INVALID_ARGUMENT', `bad environment variable name ${JSON.stringify(k)}`);
    env.set(k, v);
  }
  if (!env.has('PATH')) env.set('PATH', DEFAULT_PATH.slice(5));
  if (env.size > MAX_ENV) throw new PodError('INVALID_ARGUMENT', `more than ${MAX_ENV} environment variables`);
  return [...env].map(([k, v]) => `${k}=${v}`);
}

interface Account {
  name: string;
  id: number;
  gid?: number;
  members?: string[];
}

async function readBounded(path: string): Promise<string> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return '';
  }
  try {
    const buf = Buffer.alloc(ACCOUNT_FILE_MAX_BYTES);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await fh.close();
  }
}

function parseAccounts(text: string, kind: 'passwd' | 'group'): Account[] {
  const out: Account[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 4 || !/^\d+$/.test(f[2]!)) continue;
    if (kind === 'passwd') out.push({ name: f[0]!, id: Number(f[2]), gid: /^\d+$/.test(f[3]!) ? Number(f[3]) : 0 });
    else out.push({ name: f[0]!, id: Number(f[2]), members: f[3]!.split(',').filter(Boolean) });
  }
  return out;
}

const MAX_ID = 2 ** 32 - 2;
function numericId(s: string): number | undefined {
  if (!/^\d{1,10}$/.test(s)) return undefined;
  const n = Number(s);
  return n <= MAX_ID ? n : undefined;
}

/**
 * Resolves the user: the container's runAsUser/runAsUsername wins over the
 * image's; names are looked up in the rootfs (which is untrusted: bounded
 * reads, malformed lines skipped). Supplementary groups: the user's groups
 * in /etc/group plus the ones the container asks for.
 */
export async function resolveUser(rootfs: string, image: ImageDefaults, c: ContainerSpec['user']): Promise<Pick<ResolvedProcess, 'uid' | 'gid' | 'additionalGids'>> {
  const passwd = parseAccounts(await readBounded(join(rootfs, 'etc/passwd')), 'passwd');
  const groups = parseAccounts(await readBounded(join(rootfs, 'etc/group')), 'group');
  let userPart: string;
  let groupPart: string | undefined;
  if (c.uid !== undefined) userPart = String(c.uid);
  else if (c.username) userPart = c.username;
  else [userPart = '', groupPart] = image.user.split(':');
  if (userPart === '') userPart = '0';

  let uid = numericId(userPart);
  let name: string | undefined;
  let gid: number | undefined;
  if (uid === undefined) {
    const u = passwd.find((p) => p.name === userPart);
    if (!u) throw new PodError('INVALID_ARGUMENT', `user "${userPart}" not found in the image's /etc/passwd`);
    uid = u.id;
    name = u.name;
    gid = u.gid;
  } else {
    const u = passwd.find((p) => p.id === uid);
    name = u?.name;
    gid = u?.gid;
  }
  if (c.gid !== undefined) gid = c.gid;
  else if (groupPart !== undefined && groupPart !== '') {
    gid = numericId(groupPart) ?? groups.find((g) => g.name === groupPart)?.id;
    if (gid === undefined) throw new PodError('INVALID_ARGUMENT', `group "${groupPart}" not found in the image's /etc/group`);
  }
  const extra = new Set<number>(c.additionalGids);
  if (name !== undefined) for (const g of groups) if (g.members?.includes(name)) extra.add(g.id);
  return { uid, gid: gid ?? 0, additionalGids: [...extra].filter((g) => g !== (gid ?? 0)).sort((a, b) => a - b) };
}
