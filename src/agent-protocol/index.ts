// The agent protocol room: agent.proto, framing, transports and the typed
// client. Knows nothing about QEMU or CRI.
export { AgentClient, CALL_TIMEOUT_MS, MAX_PENDING_CALLS, type AgentVersion, type CallOptions } from './client.js';
export { connectAgent, waitForAgent, CONNECT_TIMEOUT_MS, WAIT_INTERVAL_MS, type ConnectOptions, type WaitOptions } from './connect.js';
export { AgentCallError, AgentError, type AgentErrorCode } from './errors.js';
export { AGENT_SERIAL_PORT_NAME, AGENT_VSOCK_PORT, MAX_FRAME_PAYLOAD_BYTES, PROTOCOL_VERSION, STREAM_WINDOW_BYTES } from './framing.js';
export { describeTarget, vsockRelayPath, type AgentTarget } from './transport.js';
export type {
  ContainerInfo,
  ContainerStats,
  ExitStatus,
  GuestContainerSpec,
  GuestInterface,
  GuestMount,
  GuestNeighbor,
  GuestNetwork,
  GuestResources,
  GuestRoute,
  GuestStats,
  IoOptions,
  ProcessIo,
  ProcessSpec,
  SandboxSetup,
  ShareMount,
} from './types.js';
