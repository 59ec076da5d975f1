// A real grpc-go CRI client for tests (source in test/go-client/): it dials
// the socket path without a scheme, as crictl and kubelet up to 1.30 do, so
// the path goes out as :authority. It is built from source by the test that
// uses it (never committed as a binary), offline, against Debian's grpc-go
// (golang-google-grpc-dev) in GOPATH mode:
//   const go = await buildGoClient();            // in `before`
//   const [v] = await go.call(socket, [{ service: 'runtime', method: 'Version' }]);
//   await go.cleanup();                          // in `after`
// Requests are encoded and replies decoded here from src/cri/api.proto, with
// the same options as the server, so the Go side needs no generated code.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import type * as grpc from '@grpc/grpc-js';
import { loadCriServices } from '../../src/cri/proto.js';

/** Cold (empty build cache) about 15 s on 2 cores; a warm cache makes it about 1 s. */
const BUILD_TIMEOUT_MS = 300_000;
/** Bound on one run of the client (the dial and every call each have their own bound inside). */
const RUN_TIMEOUT_MS = 180_000;
const DEFAULT_CALL_TIMEOUT_MS = 60_000;
const GOPATH = '/usr/share/gocode';

function findSource(): string {
  // From dist/test/helpers/ the source is three levels up; from test/helpers/ one.
  const beside = fileURLToPath(new URL('../go-client/', import.meta.url));
  if (existsSync(join(beside, 'main.go'))) return beside;
  return fileURLToPath(new URL('../../../test/go-client/', import.meta.url));
}

export const GO_CLIENT_SRC = findSource();

/**
 * Go's build cache lives beside the guest kernel's in frakti's cache
 * directory, so only the first build on a machine compiles grpc-go. Go
 * bounds it itself: a build drops entries unused for five days (about 40 MB
 * for this client).
 */
function goCacheDir(): string {
  const root = process.env.FRAKTI_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'frakti');
  return join(root, 'go-build');
}

/** The environment of an offline GOPATH-mode build against Debian's gocode tree. */
function goEnv(): Record<string, string> {
  return {
    GO111MODULE: 'off',
    GOPATH,
    GOPROXY: 'off',
    GOFLAGS: '',
    GOENV: 'off',
    CGO_ENABLED: '0',
    GOCACHE: goCacheDir(),
  };
}

export interface GoCall {
  service: 'runtime' | 'image';
  /** The proto's method name, e.g. 'Version'. */
  method: string;
  /** The request as the server's handlers see it (proto field names). Default {}. */
  request?: Record<string, unknown>;
}

export interface GoCallOptions {
  /** Sends this :authority (grpc.WithAuthority) instead of the socket path. */
  authority?: string;
  /** Bound on the dial and on each call, in ms. Default 60000. */
  timeoutMs?: number;
}

/** A call the server (or the client's transport) failed, with grpc-go's code name. */
export class GoCallError extends Error {
  override readonly name = 'GoCallError';
  constructor(
    readonly code: string,
    readonly stderr: string,
    readonly exitCode: number | undefined,
  ) {
    super(`go-client failed (exit ${exitCode}, code ${code}): ${stderr.trim()}`);
  }
}

export interface GoClient {
  bin: string;
  /** How long the build took, in ms. */
  buildMs: number;
  /**
   * Makes `calls` in order on one connection to the socket at `socketPath`
   * and resolves with the decoded replies; rejects with GoCallError at the
   * first failure.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  call(socketPath: string, calls: GoCall[], opts?: GoCallOptions): Promise<any[]>;
  /** Removes the binary and its temp directory. Safe to call twice. */
  cleanup(): Promise<void>;
}

function methodDef(c: GoCall): grpc.MethodDefinition<unknown, unknown> {
  const { RuntimeService, ImageService } = loadCriServices();
  const svc = (c.service === 'runtime' ? RuntimeService : ImageService).service;
  const def = svc[c.method];
  if (!def) throw new Error(`no method ${c.method} in the ${c.service} service of api.proto`);
  if (def.requestStream || def.responseStream) throw new Error(`${c.method} is streaming; go-client makes unary calls only`);
  return def;
}

function frame(b: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(b.length);
  return Buffer.concat([head, b]);
}

function unframe(b: Buffer, count: number): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  for (let i = 0; i < count; i++) {
    if (off + 4 > b.length) throw new Error(`go-client wrote ${out.length} replies, expected ${count}`);
    const n = b.readUInt32BE(off);
    if (off + 4 + n > b.length) throw new Error(`go-client reply ${i + 1} is cut short`);
    out.push(b.subarray(off + 4, off + 4 + n));
    off += 4 + n;
  }
  if (off !== b.length) throw new Error(`go-client wrote ${b.length - off} bytes after its ${count} replies`);
  return out;
}

/** Builds test/go-client into a new temp dir. Fails with the compiler's output. */
export async function buildGoClient(): Promise<GoClient> {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-go-client-'));
  const bin = join(dir, 'go-client');
  const start = Date.now();
  try {
    const res = await execa('go', ['build', '-o', bin, '.'], {
      cwd: GO_CLIENT_SRC,
      env: goEnv(),
      reject: false,
      timeout: BUILD_TIMEOUT_MS,
      stdin: 'ignore',
    });
    if (res.failed) {
      const missing = (res as { code?: string }).code === 'ENOENT' ? ' (go not found: scripts/install-deps.sh installs golang-go and golang-google-grpc-dev)' : '';
      throw new Error(`building ${GO_CLIENT_SRC} failed${missing}: ${res.shortMessage ?? ''}\n${res.stderr}`);
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const buildMs = Date.now() - start;
  return {
    bin,
    buildMs,
    async call(socketPath, calls, opts = {}) {
      const defs = calls.map(methodDef);
      const args = ['-sock', socketPath, '-timeout', `${opts.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS}ms`];
      if (opts.authority !== undefined) args.push('-authority', opts.authority);
      for (const d of defs) args.push('-method', d.path);
      const input = Buffer.concat(calls.map((c, i) => frame(defs[i]!.requestSerialize(c.request ?? {}))));
      const res = await execa(bin, args, { input, encoding: 'buffer', reject: false, timeout: RUN_TIMEOUT_MS });
      const stderr = Buffer.from(res.stderr ?? new Uint8Array()).toString();
      if (res.exitCode !== 0) {
        throw new GoCallError(/code=(\w+)/.exec(stderr)?.[1] ?? 'none', stderr || (res.shortMessage ?? ''), res.exitCode);
      }
      const replies = unframe(Buffer.from(res.stdout ?? new Uint8Array()), calls.length);
      return replies.map((r, i) => defs[i]!.responseDeserialize(r));
    },
    async cleanup() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}
