// The protobuf messages of agent.proto, loaded at run time with protobufjs
// (the same file protoc-c compiles for the guest: one schema, no generated
// TypeScript to keep in step). Decoding validates everything that comes from
// the guest: exactly one known result, bounded strings, sane numbers.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { protocolError } from './errors.js';
import { NONCE_BYTES } from './framing.js';

function findProto(): string {
  // tsc does not copy .proto files: from dist/src/agent-protocol/ the source is three levels up.
  const beside = fileURLToPath(new URL('./agent.proto', import.meta.url));
  if (existsSync(beside)) return beside;
  return fileURLToPath(new URL('../../../src/agent-protocol/agent.proto', import.meta.url));
}

export const AGENT_PROTO_PATH = findProto();

const root = protobuf.loadSync(AGENT_PROTO_PATH);
const lookup = (name: string): protobuf.Type => root.lookupType(`frakti.agent.v1.${name}`);
const HelloType = lookup('Hello');
const ErrorType = lookup('Error');
const RequestType = lookup('Request');
const ResponseType = lookup('Response');

/** Enums of agent.proto, for the tests that check our compiled-in copies. */
export function protoEnum(name: 'Limits' | 'FrameType'): Record<string, number> {
  return root.lookupEnum(`frakti.agent.v1.${name}`).values;
}

/** Strings from the guest longer than this are a protocol error. */
export const MAX_AGENT_STRING_BYTES = 4096;

const DECODE_OPTIONS: protobuf.IConversionOptions = { longs: Number, bytes: Buffer, defaults: true, oneofs: true };

export interface HelloMessage {
  protocolVersion: number;
  nonce: Buffer;
  agentVersion: string;
}

export interface AgentErrorMessage {
  errnum: number;
  message: string;
}

export type RequestCall =
  | { call: 'version' }
  | { call: 'ping'; data?: Buffer }
  | { call: 'shutdown' };

export interface VersionResult {
  agentVersion: string;
  protocolVersion: number;
  kernelRelease: string;
}

export type ResponseResult =
  | { result: 'error'; error: AgentErrorMessage }
  | { result: 'version'; version: VersionResult }
  | { result: 'ping'; data: Buffer }
  | { result: 'shutdown' };

export function encodeHello(hello: { protocolVersion: number; nonce: Buffer }): Buffer {
  return Buffer.from(HelloType.encode(HelloType.fromObject(hello)).finish());
}

export function encodeRequest(req: RequestCall): Buffer {
  let body: Record<string, unknown>;
  switch (req.call) {
    case 'version':
      body = { version: {} };
      break;
    case 'ping':
      body = { ping: { data: req.data ?? Buffer.alloc(0) } };
      break;
    case 'shutdown':
      body = { shutdown: {} };
      break;
  }
  return Buffer.from(RequestType.encode(RequestType.fromObject(body)).finish());
}

function decode(type: protobuf.Type, payload: Buffer, what: string): Record<string, unknown> {
  try {
    return type.toObject(type.decode(payload), DECODE_OPTIONS) as Record<string, unknown>;
  } catch (err) {
    throw protocolError(`undecodable ${what} from the agent: ${(err as Error).message}`);
  }
}

function boundedString(v: unknown, field: string): string {
  if (typeof v !== 'string') throw protocolError(`${field} is not a string`);
  if (Buffer.byteLength(v) > MAX_AGENT_STRING_BYTES) throw protocolError(`${field} exceeds ${MAX_AGENT_STRING_BYTES} bytes`);
  return v;
}

function uint32(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw protocolError(`${field} is not a uint32`);
  return v;
}

function object(v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null) throw protocolError(`${field} is missing`);
  return v as Record<string, unknown>;
}

/** The agent's HELLO: its protocol version and agent version. */
export function decodeHello(payload: Buffer): HelloMessage {
  const m = decode(HelloType, payload, 'HELLO');
  const nonce = m.nonce;
  if (!Buffer.isBuffer(nonce) || (nonce.length !== 0 && nonce.length !== NONCE_BYTES)) throw protocolError('HELLO nonce has a bad size');
  return {
    protocolVersion: uint32(m.protocolVersion, 'HELLO protocol_version'),
    nonce,
    agentVersion: boundedString(m.agentVersion, 'HELLO agent_version'),
  };
}

/** The payload of GOAWAY (and of an error result). */
export function decodeError(payload: Buffer): AgentErrorMessage {
  return errorFields(decode(ErrorType, payload, 'GOAWAY'), 'GOAWAY');
}

function errorFields(m: Record<string, unknown>, where: string): AgentErrorMessage {
  const errnum = m.errnum;
  if (typeof errnum !== 'number' || !Number.isInteger(errnum) || errnum < 0 || errnum > 4095) throw protocolError(`${where} errnum is out of range`);
  return { errnum, message: boundedString(m.message, `${where} message`) };
}

export function decodeResponse(payload: Buffer): ResponseResult {
  const m = decode(ResponseType, payload, 'response');
  switch (m.result) {
    case 'error':
      return { result: 'error', error: errorFields(object(m.error, 'error'), 'error') };
    case 'version': {
      const v = object(m.version, 'version');
      return {
        result: 'version',
        version: {
          agentVersion: boundedString(v.agentVersion, 'agent_version'),
          protocolVersion: uint32(v.protocolVersion, 'protocol_version'),
          kernelRelease: boundedString(v.kernelRelease, 'kernel_release'),
        },
      };
    }
    case 'ping': {
      const data = object(m.ping, 'ping').data;
      if (!Buffer.isBuffer(data)) throw protocolError('ping data is not bytes');
      return { result: 'ping', data };
    }
    case 'shutdown':
      return { result: 'shutdown' };
    default:
      throw protocolError('response carries no known result');
  }
}
