// Pulls from a real registry (Debian's docker-registry on 127.0.0.1), images
// built from busybox-static and pushed with skopeo.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { ContentInvalidError, ImageInUseError, ImageNotFoundError, ImageStore, PlatformNotFoundError, RegistryUnreachableError, UnsafeLayerEntryError } from '../../../src/image/index.js';
import { startProxy } from '../../helpers/image-proxy.js';
import { buildBusyboxImage, buildMultiPlatformImage, freePort, pushImage, startRegistry, writeImage, writeLayoutIndex, type BuiltImage, type Registry } from '../../helpers/image-registry.js';

const run = promisify(execFile);
let reg: Registry;
let work: string;
let busybox: BuiltImage;
let stores = 0;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'frakti-image-it-'));
  reg = await startRegistry();
  busybox = await buildBusyboxImage(work);
  await pushImage(busybox.layout, `${reg.host}/test/busybox:latest`);
  await pushImage(busybox.layout, `${reg.host}/test/busybox:second`);
});

after(async () => {
  await reg?.stop();
  await rm(work, { recursive: true, force: true });
});

async function newStore(opts: Record<string, unknown> = {}): Promise<ImageStore> {
  return ImageStore.open({ root: join(work, `store-${++stores}`), retryBaseDelayMs: 10, ...opts });
}

async function snapshotNames(store: ImageStore): Promise<string[]> {
  return (await readdir(join(store.options.root, 'snapshots'))).sort();
}

