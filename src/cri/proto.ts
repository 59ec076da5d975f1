// Loads api.proto at run time, on first use (src/cri/api.proto in a checkout,
// extracted from the single executable; see lib/shipped-files.ts).
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { shippedFile } from '../lib/shipped-files.js';

export function criProtoPath(): string {
  return shippedFile('api.proto');
}

/**
 * How protobuf values look in JavaScript, on both sides of our server and
 * of the test client:
 * - keepCase: field names as in the proto (repo_tags), the same names that
 *   crictl's JSON output and the API docs use.
 * - longs: String. CRI timestamps are int64 nanoseconds (~1.7e18), far past
 *   Number.MAX_SAFE_INTEGER (9e15): a Number would silently round them.
 *   On the way out protobufjs accepts strings, numbers or bigints' strings.
 * - enums: String, so logs and code read 'SANDBOX_READY', not 0. Incoming
 *   requests carry names; we answer with names (numbers would also encode).
 * - defaults: true, so an unset scalar reads as 0 / '' / false like in Go
 *   clients, and repeated fields are [] rather than undefined.
 * - oneofs: true (the API has none today; harmless and future-proof).
 */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

export interface CriServices {
  RuntimeService: grpc.ServiceClientConstructor;
  ImageService: grpc.ServiceClientConstructor;
}

let cached: CriServices | undefined;

/** The two CRI services as grpc-js constructors (service definitions inside). */
export function loadCriServices(): CriServices {
  if (cached) return cached;
  const def = protoLoader.loadSync(criProtoPath(), PROTO_LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(def) as unknown as { runtime: { v1: CriServices } };
  cached = { RuntimeService: pkg.runtime.v1.RuntimeService, ImageService: pkg.runtime.v1.ImageService };
  return cached;
}
