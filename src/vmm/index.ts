// The vmm room: QEMU and virtiofsd. Knows nothing about CRI or containers.
export * from './errors.js';
export * from './qmp-client.js';
export * from './vm-spec.js';
export * from './vm-paths.js';
export * from './qemu-args.js';
export * from './vm.js';
export * from './accel.js';
export * from './guest-assets.js';
export * from './hotplug.js';
