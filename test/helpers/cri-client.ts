// A CRI client generated at run time from our own src/cri/api.proto, and a
// helper that runs the real daemon (`bin/frakti daemon`) as a child for
// integration and end-to-end tests. Both clean up after themselves.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { execa, type ResultPromise } from 'execa';
import * as grpc from '@grpc/grpc-js';
import { loadCriServices } from '../../src/cri/proto.js';
import { FRAKTI_BIN } from './cli-run.js';
import { removeNatLeftovers } from './cni-leftovers.js';

/** Default bound on one CRI call from a test. */
export const CALL_TIMEOUT_MS = 60_000;
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

/* eslint-disable @typescript-eslint/no-explicit-any */
export type CriCall = (req?: Record<string, unknown>, opts?: { timeoutMs?: number }) => Promise<any>;

/** One promise-returning function per unary RPC, keyed by the proto's method name. */
export interface CriClient {
  runtime: Record<string, CriCall>;
  image: Record<string, CriCall>;
  /** Server-streaming RPCs: resolves with every message received. */
  runtimeStream: Record<string, CriCall>;
  imageStream: Record<string, CriCall>;
  /** The generated grpc-js clients, for calls a test reads as they come (GetContainerEvents). */
  raw: { runtime: grpc.Client; image: grpc.Client };
  close(): void;
}

function promisifyService(client: grpc.Client, def: grpc.ServiceDefinition): { unary: Record<string, CriCall>; stream: Record<string, CriCall> } {
  const unary: Record<string, CriCall> = {};
  const stream: Record<string, CriCall> = {};
  for (const [name, m] of Object.entries(def)) {
    const fn = (client as any)[name].bind(client);
    const deadline = (ms?: number) => ({ deadline: Date.now() + (ms ?? CALL_TIMEOUT_MS) });
    if (m.responseStream) {
      stream[name] = (req = {}, opts = {}) =>
        new Promise((resolve, reject) => {
          const out: unknown[] = [];
          const call = fn(req, deadline(opts.timeoutMs));
          call.on('data', (d: unknown) => out.push(d));
          call.on('error', reject);
          call.on('end', () => resolve(out));
        });
    } else {
      const p = promisify(fn as (req: unknown, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: unknown, r: unknown) => void) => void);
      unary[name] = (req = {}, opts = {}) => p(req, new grpc.Metadata(), deadline(opts.timeoutMs));
    }
  }
  return { unary, stream };
}

/**
 * A client of both CRI services on the unix socket at `socketPath`.
 * `channelOptions` adds grpc-js channel options (e.g. `grpc.default_authority`).
 */
export function criClient(socketPath: string, channelOptions: grpc.ChannelOptions = {}): CriClient {
  const { RuntimeService, ImageService } = loadCriServices();
  const creds = grpc.credentials.createInsecure();
  const target = `unix://${socketPath}`;
  const options = { 'grpc.max_receive_message_length': 16 * 1024 * 1024, ...channelOptions };
  const rt = new RuntimeService(target, creds, options);
  const im = new ImageService(target, creds, options);
  const r = promisifyService(rt, RuntimeService.service);
  const i = promisifyService(im, ImageService.service);
  return {
    runtime: r.unary,
    image: i.unary,
    runtimeStream: r.stream,
    imageStream: i.stream,
    raw: { runtime: rt, image: im },
    close() {
      rt.close();
      im.close();
    },
  };
}

export interface RunningDaemon {
  dir: string;
  socket: string;
  root: string;
  state: string;
  child: ResultPromise;
  client: CriClient;
  /** Everything the daemon wrote to stderr so far (its logs). */
  stderr(): string;
  /** SIGTERM, wait for exit (bounded), then SIGKILL; returns the exit code. */
  stop(): Promise<number | undefined>;
  /** Sends a signal the test means to send (the exit is then not reported as unexpected). */
  kill(sig: NodeJS.Signals): void;
  /** stop() and remove the temp directory. Safe to call twice. */
  cleanup(): Promise<void>;
}

export interface StartDaemonOptions {
  /** Extra flags after --listen/--root/--state. */
  args?: string[];
  /** Use this directory instead of a new temp dir (it is not removed). */
  dir?: string;
  env?: Record<string, string>;
  /** Wait until Version answers (default true). */
  waitReady?: boolean;
  /**
   * Give the daemon a CNI config of its own: a bridge and subnet unique to
   * this daemon, removed by cleanup(), so tests never touch the node's own
   * networks (nor frakti0). Default true; false leaves its conf dir empty.
   */
  testNetwork?: boolean;
}

/** Daemons of this process still running on each test bridge: a cleanup with none left takes the network away. */
const daemonsOnBridge = new Map<string, Set<object>>();

/** The network name writeTestNetwork gives the conflist of `bridge`. */
function testNetworkName(bridge: string): string {
  return `frakti-test-${bridge.slice('frtd'.length)}`;
}

