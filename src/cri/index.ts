// Public API of the CRI room: the server, its handler tables and the
// daemon's configuration. The CLI imports only from here.
export { CriServer, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_SHUTDOWN_TIMEOUT_MS, SOCKET_MODE, socketAnswers, type CriServerOptions } from './server.js';
export { runtimeHandlers, type RuntimeServiceDeps } from './runtime-service.js';
export { imageHandlers } from './image-service.js';
export { imageStoreHolder, imageRootOf, type ImageStoreHolder } from './image-store-holder.js';
export { CriError, SocketError, toGrpcStatus, type CriErrorCode } from './errors.js';
export { criProtoPath, PROTO_LOADER_OPTIONS, loadCriServices } from './proto.js';
export { ConfigError, DEFAULT_OS_RUNTIME_ENDPOINT, LOG_LEVELS, osRuntimeSocketPath, defaultConfig, loadConfigFile, parseConfigText, parseMetricsAddress, validateConfig, type DaemonConfig } from './daemon-config.js';
export type { PodDeps } from './pod-manager-holder.js';
export type { HandlerTable, AnyUnary, AnyStream } from './service-table.js';
export type { CallContext } from './rpc-wrapper.js';
export { streamedList } from './list-streaming.js';
export type { VmSizing } from './pod-mapping.js';
export { DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS } from './pod-mapping.js';
