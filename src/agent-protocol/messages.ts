// The protobuf messages of agent.proto, loaded at run time with protobufjs
// (the same file protoc-c compiles for the guest: one schema, no generated
// TypeScript to keep in step). Decoding validates everything that comes from
// the guest: exactly one known result, bounded strings, sane numbers.
import protobuf from 'protobufjs';
import { shippedFile } from '../lib/shipped-files.js';
import { AgentError, protocolError } from './errors.js';
import { NONCE_BYTES } from './framing.js';

/** agent.proto's path (in the checkout, or extracted from the single executable). */
export function agentProtoPath(): string {
  return shippedFile('agent.proto');
}

interface Schema {
  root: protobuf.Root;
  Hello: protobuf.Type;
  Error: protobuf.Type;
  Request: protobuf.Type;
  Response: protobuf.Type;
  Event: protobuf.Type;
}
let loaded: Schema | undefined;

// Loaded on first use, not at import: in the single executable the file is
// extracted under the root directory, which the command knows only later.
function schema(): Schema {
  if (loaded) return loaded;
  const root = protobuf.loadSync(agentProtoPath());
  // Field types resolved up front: countMessages() walks them.
  root.resolveAll();
  const lookup = (name: string): protobuf.Type => root.lookupType(`frakti.agent.v1.${name}`);
  loaded = { root, Hello: lookup('Hello'), Error: lookup('Error'), Request: lookup('Request'), Response: lookup('Response'), Event: lookup('Event') };
  return loaded;
}

/** Enums of agent.proto, for the tests that check our compiled-in copies. */
export function protoEnum(name: 'Limits' | 'FrameType'): Record<string, number> {
  return schema().root.lookupEnum(`frakti.agent.v1.${name}`).values;
}

/** Strings from the guest longer than this are a protocol error. */
export const MAX_AGENT_STRING_BYTES = 4096;

// 64-bit fields come out as decimal strings and are range-checked by u64()/i64().
const DECODE_OPTIONS: protobuf.IConversionOptions = { longs: String, bytes: Buffer, defaults: true, oneofs: true };

export interface HelloMessage {
  protocolVersion: number;
  nonce: Buffer;
  agentVersion: string;
}

export interface AgentErrorMessage {
  errnum: number;
  message: string;
}

/** Calls whose request is a plain message, named as in Request's oneof (camelCase). */
export type BodyCall =
  | 'setupSandbox'
  | 'configureNetwork'
  | 'createContainer'
  | 'startContainer'
  | 'exec'
  | 'signal'
  | 'wait'
  | 'resizeTty'
  | 'attachIo'
  | 'removeContainer'
  | 'updateResources'
  | 'containerStats'
  | 'guestStats'
  | 'onlineHotplugged'
  | 'portForward'
  | 'listContainers';

export type RequestCall =
  | { call: 'version' }
  | { call: 'ping'; data?: Buffer }
  | { call: 'shutdown' }
  | { call: BodyCall; body: Record<string, unknown> };

export interface VersionResult {
  agentVersion: string;
  protocolVersion: number;
  kernelRelease: string;
}

export type ResponseResult =
  | { result: 'error'; error: AgentErrorMessage }
  | { result: 'version'; version: VersionResult }
  | { result: 'ping'; data: Buffer }
  | { result: 'shutdown' }
  /** Results of the BodyCalls: the decoded message, validated by the caller with the checkers below. */
  | { result: BodyResult; body: Record<string, unknown> };

export type BodyResult =
  | 'setupSandbox'
  | 'configureNetwork'
  | 'createContainer'
  | 'started'
  | 'signal'
  | 'wait'
  | 'resizeTty'
  | 'attachIo'
  | 'removeContainer'
  | 'updateResources'
  | 'containerStats'
  | 'guestStats'
  | 'onlineHotplugged'
  | 'portForward'
  | 'listContainers';

const BODY_RESULTS: ReadonlySet<string> = new Set<BodyResult>([
  'setupSandbox', 'configureNetwork', 'createContainer', 'started', 'signal', 'wait', 'resizeTty', 'attachIo',
  'removeContainer', 'updateResources', 'containerStats', 'guestStats', 'onlineHotplugged', 'portForward', 'listContainers',
]);

export function encodeHello(hello: { protocolVersion: number; nonce: Buffer }): Buffer {
  const { Hello } = schema();
  return Buffer.from(Hello.encode(Hello.fromObject(hello)).finish());
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
    default:
      body = { [req.call]: req.body };
  }
  const { Request } = schema();
  return Buffer.from(Request.encode(Request.fromObject(body)).finish());
}

/**
 * Most messages (the payload's and those nested in it) one payload from the
 * guest may hold. A listContainers answer of MAX_LISTED_CONTAINERS
 * containers, each with its exit status, holds about 8 200.
 */
export const MAX_DECODED_MESSAGES = 16_384;

