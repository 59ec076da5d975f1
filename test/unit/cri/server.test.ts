// The server frame over a real unix socket with small handler tables: the
// wrapper (readiness, status mapping, deadlines, logs without secrets),
// socket ownership and the bounded graceful stop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { execFileSync } from 'node:child_process';
import { credentials, status, type ClientReadableStream } from '@grpc/grpc-js';
import winston from 'winston';
import { CriServer, SOCKET_MODE } from '../../../src/cri/server.js';
import { SocketError } from '../../../src/cri/errors.js';
import { ImageNotFoundError } from '../../../src/image/index.js';
import { setLogger, setLogLevel } from '../../../src/lib/log.js';
import type { HandlerTable } from '../../../src/cri/service-table.js';
import type { CallContext } from '../../../src/cri/rpc-wrapper.js';
import { streamedList } from '../../../src/cri/list-streaming.js';
import { loadCriServices } from '../../../src/cri/proto.js';
import { criClient, grpcError } from '../../helpers/cri-client.js';

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-cri-unit-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Captures every log line as parsed JSON while the test runs. */
function captureLogs(t: { after: (fn: () => void) => void }): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  setLogger(winston.createLogger({ level: 'debug', format: winston.format.json(), transports: [new winston.transports.Stream({ stream: sink })] }));
  setLogLevel('debug');
  t.after(() => setLogger(winston.createLogger({ level: 'warn', transports: [new winston.transports.Stream({ stream: process.stderr })] })));
  return lines;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tables(slowMs = 0): { runtime: HandlerTable; image: HandlerTable; aborted: string[] } {
  const aborted: string[] = [];
  return {
    aborted,
    runtime: {
      unary: {
        Version: async () => ({ version: '0.1.0', runtime_name: 'test', runtime_version: '1', runtime_api_version: 'v1' }),
        Status: async () => {
          throw new TypeError('boom');
        },
        StopContainer: async (_req: unknown, ctx: CallContext) => {
          // Waits for the client's deadline; records that the abort reached us.
          await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
          aborted.push(ctx.rpc);
          return {};
        },
        StartContainer: async (_req: unknown, ctx: CallContext) => {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, slowMs);
            ctx.signal.addEventListener('abort', () => {
              clearTimeout(timer);
              aborted.push(ctx.rpc);
              resolve();
            });
          });
          return {};
        },
      },
    },
    image: {
      unary: {
        ImageStatus: async () => {
          throw new ImageNotFoundError('busybox');
        },
        PullImage: async () => ({ image_ref: 'sha256:' + '0'.repeat(64) }),
      },
    },
  };
}

test('calls wait for readiness; errors map to statuses; deadlines abort the handler', async (t) => {
  const dir = await tempDir(t);
  const socket = join(dir, 'cri.sock');
  const h = tables();
  const server = await CriServer.listen({ socketPath: socket, runtime: h.runtime, image: h.image });
  t.after(() => server.stop());
  const c = criClient(socket);
  t.after(() => c.close());

  const early = await grpcError(c.runtime.Version!({}));
  assert.equal(early.code, status.UNAVAILABLE);
  assert.match(early.details, /still starting/);
  server.gate.setReady();

  assert.equal((await c.runtime.Version!({})).runtime_name, 'test');
  const nf = await grpcError(c.image.ImageStatus!({ image: { image: 'busybox' } }));
  assert.equal(nf.code, status.NOT_FOUND);
  assert.equal(nf.details, 'no such image: busybox');
  const internal = await grpcError(c.runtime.Status!({}));
  assert.equal(internal.code, status.INTERNAL);
  assert.equal(internal.details, 'internal error: boom');

  const unimpl = await grpcError(c.runtime.RunPodSandbox!({}));
  assert.equal(unimpl.code, status.UNIMPLEMENTED);
  assert.equal(unimpl.details, 'RuntimeService/RunPodSandbox is not implemented by frakti yet');
  const unimplStream = await grpcError(c.runtimeStream.GetContainerEvents!({}));
  assert.equal(unimplStream.code, status.UNIMPLEMENTED);
  assert.match(unimplStream.details, /RuntimeService\/GetContainerEvents/);

  const dl = await grpcError(c.runtime.StopContainer!({ container_id: 'x' }, { timeoutMs: 200 }));
  assert.equal(dl.code, status.DEADLINE_EXCEEDED);
  // The handler learns of it shortly after (the server sees the cancellation).
  for (let i = 0; i < 50 && h.aborted.length === 0; i++) await sleep(20);
  assert.deepEqual(h.aborted, ['RuntimeService/StopContainer']);
});