test('pull by tag, then the layers mount as an overlayfs root that runs busybox', async (t) => {
  const store = await newStore();
  const img = await store.pull(`${reg.host}/test/busybox`);
  assert.equal(img.id, busybox.configDigest);
  assert.deepEqual(img.repoTags, [`${reg.host}/test/busybox:latest`]);
  assert.deepEqual(img.repoDigests, [`${reg.host}/test/busybox@${busybox.manifestDigest}`]);
  assert.deepEqual(img.diffIds, busybox.diffIds);
  assert.deepEqual(img.config.cmd, ['sh']);
  assert.equal(img.uid, undefined);
  assert.ok(img.size > 900_000, `size ${img.size}`);

  const layers = await store.rootfsLayers(img.id);
  assert.equal(layers.length, 2);
  const merged = join(work, 'merged');
  await mkdir(merged, { recursive: true });
  await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${[...layers].reverse().join(':')}`, merged]);
  t.after(() => run('umount', [merged]).catch(() => {}));
  const root = await readdir(merged);
  assert.ok(!root.includes('removed-file') && !root.includes('removed-dir'), `whiteouts hide lower files: ${root.join(' ')}`);
  assert.deepEqual(await readdir(join(merged, 'etc/old')), ['new'], 'opaque directory hides the lower layer');
  assert.equal((await lstat(join(merged, 'etc/hello'))).ino, (await lstat(join(merged, 'etc/hello-hardlink'))).ino);
  const { stdout } = await run('chroot', [merged, '/bin/sh', '-c', 'cat /etc/hello-symlink; stat -c %a /etc/setuid-file; id -u']);
  assert.equal(stdout, 'hello from layer 2\n4755\n0\n');
});

test('status finds an image by id, id prefix, tag and digest; list filters', async () => {
  const store = await newStore();
  const img = await store.pull(`${reg.host}/test/busybox@${busybox.manifestDigest}`);
  assert.deepEqual(img.repoTags, [], 'a pull by digest adds no tag');
  await store.pull(`${reg.host}/test/busybox:second`);
  const hex = img.id.slice(7);
  for (const ref of [img.id, hex, hex.slice(0, 12), `${reg.host}/test/busybox:second`, `${reg.host}/test/busybox@${busybox.manifestDigest}`]) {
    assert.equal((await store.status(ref))?.id, img.id, ref);
  }
  assert.equal(await store.status(`${reg.host}/test/busybox:latest`), undefined);
  assert.equal(await store.status('sha256:' + '0'.repeat(64)), undefined);
  assert.equal((await store.list()).length, 1);
  assert.equal((await store.list({ ref: `${reg.host}/test/busybox:second` })).length, 1);
  assert.deepEqual(await store.list({ ref: 'nothing-like-it' }), []);
  // A reopened store sees the same records: they were persisted.
  const again = await ImageStore.open({ root: store.options.root, pinnedImages: [`${reg.host}/test/busybox:second`] });
  assert.deepEqual(await again.status(img.id), await store.status(img.id));
  assert.equal((await again.pull(`${reg.host}/test/busybox:second`)).pinned, true, 'an image named in pinnedImages is pinned');
  assert.equal((await again.setPinned(img.id, false)).pinned, false);
});

test('a multi-platform index yields the linux/amd64 image, or the configured platform', async () => {
  const multi = await buildMultiPlatformImage(work);
  await pushImage(multi.layout, `${reg.host}/test/multi:latest`);
  const store = await newStore();
  const img = await store.pull(`${reg.host}/test/multi:latest`);
  assert.equal(img.id, multi.configDigest);
  assert.equal(img.architecture, 'amd64');
  assert.deepEqual(img.repoDigests, [`${reg.host}/test/multi@${multi.indexDigest}`], 'the repo digest is the index digest');
  const arm = await newStore({ platform: 'linux/arm64' });
  assert.equal((await arm.pull(`${reg.host}/test/multi:latest`)).id, multi.arm64ConfigDigest);
  const none = await newStore({ platform: 'linux/s390x' });
  await assert.rejects(none.pull(`${reg.host}/test/multi:latest`), (e: unknown) => e instanceof PlatformNotFoundError && /no image for platform linux\/s390x \(it has: linux\/arm64\/v8, linux\/amd64\)/.test(e.message));
});

test('concurrent pulls of one image share one download, through a mirror', async (t) => {
  const mirror = await startProxy(reg.host);
  t.after(() => mirror.stop());
  const store = await newStore({ mirrors: { [reg.host]: [mirror.url] } });
  const [a, b, c] = await Promise.all([store.pull(`${reg.host}/test/busybox:latest`), store.pull(`${reg.host}/test/busybox:latest`), store.pull(`${reg.host}/test/busybox:second`)]);
  assert.equal(a.id, b.id);
  assert.equal(a.id, c.id);
  const blobGets = mirror.requests.filter((r) => r.startsWith('GET') && r.includes('/blobs/'));
  // Each layer blob once, the config at most once per distinct reference.
  const layerGets = blobGets.filter((r) => !r.endsWith(busybox.configDigest));
  assert.equal(layerGets.length, 2, `layer downloads: ${layerGets.join(', ')}`);
  assert.equal(new Set(layerGets).size, 2);
});

test('a failing mirror falls back to the registry; transient errors are retried', async (t) => {
  const broken = await startProxy(reg.host, [{ match: /./, status: 500 }]);
  const flaky = await startProxy(reg.host, [{ match: /\/blobs\//, status: 503, times: 2 }]);
  t.after(() => Promise.all([broken.stop(), flaky.stop()]));
  const s1 = await newStore({ mirrors: { [reg.host]: [broken.url] }, maxRetries: 1 });
  assert.equal((await s1.pull(`${reg.host}/test/busybox`)).id, busybox.configDigest);
  assert.ok(broken.requests.length >= 1, 'the mirror was tried first');
  const s2 = await newStore({ mirrors: { [reg.host]: [flaky.url] }, maxRetries: 3 });
  assert.equal((await s2.pull(`${reg.host}/test/busybox`)).id, busybox.configDigest);
  assert.ok(flaky.requests.filter((r) => r.includes('/blobs/')).length >= 4, 'failed blob requests were repeated');
});

test('a corrupt blob is refused and leaves nothing visible', async (t) => {
  const corrupt = await startProxy(reg.host, [{ match: /\/blobs\//, corrupt: true }]);
  t.after(() => corrupt.stop());
  // The proxy is the registry here (no fallback to a good copy).
  const store = await newStore({ maxRetries: 0 });
  const host = corrupt.url.replace('http://', '');
  await assert.rejects(store.pull(`${host}/test/busybox:latest`), (e: unknown) => e instanceof ContentInvalidError && /digest/.test(e.message));
  assert.deepEqual(await store.list(), []);
  assert.deepEqual(await snapshotNames(store), []);
  assert.deepEqual((await readdir(join(store.options.root, 'ingest'))), []);
});

test('remove: unknown is fine, in-use is refused, then GC frees blobs and layers', async () => {
  const store = await newStore();
  await store.remove('never/pulled:1');
  await store.remove('sha256:' + 'f'.repeat(64));
  const img = await store.pull(`${reg.host}/test/busybox:latest`);
  await store.acquireImage(`${reg.host}/test/busybox:latest`, 'ctr-1');
  await assert.rejects(store.remove(img.id), ImageInUseError);
  assert.ok(await store.status(img.id));
  await store.acquireImage(img.id, 'ctr-gone');
  assert.equal(await store.retainHolders(['ctr-1']), 1, 'holds of vanished containers are dropped');
  await store.releaseImage(img.id, 'ctr-1');
  await store.releaseImage(img.id, 'ctr-1');
  const before = await store.fsInfo();
  assert.equal(before.mountpoint, store.options.root);
  assert.ok(before.usedBytes > 1_000_000 && before.inodesUsed > 20, JSON.stringify(before, (_, v) => (typeof v === 'bigint' ? String(v) : v)));
  await store.remove(`${reg.host}/test/busybox:latest`);
  assert.equal(await store.status(img.id), undefined);
  assert.deepEqual(await snapshotNames(store), []);
  assert.deepEqual(await readdir(join(store.options.root, 'blobs', 'sha256')), []);
  await assert.rejects(store.rootfsLayers(img.id), ImageNotFoundError);
  await assert.rejects(store.acquireImage(img.id, 'ctr-2'), ImageNotFoundError);
  const afterInfo = await store.fsInfo();
  assert.ok(afterInfo.usedBytes < before.usedBytes / 4);
});

test('layers shared by two images stay until the last one is removed', async () => {
  const layout = join(work, 'derived-layout');
  const { busyboxLayers } = await import('../../helpers/image-registry.js');
  const [base] = await busyboxLayers();
  const m = await writeImage(layout, { layers: [base!, [{ name: 'extra', content: 'x' }]] });
  await writeLayoutIndex(layout, m, 'latest');
  await pushImage(layout, `${reg.host}/test/derived:latest`);
  const store = await newStore();
  const a = await store.pull(`${reg.host}/test/busybox:latest`);
  const b = await store.pull(`${reg.host}/test/derived:latest`);
  assert.equal(a.diffIds[0], b.diffIds[0]);
  assert.equal((await snapshotNames(store)).length, 3);
  await store.remove(a.id);
  assert.equal((await snapshotNames(store)).length, 2);
  assert.equal((await store.rootfsLayers(b.id)).length, 2);
  await store.remove(b.id);
  assert.deepEqual(await snapshotNames(store), []);
});

test('a hostile layer in a registry image is refused, naming the entry, and nothing appears', async () => {
  const layout = join(work, 'hostile-layout');
  const outside = join(work, 'outside-target');
  await mkdir(outside, { recursive: true });
  const m = await writeImage(layout, { layers: [[{ name: 'l', type: 'symlink', linkname: outside }, { name: 'l/pwned', content: 'x' }]] });
  await writeLayoutIndex(layout, m, 'latest');
  await pushImage(layout, `${reg.host}/test/hostile:latest`);
  const store = await newStore();
  await assert.rejects(store.pull(`${reg.host}/test/hostile:latest`), (e: unknown) => e instanceof UnsafeLayerEntryError && e.message.includes("'l/pwned'"));
  assert.deepEqual(await readdir(outside), []);
  assert.deepEqual(await store.list(), []);
  assert.deepEqual(await snapshotNames(store), []);
});

test('a pull of an unknown tag or repository says so', async () => {
  const store = await newStore();
  await assert.rejects(store.pull(`${reg.host}/test/busybox:nope`), ImageNotFoundError);
  await assert.rejects(store.pull(`${reg.host}/test/nothing:latest`), ImageNotFoundError);
  const s2 = await newStore({ maxRetries: 0, requestTimeoutMs: 2000 });
  await assert.rejects(s2.pull('127.0.0.1:1/x:y'), RegistryUnreachableError);
});

// The upstream of these mirrors is a loopback port nothing listens on: what
// the error says must come from the mirror, not from the last endpoint tried.
test('a mirror serving a bad layer before an unreachable registry: the layer is the cause, the mirror is named', async (t) => {
  const layout = join(work, 'escape-layout');
  const m = await writeImage(layout, { layers: [[{ name: 'ok', content: 'x' }, { name: 'a/../../escape', content: 'x' }]] });
  await writeLayoutIndex(layout, m, 'latest');
  await pushImage(layout, `${reg.host}/test/escape:latest`);
  const mirror = await startProxy(reg.host);
  t.after(() => mirror.stop());
  const dead = `127.0.0.1:${await freePort()}`;
  const store = await newStore({ mirrors: { [dead]: [mirror.url] }, maxRetries: 0 });
  await assert.rejects(store.pull(`${dead}/test/escape:latest`), (e: unknown) => {
    assert.ok(e instanceof UnsafeLayerEntryError, `got ${String(e)}`);
    assert.match(e.message, new RegExp(`^layer entry 'a/\\.\\./\\.\\./escape' refused: .* \\(at mirror ${mirror.url}\\)$`));
    return true;
  });
  assert.deepEqual(await store.list(), []);
  assert.deepEqual(await snapshotNames(store), []);
});

test('a refusing mirror before an unreachable registry: both endpoints and their failures are named', async (t) => {
  const mirror = await startProxy(reg.host, [{ match: /./, status: 503 }]);
  t.after(() => mirror.stop());
  const dead = `127.0.0.1:${await freePort()}`;
  const store = await newStore({ mirrors: { [dead]: [mirror.url] }, maxRetries: 0 });
  await assert.rejects(store.pull(`${dead}/test/busybox:latest`), (e: unknown) => {
    assert.ok(e instanceof RegistryUnreachableError, `got ${String(e)}`);
    assert.match(e.message, new RegExp(`every endpoint failed: mirror ${mirror.url}: .* answered 503; cannot reach registry ${dead} for manifest latest: connect ECONNREFUSED`));
    return true;
  });
});
