// Which CNI network pods join: the first config in the CNI conf dir, or,
// when that dir has none, frakti's own bridge network (so a fresh machine
// runs pods). Looked up per pod, so a config dropped in later takes over.
import { join } from 'node:path';
import { CniNetwork, defaultNetworkConfig, findPlugin, loadDefaultNetwork, type CniNetworkConfig } from '../network/index.js';
import { errorMessage } from '../lib/errors.js';

export interface NetworkSourceOptions {
  confDir: string;
  binDirs: string[];
  rootDir: string;
  /** Use frakti's bridge when confDir has no config. Default true. */
  fallbackToDefault?: boolean;
}

export interface NetworkChoice {
  network?: CniNetwork;
  /** For the CRI Status NetworkReady condition. */
  ready: boolean;
  reason: string;
  message: string;
}

export async function choosePodNetwork(o: NetworkSourceOptions): Promise<NetworkChoice> {
  const cacheDir = join(o.rootDir, 'network', 'results');
  let config: CniNetworkConfig | undefined = await loadDefaultNetwork(o.confDir);
  let message = config ? `CNI network ${config.name} from ${config.source}` : '';
  if (!config && o.fallbackToDefault !== false) {
    config = defaultNetworkConfig(o.rootDir);
    message = `no CNI config in ${o.confDir}: frakti's own bridge network ${config.name}`;
  }
  if (!config) return { ready: false, reason: 'NetworkPluginNotReady', message: `no CNI network config found in ${o.confDir}` };
  // A config whose plugins are not installed cannot attach a pod: say so before a pod tries.
  try {
    for (const p of config.plugins) await findPlugin(p.type, o.binDirs);
  } catch (err) {
    return { ready: false, reason: 'NetworkPluginNotReady', message: `${message}: ${errorMessage(err)}` };
  }
  return { network: new CniNetwork({ config, binDirs: o.binDirs, cacheDir }), ready: true, reason: '', message };
}
