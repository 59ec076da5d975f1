// Builds a grpc-js service implementation from a table of handlers: every
// method of the service gets a wrapped handler, and a method without one
// answers UNIMPLEMENTED with its own name (instead of grpc-js's generic text).
import type { ServiceDefinition, UntypedServiceImplementation } from '@grpc/grpc-js';
import { unimplemented } from './errors.js';
import { wrapServerStream, wrapUnary, type CallGate, type StreamHandler, type UnaryHandler } from './rpc-wrapper.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
export type AnyUnary = UnaryHandler<any, any>;
export type AnyStream = StreamHandler<any, any>;

export interface HandlerTable {
  unary?: Record<string, AnyUnary>;
  stream?: Record<string, AnyStream>;
}

export function buildService(serviceName: string, def: ServiceDefinition, table: HandlerTable, gate: CallGate): UntypedServiceImplementation {
  const unary = table.unary ?? {};
  const stream = table.stream ?? {};
  // A handler for a method the proto does not have is a typo: fail at start, not never.
  for (const name of [...Object.keys(unary), ...Object.keys(stream)]) {
    const m = def[name];
    if (!m) throw new Error(`${serviceName} has no method ${name}`);
    if ((name in stream) !== m.responseStream) throw new Error(`${serviceName}/${name}: handler kind does not match the proto (streaming: ${m.responseStream})`);
  }
  const impl: UntypedServiceImplementation = {};
  for (const [name, m] of Object.entries(def)) {
    const rpc = `${serviceName}/${name}`;
    if (m.requestStream) throw new Error(`${rpc}: client streaming is not used by CRI`);
    if (m.responseStream) {
      impl[name] = wrapServerStream(gate, rpc, stream[name] ?? (() => Promise.reject(unimplemented(rpc))));
    } else {
      impl[name] = wrapUnary(gate, rpc, unary[name] ?? (() => Promise.reject(unimplemented(rpc))));
    }
  }
  return impl;
}
