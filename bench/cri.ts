// make bench-cri: what frakti's CRI server frame costs per call (its own
// accept loop, the :authority filter of h2-authority.ts, the call wrapper)
// against a bare grpc-js server with the same services and handlers, in one
// run. Clients: one that sends the socket path as :authority (crictl and
// kubelet <= 1.30; every request header block is rewritten) and one that
// sends `localhost` (passed through as it is); the bare server only gets the
// second, as it refuses the first. Measured: round trip of Version and of
// ListPodSandbox answering 100 pods, sequential, in rounds that alternate the
// three cases; and Version calls/s with 16 calls in flight.
//
// The servers run in a child process (this file with --serve), the clients in
// the parent: as with kubelet and the daemon, the client's decoding does not
// share the server's event loop.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { CriServer } from '../src/cri/server.js';
import { loadCriServices } from '../src/cri/proto.js';
import { criClient, type CriClient } from '../test/helpers/cri-client.js';
import { median, percentile, report, round } from './runner.js';

/** Timed calls per (case, method); the whole run stays under a minute at the default. */
const CALLS = Number(process.env.BENCH_CALLS ?? 1000);
const ROUNDS = 10;
const WARMUP_CALLS = 100;
const PODS_LISTED = 100;
const CONCURRENT_CALLS = 16;
/** How long each case calls at a time in the throughput part (a window, not a count: the machine's speed varies). */
const THROUGHPUT_WINDOW_MS = 400;
const THROUGHPUT_ROUNDS = 10;
const REFUSAL_TIMEOUT_MS = 5_000;
/** Longer than CriServer's own graceful-stop bound (10 s). */
const STOP_TIMEOUT_MS = 15_000;

interface Sockets {
  frakti: string;
  bare: string;
}

// --- server side (the child) ---

function podSandboxes(n: number): Record<string, unknown>[] {
  const nowNs = BigInt(Date.now()) * 1_000_000n;
  return Array.from({ length: n }, (_, i) => {
    const app = `checkout-${i % 10}`;
    const name = `${app}-7d9f8b6c5-${i.toString(36).padStart(5, 'q')}`;
    const namespace = `shop-${i % 4}`;
    const uid = randomUUID();
    return {
      id: randomBytes(32).toString('hex'),
      metadata: { name, uid, namespace, attempt: i % 3 },
      state: i % 10 === 9 ? 'SANDBOX_NOTREADY' : 'SANDBOX_READY',
      created_at: String(nowNs - BigInt(i) * 60_000_000_000n),
      labels: {
        app,
        'pod-template-hash': '7d9f8b6c5',
        'app.kubernetes.io/name': app,
        'app.kubernetes.io/part-of': 'shop',
        'io.kubernetes.pod.name': name,
        'io.kubernetes.pod.namespace': namespace,
        'io.kubernetes.pod.uid': uid,
      },
      annotations: {
        'kubernetes.io/config.seen': '2024-05-01T10:00:00.123456789Z',
        'kubernetes.io/config.source': 'api',
        'prometheus.io/scrape': 'true',
        'prometheus.io/port': '9090',
      },
      runtime_handler: '',
    };
  });
}

function handlers(): Record<string, () => Promise<unknown>> {
  const items = podSandboxes(PODS_LISTED);
  return {
    Version: async () => ({ version: '0.1.0', runtime_name: 'frakti', runtime_version: '0.1.0', runtime_api_version: 'v1' }),
    ListPodSandbox: async () => ({ items }),
  };
}

/** The floor: grpc-js as it comes, binding the socket itself, the handlers called directly. */
async function bareServer(path: string, table: Record<string, () => Promise<unknown>>): Promise<grpc.Server> {
  const { RuntimeService, ImageService } = loadCriServices();
  const server = new grpc.Server();
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [name, fn] of Object.entries(table)) {
    impl[name] = (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) =>
      void fn().then((res) => cb(null, res), (err: unknown) => cb({ code: grpc.status.INTERNAL, details: String(err) }));
  }
  server.addService(RuntimeService.service, impl);
  server.addService(ImageService.service, {});
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${path}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  return server;
}

/** Says 'ready' once both serve; stops them and exits on any message, or when the parent is gone. */
async function serve(sockets: Sockets): Promise<void> {
  const table = handlers();
  const frakti = await CriServer.listen({ socketPath: sockets.frakti, runtime: { unary: table }, image: { unary: {} } });
  frakti.gate.setReady();
  const bare = await bareServer(sockets.bare, table);
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= Promise.all([frakti.stop(), new Promise<void>((resolve) => bare.tryShutdown(() => resolve()))]).then(() => process.exit(0)));
  process.once('message', stop);
  process.once('disconnect', stop);
  process.send!('ready');
}

// --- client side (the parent) ---

type Method = 'version' | 'list';
const CASES = ['frakti_path', 'frakti_localhost', 'bare'] as const;
type Case = (typeof CASES)[number];

function call(c: CriClient, m: Method): Promise<unknown> {
  return m === 'version' ? c.runtime.Version!({ version: 'v1' }) : c.runtime.ListPodSandbox!({});
}

/** A client on its own connection (not one shared through grpc-js's global subchannel pool). */
function client(socket: string, authority?: string): CriClient {
  return criClient(socket, { 'grpc.use_local_subchannel_pool': 1, ...(authority === undefined ? {} : { 'grpc.default_authority': authority }) });
}

