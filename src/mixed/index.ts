// Public API of the mixed-runtimes room: the routing of CRI calls between
// frakti's VM runtime and the OS-container runtime. The CLI imports only from here.
export { mixedImageHandlers, mixedRuntimeHandlers, type MixedDeps } from './mixed-handlers.js';
export { OsRuntime, OS_CALL_TIMEOUT_MS } from './os-runtime.js';
export { OS_CONTAINER_ANNOTATION, osRuntimeReason } from './pod-routing.js';