test('every call is logged on entry and exit with its duration, secrets scrubbed', async (t) => {
  const logs = captureLogs(t);
  const dir = await tempDir(t);
  const socket = join(dir, 'cri.sock');
  const h = tables();
  const server = await CriServer.listen({ socketPath: socket, runtime: h.runtime, image: h.image });
  t.after(() => server.stop());
  server.gate.setReady();
  const c = criClient(socket);
  t.after(() => c.close());
  await c.image.PullImage!({ image: { image: 'registry.local/app:v1' }, auth: { username: 'alice', password: 'hunter2', auth: 'c2VjcmV0', registry_token: 'tok3n' } });
  const mine = logs.filter((l) => l.rpc === 'ImageService/PullImage');
  assert.equal(mine.length, 2, JSON.stringify(logs));
  assert.equal(mine[0]!.message, 'rpc start');
  assert.equal((mine[0]!.request as { auth: { username: string } }).auth.username, 'alice');
  assert.equal(mine[1]!.message, 'rpc done');
  assert.equal(mine[1]!.status, 'OK');
  assert.equal(typeof mine[1]!.duration_ms, 'number');
  const all = JSON.stringify(logs);
  for (const secret of ['hunter2', 'c2VjcmV0', 'tok3n']) assert.ok(!all.includes(secret), `${secret} in logs`);
});