/** A conflist with a bridge of its own; returns the bridge name for cleanup. */
export async function writeTestNetwork(confDir: string, dataDir: string): Promise<string> {
  // A daemon restarted on the same directory keeps the network its pods are on.
  const existing = await readFile(join(confDir, '10-test.conflist'), 'utf8').catch(() => undefined);
  if (existing) return (JSON.parse(existing) as { plugins: { bridge: string }[] }).plugins[0]!.bridge;
  const tag = randomBytes(3).toString('hex');
  const bridge = `frtd${tag}`;
  const subnet = `10.249.${parseInt(tag, 16) % 250}.0/24`;
  await mkdir(confDir, { recursive: true });
  await writeFile(join(confDir, '10-test.conflist'), JSON.stringify({
    cniVersion: '1.0.0',
    name: testNetworkName(bridge),
    plugins: [
      { type: 'bridge', bridge, isGateway: true, ipMasq: true, hairpinMode: true, ipam: { type: 'host-local', ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }], dataDir } },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  }));
  return bridge;
}

/** Waits until `fn` returns true, polling, at most timeoutMs. */
export async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs: number, intervalMs = 50): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await fn().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Starts `bin/frakti daemon` on a socket in a fresh temp dir and waits until
 * it answers Version. Register `d.cleanup` with t.after right away.
 */
export async function startDaemon(opts: StartDaemonOptions = {}): Promise<RunningDaemon> {
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'frakti-cri-')));
  const socket = join(dir, 'frakti.sock');
  const root = join(dir, 'root');
  const state = join(dir, 'state');
  const bridge = (opts.testNetwork ?? true) ? await writeTestNetwork(join(dir, 'cni'), join(dir, 'ipam')) : undefined;
  const onBridge = bridge ? daemonsOnBridge.get(bridge) ?? new Set<object>() : undefined;
  if (bridge) daemonsOnBridge.set(bridge, onBridge!);
  const self = {};
  onBridge?.add(self);
  let err = '';
  // The host's /etc/cni/net.d is not the tests' business: the daemon gets a
  // conf dir of its own, unless a test passes one.
  // Nor is a containerd the node may run: no OS runtime unless a test names one.
  const osRuntime = opts.args?.includes('--os-runtime-endpoint') ? [] : ['--os-runtime-endpoint', ''];
  // Nor a pool of VMs booted ahead (tests of the pool ask for one): each would boot a VM nobody uses.
  const pool = opts.args?.includes('--vm-pool') ? [] : ['--vm-pool', '0'];
  const child = execa(FRAKTI_BIN, ['daemon', '--listen', socket, '--root', root, '--state', state, '--log-level', 'debug', '--cni-conf-dir', join(dir, 'cni'), ...osRuntime, ...pool, ...(opts.args ?? [])], {
    reject: false,
    env: opts.env,
    stdin: 'ignore',
    buffer: false,
  });
  child.stderr?.on('data', (b: Buffer) => {
    // Bounded: a test never needs more than the last MiB of logs.
    err = (err + b.toString()).slice(-1024 * 1024);
  });
  child.stdout?.resume();
  const client = criClient(socket);
  let exited = false;
  let exitCode: number | undefined;
  let stopping = false;
  const exitedP = child.then((r) => {
    exited = true;
    exitCode = r.exitCode;
    onBridge?.delete(self);
    // A daemon that dies under a test says why, for whoever reads the failure.
    // A fail point (test/faults) kills it on purpose.
    if (!stopping && !opts.env?.FRAKTI_FAIL_POINT) process.stderr.write(`frakti daemon exited unexpectedly (code ${r.exitCode}, signal ${r.signal ?? 'none'}):\n${err.slice(-4000)}\n`);
    return r.exitCode;
  });
  let cleaned = false;
  const d: RunningDaemon = {
    dir,
    socket,
    root,
    state,
    child,
    client,
    stderr: () => err,
    kill(sig: NodeJS.Signals) {
      stopping = true;
      child.kill(sig);
    },
    async stop() {
      stopping = true;
      client.close();
      if (!exited) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exitedP;
        clearTimeout(t);
      }
      return exitCode;
    },
    async cleanup() {
      if (cleaned) return;
      cleaned = true;
      await d.stop();
      // The network goes when no daemon runs on it (a test may restart one on the same folder).
      onBridge?.delete(self);
      let leaked: string[] = [];
      if (bridge && onBridge!.size === 0) {
        daemonsOnBridge.delete(bridge);
        await execa('ip', ['link', 'del', bridge], { reject: false });
        leaked = await removeNatLeftovers(testNetworkName(bridge));
      }
      if (ownDir) await rm(dir, { recursive: true, force: true });
      // A pod whose CNI DEL never ran: its NAT rules would outlive the test on this machine.
      if (leaked.length > 0) throw new Error(`the test left ${leaked.length} NAT rules of pods of ${testNetworkName(bridge!)} (removed now): their CNI DEL never ran:\n${leaked.join('\n')}`);
    },
  };
  if (opts.waitReady ?? true) {
    try {
      const end = Date.now() + READY_TIMEOUT_MS;
      for (;;) {
        if (exited) throw new Error(`daemon exited with ${exitCode} before it was ready:\n${err}`);
        const up = await client.runtime.Version!({}, { timeoutMs: 1000 }).then(
          () => true,
          () => false,
        );
        if (up) break;
        if (Date.now() > end) throw new Error(`daemon did not answer Version within ${READY_TIMEOUT_MS} ms:\n${err}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    } catch (e) {
      await d.cleanup();
      throw e;
    }
  }
  return d;
}

/** Runs `fn` and returns the gRPC error it throws (fails if it does not throw). */
export async function grpcError(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error('expected the call to fail, it succeeded');
}
