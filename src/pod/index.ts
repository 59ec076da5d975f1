// The pod room: sandbox and container lifecycle. Composes vmm, agent-protocol, image and network.
export * from './errors.js';
export * from './types.js';
export * from './pod-manager.js';
export type { PodManagerOptions, PodManagerDeps, PodImages } from './context.js';
export type * from './agent-port.js';
export { EXEC_SYNC_MAX_OUTPUT_BYTES } from './exec-ops.js';
export type { ExecSession, AttachSession } from './stream-ops.js';
export { ATTACH_MAX_BUFFERED_BYTES } from './stream-ops.js';
export type { ContainerEvent, ContainerEventType, EventSubscription } from './container-events.js';
export { DEFAULT_MAX_QUEUED_EVENTS, MAX_SUBSCRIBERS } from './container-events.js';
export type { PodNetworkCounters } from './pod-metrics.js';
export { DEFAULT_VM_POOL, MAX_VM_POOL } from './vm-pool.js';
export type { PoolStatus } from './vm-pool.js';
