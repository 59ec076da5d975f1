// CNI network configuration: discovery in the conf dir and validation.
// As kubelet's runtimes do: files *.conflist, *.conf, *.json in lexical
// order, the first valid one is the pod network; a single-plugin .conf is
// treated as a list of one.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { NetworkError } from './errors.js';

const log = logger('cni');
export const CNI_CONFIG_MAX_BYTES = 1024 * 1024;
export const SUPPORTED_CNI_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0'];

export interface CniPluginConf {
  type: string;
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

export interface CniNetworkConfig {
  cniVersion: string;
  name: string;
  disableCheck: boolean;
  plugins: CniPluginConf[];
  /** The file it came from, for messages. */
  source: string;
}

const NAME_RE = /^[A-Za-z0-9_.-]{1,128}$/;
const TYPE_RE = /^[A-Za-z0-9_.-]{1,64}$/;

export function parseNetworkConfig(text: string, source: string): CniNetworkConfig {
  const bad = (why: string): never => {
    throw new NetworkError('CNI_CONFIG_INVALID', `CNI config ${source}: ${why}`, { source });
  };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return bad(`not JSON: ${errorMessage(err)}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return bad('not a JSON object');
  const o = raw as Record<string, unknown>;
  if (typeof o.cniVersion !== 'string' || !SUPPORTED_CNI_VERSIONS.includes(o.cniVersion)) {
    bad(`cniVersion ${JSON.stringify(o.cniVersion)} is not one of ${SUPPORTED_CNI_VERSIONS.join(', ')}`);
  }
  if (typeof o.name !== 'string' || !NAME_RE.test(o.name)) bad(`name must match ${NAME_RE}`);
  let plugins: unknown;
  if ('plugins' in o) {
    plugins = o.plugins;
  } else if (typeof o.type === 'string') {
    const { cniVersion: _v, name: _n, ...plugin } = o;
    plugins = [plugin];
  } else {
    bad('neither "plugins" (a conflist) nor "type" (a single plugin)');
  }
  if (!Array.isArray(plugins) || plugins.length === 0 || plugins.length > 32) bad('"plugins" must be a list of 1..32 plugins');
  (plugins as unknown[]).forEach((p, i) => {
    if (typeof p !== 'object' || p === null || typeof (p as CniPluginConf).type !== 'string' || !TYPE_RE.test((p as CniPluginConf).type)) {
      bad(`plugin ${i} has no valid "type"`);
    }
  });
  return {
    cniVersion: o.cniVersion as string,
    name: o.name as string,
    disableCheck: o.disableCheck === true,
    plugins: plugins as CniPluginConf[],
    source,
  };
}

/** The pod network: the first valid config in the directory, or undefined when there is none. */
export async function loadDefaultNetwork(confDir: string): Promise<CniNetworkConfig | undefined> {
  let names: string[];
  try {
    names = (await readdir(confDir)).filter((n) => /\.(conflist|conf|json)$/.test(n)).sort();
  } catch {
    return undefined;
  }
  for (const n of names) {
    const path = join(confDir, n);
    try {
      const st = await stat(path);
      if (!st.isFile() || st.size > CNI_CONFIG_MAX_BYTES) throw new NetworkError('CNI_CONFIG_INVALID', `CNI config ${path}: not a file under ${CNI_CONFIG_MAX_BYTES} bytes`);
      return parseNetworkConfig(await readFile(path, 'utf8'), path);
    } catch (err) {
      // Like kubelet's runtimes, a broken file is skipped with a warning and the next one tried.
      log.warn('skipping CNI config', { path, err: errorMessage(err) });
    }
  }
  return undefined;
}
