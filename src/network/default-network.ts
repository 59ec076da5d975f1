// frakti's own network for hosts without a CNI config (a fresh machine,
// `frakti run`): a bridge with host-local addresses and port mappings. It is
// kept in frakti's folders; nothing is written into the host's /etc/cni.
import { join } from 'node:path';
import type { CniNetworkConfig } from './cni-config.js';

export const DEFAULT_NETWORK_NAME = 'frakti-default';
export const DEFAULT_BRIDGE = 'frakti0';
export const DEFAULT_SUBNET = '10.88.64.0/20';

export function defaultNetworkConfig(rootDir: string): CniNetworkConfig {
  return {
    cniVersion: '1.0.0',
    name: DEFAULT_NETWORK_NAME,
    disableCheck: false,
    source: '(built in)',
    plugins: [
      {
        type: 'bridge',
        bridge: DEFAULT_BRIDGE,
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: DEFAULT_SUBNET }]],
          routes: [{ dst: '0.0.0.0/0' }],
          dataDir: join(rootDir, 'network', 'ipam'),
        },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
}
