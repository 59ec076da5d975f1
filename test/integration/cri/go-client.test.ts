// The CRI socket through a real grpc-go client that dials as crictl and
// kubelet up to 1.30 do: the bare socket path as target, no "unix://", so
// every request carries the path as its :authority (a value Node's HTTP/2
// server would reset the stream for). The client (test/go-client) is built
// from source in `before`, offline, against Debian's grpc-go; the daemon and
// a registry on 127.0.0.1 with the busybox test image are real.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildGoClient, GoCallError, type GoCall, type GoClient } from '../../helpers/go-client.js';
import { buildBusyboxImage, pushImage, startRegistry, type BuiltImage, type Registry } from '../../helpers/image-registry.js';
import { startDaemon, type RunningDaemon } from '../../helpers/cri-client.js';

const PULL_TIMEOUT_MS = 120_000;

let go: GoClient;
let reg: Registry;
let image: BuiltImage;
let ref: string;
let d: RunningDaemon;
/** Undo steps of `before`, run in reverse by `after` even when `before` failed half-way. */
const cleanups: (() => Promise<unknown>)[] = [];

before(async () => {
  go = await buildGoClient();
  cleanups.push(() => go.cleanup());
  process.stderr.write(`go-client built in ${go.buildMs} ms\n`);
  const dir = await mkdtemp(join(tmpdir(), 'frakti-cri-go-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  reg = await startRegistry();
  cleanups.push(() => reg.stop());
  image = await buildBusyboxImage(dir);
  ref = `${reg.host}/busybox:latest`;
  await pushImage(image.layout, ref);
  d = await startDaemon();
  cleanups.push(() => d.cleanup());
});

after(async () => {
  for (const fn of cleanups.reverse()) await fn().catch((err: unknown) => process.stderr.write(`cleanup: ${String(err)}\n`));
});

const version: GoCall = { service: 'runtime', method: 'Version', request: { version: 'v1' } };

test('Version and ListPodSandbox answer a client that sends the socket path as :authority', async () => {
  // One connection, several calls: the later ones reuse the HPACK entries the first one indexed.
  const [v, pods, again] = await go.call(d.socket, [version, { service: 'runtime', method: 'ListPodSandbox' }, version]);
  assert.equal(v.runtime_name, 'frakti');
  assert.equal(v.runtime_api_version, 'v1');
  assert.equal(v.version, '0.1.0');
  assert.deepEqual(pods.items, []);
  assert.deepEqual(again, v);
});

test('PullImage from the registry, then ImageStatus and ListImages show the image', async () => {
  const [pulled] = await go.call(d.socket, [{ service: 'image', method: 'PullImage', request: { image: { image: ref } } }], { timeoutMs: PULL_TIMEOUT_MS });
  assert.match(pulled.image_ref, /^sha256:[0-9a-f]{64}$/);
  assert.equal(pulled.image_ref, image.configDigest);

  const [st, list] = await go.call(d.socket, [
    { service: 'image', method: 'ImageStatus', request: { image: { image: ref } } },
    { service: 'image', method: 'ListImages' },
  ]);
  assert.equal(st.image?.id, image.configDigest);
  assert.deepEqual(st.image.repo_tags, [ref]);
  assert.ok(Number(st.image.size) > 500_000, `size ${st.image.size} counts the busybox layer`);
  assert.deepEqual(
    list.images.map((i: { id: string; repo_tags: string[] }) => [i.id, i.repo_tags]),
    [[image.configDigest, [ref]]],
  );
});

test('an error status reaches the client with its code and message', async () => {
  const err = await go.call(d.socket, [version, { service: 'image', method: 'PullImage', request: { image: { image: '' } } }]).then(
    () => assert.fail('PullImage of an empty reference succeeded'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof GoCallError, String(err));
  assert.equal(err.code, 'InvalidArgument', err.stderr);
  assert.match(err.stderr, /ImageSpec\.image is required/);
});

test('a client that sends :authority localhost is served as well', async () => {
  const [v, st] = await go.call(d.socket, [version, { service: 'image', method: 'ImageStatus', request: { image: { image: ref } } }], { authority: 'localhost' });
  assert.equal(v.runtime_name, 'frakti');
  assert.equal(st.image?.id, image.configDigest);
});

test('several such clients at once, each on its own connection', async () => {
  const runs = await Promise.all(
    Array.from({ length: 4 }, () => go.call(d.socket, [version, { service: 'runtime', method: 'ListPodSandbox' }, { service: 'image', method: 'ListImages' }])),
  );
  for (const [v, pods, list] of runs) {
    assert.equal(v.runtime_name, 'frakti');
    assert.deepEqual(pods.items, []);
    assert.equal(list.images.length, 1);
  }
});

test('the daemon saw the socket path as :authority and logged no PROTOCOL_ERROR and no INTERNAL', () => {
  const log = d.stderr();
  // Proof that the client really sent the path (else the tests above prove nothing).
  assert.ok(log.includes(`"authority":${JSON.stringify(d.socket)}`), `the daemon's log never names ${d.socket} as an authority`);
  assert.doesNotMatch(log, /PROTOCOL_ERROR/);
  assert.doesNotMatch(log, /INTERNAL/);
});