/**
 * Counts the messages nested in `type`'s encoding between the reader's
 * position and `end`, on the wire, without building them: an empty nested
 * message takes two bytes, so a 1 MiB frame could otherwise make the host
 * build half a million objects (100 MB and half a second) before any bound
 * on a list is checked. Throws AGENT_PROTOCOL past `budget.left`; bytes
 * that do not parse are left for the decoder to report.
 */
function countMessages(type: protobuf.Type, r: protobuf.Reader, end: number, budget: { left: number }, what: string): void {
  while (r.pos < end) {
    const tag = r.uint32();
    const field = type.fieldsById[tag >>> 3];
    if ((tag & 7) !== 2 || !field || field.map || !(field.resolvedType instanceof protobuf.Type)) {
      r.skipType(tag & 7);
      continue;
    }
    if (--budget.left < 0) throw protocolError(`${what} from the agent holds more than ${MAX_DECODED_MESSAGES} messages`);
    const length = r.uint32();
    const sub = r.pos + length;
    if (sub > end) return;
    countMessages(field.resolvedType, r, sub, budget, what);
    r.pos = sub;
  }
}

function decode(type: protobuf.Type, payload: Buffer, what: string): Record<string, unknown> {
  try {
    countMessages(type, protobuf.Reader.create(payload), payload.length, { left: MAX_DECODED_MESSAGES }, what);
  } catch (err) {
    if (err instanceof AgentError) throw err;
    // Malformed bytes: the decoder below says what is wrong with them.
  }
  try {
    return type.toObject(type.decode(payload), DECODE_OPTIONS) as Record<string, unknown>;
  } catch (err) {
    throw protocolError(`undecodable ${what} from the agent: ${(err as Error).message}`);
  }
}

// Checkers for values from the guest: each returns the value or throws AGENT_PROTOCOL.

export function boundedString(v: unknown, field: string, maxBytes = MAX_AGENT_STRING_BYTES): string {
  if (typeof v !== 'string') throw protocolError(`${field} is not a string`);
  if (v.length > maxBytes || Buffer.byteLength(v) > maxBytes) throw protocolError(`${field} exceeds ${maxBytes} bytes`);
  return v;
}

export function uint32(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw protocolError(`${field} is not a uint32`);
  return v;
}

export function int32(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) throw protocolError(`${field} is not an int32`);
  return v;
}

/** A 64-bit field (decoded as a decimal string) as a bigint within [min, max]. */
export function int64Big(v: unknown, field: string, min: bigint, max: bigint): bigint {
  if (typeof v !== 'string' || !/^-?[0-9]{1,20}$/.test(v)) throw protocolError(`${field} is not a 64-bit integer`);
  const n = BigInt(v);
  if (n < min || n > max) throw protocolError(`${field} ${v} is out of range`);
  return n;
}

/** A 64-bit field that must fit a safe JavaScript integer, >= 0. */
export function u64(v: unknown, field: string): number {
  return Number(int64Big(v, field, 0n, BigInt(Number.MAX_SAFE_INTEGER)));
}

export function bool(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') throw protocolError(`${field} is not a boolean`);
  return v;
}

export function object(v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw protocolError(`${field} is missing`);
  return v as Record<string, unknown>;
}

export function array(v: unknown, field: string, maxItems: number): unknown[] {
  if (!Array.isArray(v)) throw protocolError(`${field} is not a list`);
  if (v.length > maxItems) throw protocolError(`${field} has ${v.length} items, more than ${maxItems}`);
  return v;
}

/** The agent's HELLO: its protocol version and agent version. */
export function decodeHello(payload: Buffer): HelloMessage {
  const m = decode(schema().Hello, payload, 'HELLO');
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
  return errorFields(decode(schema().Error, payload, 'GOAWAY'), 'GOAWAY');
}

function errorFields(m: Record<string, unknown>, where: string): AgentErrorMessage {
  const errnum = m.errnum;
  if (typeof errnum !== 'number' || !Number.isInteger(errnum) || errnum < 0 || errnum > 4095) throw protocolError(`${where} errnum is out of range`);
  return { errnum, message: boundedString(m.message, `${where} message`) };
}

export function decodeResponse(payload: Buffer): ResponseResult {
  const m = decode(schema().Response, payload, 'response');
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
      if (typeof m.result === 'string' && BODY_RESULTS.has(m.result)) {
        return { result: m.result as BodyResult, body: object(m[m.result], m.result) };
      }
      throw protocolError('response carries no known result');
  }
}

export type EventMessage =
  | { event: 'exit'; body: Record<string, unknown> }
  | { event: 'oom'; body: Record<string, unknown> };

/** An EVENT payload: which event and its (unchecked) fields. */
export function decodeEvent(payload: Buffer): EventMessage {
  const m = decode(schema().Event, payload, 'event');
  if (m.event === 'exit' || m.event === 'oom') return { event: m.event, body: object(m[m.event], m.event) };
  throw protocolError('event carries no known kind');
}
