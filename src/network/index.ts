// The network room: namespaces, CNI, tap wiring. Knows nothing about VMs or CRI.
export * from './errors.js';
export * from './netns.js';
export * from './cni-config.js';
export * from './cni-plugin.js';
export * from './cni-result.js';
export * from './cni.js';
export * from './tap-redirect.js';
export * from './default-network.js';
