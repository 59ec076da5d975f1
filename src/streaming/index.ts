// The streaming room: the server behind the Exec, Attach and PortForward
// URLs (SPDY/3.1 and WebSocket), Kubernetes' remote-command and
// port-forward protocols over them, and the one-time tokens the CRI
// handlers hand out. It runs sessions on the pod room's streaming
// operations, handed in by the composition root as a StreamingBackend.
export {
  StreamingServer, StreamAddressError, parseStreamAddress, DEFAULT_STREAM_ADDRESS, DEFAULT_STREAM_IDLE_TIMEOUT_MS, MAX_STREAM_CONNECTIONS,
  type StreamingBackend, type StreamingServerOptions,
} from './streaming-server.js';
export { StreamRequests, STREAM_REQUEST_TTL_MS, MAX_WAITING_STREAM_REQUESTS, type StreamRequest } from './stream-requests.js';
export { StreamingError, type StreamingErrorCode } from './errors.js';
