// Which CNI network pods join: the first config in the CNI conf dir, or,
// when that dir has none, frakti's own bridge network (so a fresh machine
// runs pods). Looked up per pod, so a config dropped in later takes over.
import { join } from 'node:path';
import { CniNetwork, defaultNetworkConfig, loadDefaultNetwork } from '../network/index.js';

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
  const config = await loadDefaultNetwork(o.confDir);
  if (config) return { network: new CniNetwork({ config, binDirs: o.binDirs, cacheDir }), ready: true, reason: '', message: `CNI network ${config.name} from ${config.source}` };
  if (o.fallbackToDefault !== false) {
    const def = defaultNetworkConfig(o.rootDir);
    return { network: new CniNetwork({ config: def, binDirs: o.binDirs, cacheDir }), ready: true, reason: '', message: `no CNI config in ${o.confDir}: frakti's own bridge network ${def.name}` };
  }
  return { ready: false, reason: 'NetworkPluginNotReady', message: `no CNI network config found in ${o.confDir}` };
}