/** Resolves when the server child says 'ready'; fails if it dies first. */
function ready(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: unknown) => {
      child.off('error', onError);
      child.off('exit', onExit);
      if (m === 'ready') resolve();
      else reject(new Error(`server child said ${String(m)}, expected ready`));
    };
    const onError = (err: Error) => {
      child.off('message', onMessage);
      child.off('exit', onExit);
      reject(err);
    };
    const onExit = (code: number | null, signal: string | null) => onError(new Error(`server child exited (${code ?? signal}) before it was ready`));
    child.once('message', onMessage);
    child.once('error', onError);
    child.once('exit', onExit);
  });
}

/** Sequential calls; each one's round trip in microseconds. */
async function sequential(c: CriClient, m: Method, n: number): Promise<number[]> {
  const us: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await call(c, m);
    us.push((performance.now() - t0) * 1000);
  }
  return us;
}

/** Version calls/s with `CONCURRENT_CALLS` in flight, those started within the window. */
async function throughput(c: CriClient): Promise<number> {
  const t0 = performance.now();
  const end = t0 + THROUGHPUT_WINDOW_MS;
  let done = 0;
  const lane = async () => {
    while (performance.now() < end) {
      await call(c, 'version');
      done++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENT_CALLS }, lane));
  return done / ((performance.now() - t0) / 1000);
}

/** True when the bare server answers a client that sends the socket path as :authority. */
async function bareAcceptsPathAuthority(socket: string): Promise<{ accepted: boolean; error: string }> {
  const c = client(socket, socket);
  try {
    await c.runtime.Version!({ version: 'v1' }, { timeoutMs: REFUSAL_TIMEOUT_MS });
    return { accepted: true, error: '' };
  } catch (err) {
    return { accepted: false, error: String((err as Error).message ?? err) };
  } finally {
    c.close();
  }
}

/** The order of the cases in round r: each goes first, second and last equally often. */
function rotated(r: number): Case[] {
  return CASES.map((_, i) => CASES[(i + r) % CASES.length]!);
}

async function main(): Promise<void> {
  if (!(CALLS >= ROUNDS && Number.isInteger(CALLS))) throw new Error(`BENCH_CALLS must be an integer >= ${ROUNDS}, got ${process.env.BENCH_CALLS}`);
  const dir = await mkdtemp(join(tmpdir(), 'frakti-bench-cri-'));
  const sockets: Sockets = { frakti: join(dir, 'frakti.sock'), bare: join(dir, 'bare.sock') };
  const child = fork(fileURLToPath(import.meta.url), ['--serve', sockets.frakti, sockets.bare], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const clients: Partial<Record<Case, CriClient>> = {};
  try {
    await ready(child);
    clients.frakti_path = client(sockets.frakti, sockets.frakti);
    clients.frakti_localhost = client(sockets.frakti);
    clients.bare = client(sockets.bare);
    const cs = clients as Record<Case, CriClient>;

    for (const k of CASES) {
      const v = await call(cs[k], 'version');
      const l = (await call(cs[k], 'list')) as { items: unknown[] };
      if ((v as { runtime_name: string }).runtime_name !== 'frakti' || l.items.length !== PODS_LISTED) throw new Error(`${k}: unexpected answer`);
      for (const m of ['version', 'list'] as const) await sequential(cs[k], m, WARMUP_CALLS);
    }

    const us = Object.fromEntries(CASES.map((k) => [k, { version: [] as number[], list: [] as number[] }])) as Record<Case, Record<Method, number[]>>;
    const perRound = Math.floor(CALLS / ROUNDS);
    for (let r = 0; r < ROUNDS; r++) {
      for (const k of rotated(r)) for (const m of ['version', 'list'] as const) us[k][m].push(...(await sequential(cs[k], m, perRound)));
    }

    const rates = Object.fromEntries(CASES.map((k) => [k, [] as number[]])) as Record<Case, number[]>;
    for (let r = 0; r < THROUGHPUT_ROUNDS; r++) for (const k of rotated(r)) rates[k].push(await throughput(cs[k]));

    const refusal = await bareAcceptsPathAuthority(sockets.bare);
    const { RuntimeService } = loadCriServices();
    const listBytes = (RuntimeService.service.ListPodSandbox!.responseSerialize(await call(cs.bare, 'list')) as Buffer).length;

    const figures: Record<string, unknown> = { calls: perRound * ROUNDS, rounds: ROUNDS, pods_listed: PODS_LISTED, list_response_bytes: listBytes };
    for (const k of CASES) {
      for (const m of ['version', 'list'] as const) {
        figures[`${k}_${m}_median_us`] = round(median(us[k][m]), 0);
        figures[`${k}_${m}_p99_us`] = round(percentile(us[k][m], 99), 0);
      }
    }
    for (const kind of ['path', 'localhost'] as const) {
      for (const m of ['version', 'list'] as const) figures[`${kind}_${m}_ratio`] = round(median(us[`frakti_${kind}`][m]) / median(us.bare[m]), 3);
    }
    for (const k of CASES) figures[`${k}_version_x${CONCURRENT_CALLS}_calls_s`] = round(median(rates[k]), 0);
    for (const kind of ['path', 'localhost'] as const) {
      figures[`${kind}_throughput_ratio`] = round(median(rates[`frakti_${kind}`]) / median(rates.bare), 3);
    }
    figures.bare_accepts_path_authority = refusal.accepted;
    figures.bare_path_authority_error = refusal.error;
    figures.ratio = figures.path_version_ratio;
    report('cri', figures);
  } finally {
    for (const c of Object.values(clients)) c.close();
    // The child stops both servers (the frakti one removes its socket) and exits; a stuck one is killed.
    if (child.exitCode === null && child.signalCode === null) {
      if (child.connected) child.send('stop');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--serve') await serve({ frakti: process.argv[3]!, bare: process.argv[4]! });
else await main();
