// Errors of the agent protocol room. Every failure carries a stable code:
//   AGENT_TIMEOUT   a connect, handshake or call did not finish in time
//   AGENT_PROTOCOL  the peer broke the protocol (bad frame, bad sync, bad message)
//   AGENT_CLOSED    the channel closed (or was closed) before the answer came
//   AGENT_CONNECT   the transport could not be opened (socket, relay)
//   AGENT_ABORTED   the caller's AbortSignal fired
//   AGENT_CALL      the agent answered with an error {errno, message}
//   AGENT_BUSY      too many calls in flight
//   AGENT_OPTIONS   the caller passed invalid options
import { FraktiError, type ErrorFields } from '../lib/errors.js';

export type AgentErrorCode =
  | 'AGENT_TIMEOUT'
  | 'AGENT_PROTOCOL'
  | 'AGENT_CLOSED'
  | 'AGENT_CONNECT'
  | 'AGENT_ABORTED'
  | 'AGENT_CALL'
  | 'AGENT_BUSY'
  | 'AGENT_OPTIONS';

export class AgentError extends FraktiError {
  declare readonly code: AgentErrorCode;

  constructor(code: AgentErrorCode, message: string, fields: ErrorFields = {}, options?: { cause?: unknown }) {
    super(code, message, fields, options);
  }
}

/** The agent refused a call: `errnum` is a Linux errno value from the guest. */
export class AgentCallError extends AgentError {
  readonly errnum: number;

  constructor(call: string, errnum: number, agentMessage: string) {
    super('AGENT_CALL', `agent call ${call} failed: ${agentMessage} (errno ${errnum})`, { call, errnum, agentMessage });
    this.errnum = errnum;
  }
}

/** A framing or message violation; the channel that saw it is closed. */
export function protocolError(message: string, fields: ErrorFields = {}): AgentError {
  return new AgentError('AGENT_PROTOCOL', `agent protocol error: ${message}`, fields);
}