test('the socket is 0600; a stale socket is replaced; a live one or a plain file is refused', async (t) => {
  const dir = await tempDir(t);
  const socket = join(dir, 'sub', 'cri.sock');
  const h = tables();
  // A socket file nobody listens on, as a daemon killed with -9 leaves it.
  await import('node:fs/promises').then((fs) => fs.mkdir(join(dir, 'sub')));
  execFileSync('python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(socket)})`]);
  assert.ok((await stat(socket)).isSocket());

  const server = await CriServer.listen({ socketPath: socket, runtime: h.runtime, image: h.image });
  t.after(() => server.stop());
  server.gate.setReady();
  assert.equal((await stat(socket)).mode & 0o777, SOCKET_MODE);
  const c = criClient(socket);
  t.after(() => c.close());
  assert.equal((await c.runtime.Version!({})).runtime_api_version, 'v1');

  await assert.rejects(CriServer.listen({ socketPath: socket, runtime: h.runtime, image: h.image }), (e: unknown) => e instanceof SocketError && e.code === 'SOCKET_IN_USE' && e.message === `another daemon is already serving ${socket}`);
  // The refused second server did not disturb the first.
  assert.equal((await c.runtime.Version!({})).runtime_api_version, 'v1');

  const plain = join(dir, 'plain');
  await writeFile(plain, 'not a socket');
  await assert.rejects(CriServer.listen({ socketPath: plain, runtime: h.runtime, image: h.image }), /is not a socket; refusing to replace it/);
  assert.equal((await stat(plain)).isFile(), true);
});

test('stop lets an in-flight call finish, refuses new ones, removes the socket', async (t) => {
  const dir = await tempDir(t);
  const socket = join(dir, 'cri.sock');
  const h = tables(300);
  const server = await CriServer.listen({ socketPath: socket, runtime: h.runtime, image: h.image, shutdownTimeoutMs: 5000 });
  t.after(() => server.stop());
  server.gate.setReady();
  const c = criClient(socket);
  t.after(() => c.close());
  await c.runtime.Version!({});
  const slow = c.runtime.StartContainer!({ container_id: 'x' });
  await sleep(50);
  const stopped = server.stop();
  assert.deepEqual(await slow, {});
  await stopped;
  await assert.rejects(stat(socket), /ENOENT/);
});

test('stop cuts calls that outlive the bound', async (t) => {
  const dir = await tempDir(t);
  const socket = join(dir, 'cri.sock');
  const h = tables(10_000);
  const server = await CriServer.listen({ socketPath: socket, runtime: h.runtime, image: h.image, shutdownTimeoutMs: 200 });
  t.after(() => server.stop());
  server.gate.setReady();
  const c = criClient(socket);
  t.after(() => c.close());
  const slow = grpcError(c.runtime.StartContainer!({ container_id: 'x' }));
  await sleep(50);
  const t0 = Date.now();
  await server.stop();
  assert.ok(Date.now() - t0 < 2000, 'stop is bounded');
  // The client sees its call cut; the handler is told to stop.
  assert.ok([status.UNAVAILABLE, status.CANCELLED].includes((await slow).code));
  assert.deepEqual(h.aborted, ['RuntimeService/StartContainer']);
  await assert.rejects(stat(socket), /ENOENT/);
});

test('Stream* answers an item a message, past the unary size limit; none for an empty list; a cancelled call sends nothing', async (t) => {
  const dir = await tempDir(t);
  const socket = join(dir, 'cri.sock');
  // 1200 containers with a 20 KB annotation each: 24 MB, more than a unary answer may carry.
  let containers = Array.from({ length: 1200 }, (_, i) => ({ id: `c${i}`, annotations: { big: 'x'.repeat(20_000) } }));
  let listDelayMs = 0;
  let produced = 0;
  const runtime: HandlerTable = {
    unary: { ListContainers: async () => ({ containers }) },
    stream: {
      StreamContainers: streamedList(
        async () => {
          await sleep(listDelayMs);
          return { containers };
        },
        (r) => r.containers,
        (x) => {
          produced++;
          return { containers: [x] };
        },
      ),
      StreamPodSandboxes: streamedList(
        async () => {
          throw new ImageNotFoundError('busybox');
        },
        (r: { items: unknown[] }) => r.items,
        (x) => ({ pod_sandboxes: [x] }),
      ),
    },
  };
  const server = await CriServer.listen({ socketPath: socket, runtime, image: { unary: {} } });
  t.after(() => server.stop());
  server.gate.setReady();
  const c = criClient(socket);
  t.after(() => c.close());

  const tooBig = await grpcError(c.runtime.ListContainers!({}));
  assert.equal(tooBig.code, status.RESOURCE_EXHAUSTED, 'the unary answer is over the client limit');
  const msgs = await c.runtimeStream.StreamContainers!({});
  assert.equal(msgs.length, containers.length);
  assert.ok(msgs.every((m: { containers: unknown[] }) => m.containers.length === 1));
  assert.deepEqual(msgs.map((m: { containers: { id: string }[] }) => m.containers[0]!.id), containers.map((x) => x.id));

  // A failing list is the call's status; an empty one ends the stream with no message.
  assert.equal((await grpcError(c.runtimeStream.StreamPodSandboxes!({}))).code, status.NOT_FOUND);
  containers = [];
  assert.deepEqual(await c.runtimeStream.StreamContainers!({}), []);

  // Cancelled while the list is being made: nothing is sent.
  containers = [{ id: 'late', annotations: { big: '' } }];
  listDelayMs = 400;
  produced = 0;
  const { RuntimeService } = loadCriServices();
  const raw = new RuntimeService(`unix://${socket}`, credentials.createInsecure());
  t.after(() => raw.close());
  const call = (raw as unknown as { StreamContainers(req: object): ClientReadableStream<unknown> }).StreamContainers({});
  call.on('error', () => {});
  await sleep(100);
  call.cancel();
  await sleep(700);
  assert.equal(produced, 0, 'nothing produced for a cancelled call');
});
