// Running one CNI plugin as the spec says: the command and the container in
// environment variables, the network config on stdin, a result or an error
// object on stdout. Output, time and the search path are bounded.
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from '../lib/command.js';
import { logger } from '../lib/log.js';
import { CniPluginError, NetworkError } from './errors.js';

const log = logger('cni');
export const CNI_PLUGIN_TIMEOUT_MS = 60_000;
export const CNI_PLUGIN_MAX_OUTPUT_BYTES = 1024 * 1024;

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION';

export interface CniInvocation {
  command: CniCommand;
  containerId: string;
  netnsPath: string;
  ifName: string;
  /** CNI_ARGS as key/value pairs. */
  args: Record<string, string>;
  /** Directories searched for plugin binaries, in order. */
  binDirs: string[];
}

export async function findPlugin(type: string, binDirs: string[]): Promise<string> {
  for (const dir of binDirs) {
    const p = join(dir, type);
    try {
      await access(p, constants.X_OK);
      return p;
    } catch {
      /* next dir */
    }
  }
  throw new NetworkError('CNI_PLUGIN_NOT_FOUND', `CNI plugin '${type}' not found in ${binDirs.join(':')}`, { type });
}

/** Runs a plugin; resolves with its parsed stdout (undefined when empty, as DEL and CHECK may be). */
export async function invokePlugin(type: string, config: object, inv: CniInvocation, timeoutMs = CNI_PLUGIN_TIMEOUT_MS): Promise<unknown> {
  const binary = await findPlugin(type, inv.binDirs);
  const cniArgs = Object.entries(inv.args)
    .map(([k, v]) => `${k}=${v}`)
    .join(';');
  log.trace(`${inv.command} ${type}`, { containerId: inv.containerId });
  const res = await runCommand(binary, [], {
    input: JSON.stringify(config),
    timeoutMs,
    maxBuffer: CNI_PLUGIN_MAX_OUTPUT_BYTES,
    env: {
      CNI_COMMAND: inv.command,
      CNI_CONTAINERID: inv.containerId,
      CNI_NETNS: inv.netnsPath,
      CNI_IFNAME: inv.ifName,
      CNI_ARGS: cniArgs,
      CNI_PATH: inv.binDirs.join(':'),
    },
  });
  const out = String(res.stdout ?? '').trim();
  let parsed: unknown;
  if (out !== '') {
    try {
      parsed = JSON.parse(out);
    } catch {
      parsed = undefined;
    }
  }
  if (res.exitCode !== 0 || res.timedOut) {
    if (res.timedOut) throw new CniPluginError(type, inv.command, undefined, `no answer within ${timeoutMs} ms`);
    const e = (parsed ?? {}) as { code?: unknown; msg?: unknown; details?: unknown };
    const msg = typeof e.msg === 'string' ? e.msg : String(res.stderr ?? '').trim().split('\n').pop() || out.slice(0, 200) || `exit code ${res.exitCode}`;
    throw new CniPluginError(type, inv.command, typeof e.code === 'number' ? e.code : undefined, msg, typeof e.details === 'string' ? e.details : undefined);
  }
  if (out !== '' && parsed === undefined) throw new CniPluginError(type, inv.command, undefined, 'printed something that is not JSON');
  return parsed;
}
