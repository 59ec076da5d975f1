// One pass from a compressed blob to a committed layer: gzip, zstd and plain
// tars, with the digest, size and diff id checked before anything is visible.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { ContentStore } from '../../../src/image/content-store.js';
import { ContentInvalidError, ImageStoreExhaustedError } from '../../../src/image/errors.js';
import { fetchLayer } from '../../../src/image/layer-fetch.js';
import { MT, layerCompression } from '../../../src/image/manifest.js';
import { SnapshotStore } from '../../../src/image/snapshot-store.js';
import { makeLayerTar, sha256 } from '../../helpers/image-registry.js';
import { onTmpfs } from '../../helpers/tmpfs.js';

async function stores(t: { after(fn: () => Promise<void>): void }) {
  const root = await mkdtemp(join(tmpdir(), 'frakti-fetch-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const content = new ContentStore(root);
  const snapshots = new SnapshotStore(root);
  await content.init();
  await snapshots.init();
  return { root, content, snapshots };
}

const zstdAvailable = (() => {
  try {
    execFileSync('zstd', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

for (const [mediaType, compress] of [
  [MT.ociLayerGzip, (b: Buffer) => gzipSync(b)],
  [MT.ociLayer, (b: Buffer) => b],
  [MT.ociLayerZstd, (b: Buffer) => execFileSync('zstd', ['-q', '-c'], { input: b })],
] as const) {
  test(`a ${layerCompression(mediaType)} layer is stored and unpacked`, { skip: mediaType === MT.ociLayerZstd && !zstdAvailable && 'no zstd command' }, async (t) => {
    const s = await stores(t);
    const raw = await makeLayerTar([{ name: 'a/b', content: 'payload\n' }]);
    const blob = compress(raw);
    const target = { desc: { mediaType, digest: sha256(blob), size: blob.length }, diffId: sha256(raw), compression: layerCompression(mediaType) };
    await fetchLayer(Readable.from([blob]), target, s, true);
    assert.equal(await readFile(join(s.snapshots.path(target.diffId), 'a/b'), 'utf8'), 'payload\n');
    assert.ok(await s.content.has(target.desc.digest));
  });
}

test('a wrong digest, size or diff id commits nothing', async (t) => {
  const s = await stores(t);
  const raw = await makeLayerTar([{ name: 'f', content: 'x' }]);
  const blob = gzipSync(raw);
  const good = { desc: { mediaType: MT.ociLayerGzip, digest: sha256(blob), size: blob.length }, diffId: sha256(raw), compression: 'gzip' as const };
  const cases = [
    { ...good, desc: { ...good.desc, digest: sha256(Buffer.from('other')) } },
    { ...good, desc: { ...good.desc, size: blob.length - 1 } },
    { ...good, desc: { ...good.desc, size: blob.length + 1 } },
    { ...good, diffId: sha256(Buffer.from('other')) },
  ];
  for (const c of cases) await assert.rejects(fetchLayer(Readable.from([blob]), c, s, true), ContentInvalidError);
  await assert.rejects(fetchLayer(Readable.from([Buffer.from('not gzip at all')]), { ...good, desc: { ...good.desc, size: 15 } }, s, true));
  assert.deepEqual(await readdir(join(s.root, 'snapshots')), []);
  assert.deepEqual(await readdir(join(s.root, 'ingest')), []);
  assert.deepEqual(await readdir(join(s.root, 'blobs', 'sha256')), []);
});

test('a blob that does not decompress, or ends short, is refused as such', async (t) => {
  const s = await stores(t);
  const raw = await makeLayerTar([{ name: 'f', content: randomBytes(50_000) }]);
  const blob = gzipSync(raw);
  const good = { desc: { mediaType: MT.ociLayerGzip, digest: sha256(blob), size: blob.length }, diffId: sha256(raw), compression: 'gzip' as const };
  const junk = Buffer.from('not gzip at all');
  await assert.rejects(
    fetchLayer(Readable.from([junk]), { ...good, desc: { ...good.desc, digest: sha256(junk), size: junk.length } }, s, true),
    (e: unknown) => e instanceof ContentInvalidError && /does not decompress/.test(e.message),
  );
  // A body that ends early without a transport error: the short blob is the cause, not the decompressor's complaint.
  const half = blob.subarray(0, blob.length >> 1);
  await assert.rejects(
    fetchLayer(Readable.from([half]), good, s, true),
    (e: unknown) => e instanceof ContentInvalidError && e.message.includes(`is ${half.length} bytes, descriptor says ${blob.length}`),
  );
  assert.deepEqual(await readdir(join(s.root, 'snapshots')), []);
});

// The blob file and the unpack write at once; the one that hits the full
// disk stops the others, which then see only their streams closed. That
// "Premature close" reads like the network (and would be retried): the disk
// must be what the layer's failure says. Several rounds, as which writer
// fails first varies.
test('a disk that fills up under a layer is ENOSPC, never a premature close, and leaves nothing', { skip: process.geteuid?.() !== 0 && 'needs root (mount)' }, async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'frakti-fetch-full-'));
  t.after(() => rm(base, { recursive: true, force: true }));
  const raw = await makeLayerTar(Array.from({ length: 8 }, (_, i) => ({ name: `f${i}`, content: randomBytes(512 * 1024) })));
  const target = { desc: { mediaType: MT.ociLayer, digest: sha256(raw), size: raw.length }, diffId: sha256(raw), compression: 'none' as const };
  const chunks = Array.from({ length: Math.ceil(raw.length / 65536) }, (_, i) => raw.subarray(i * 65536, (i + 1) * 65536));
  const fs = join(base, 'fs');
  for (let round = 0; round < 5; round++) {
    // Room for about three quarters of the blob and of the unpacked files.
    await onTmpfs(fs, 'size=6m', async () => {
      const content = new ContentStore(fs);
      const snapshots = new SnapshotStore(fs);
      await content.init();
      await snapshots.init();
      await assert.rejects(fetchLayer(Readable.from(chunks), target, { content, snapshots }, true), (e: unknown) => {
        assert.ok(e instanceof ImageStoreExhaustedError, `round ${round}: ${String(e)}`);
        assert.match(e.message, /no space left on device \(ENOSPC\)/);
        return true;
      });
      assert.deepEqual([...(await readdir(join(fs, 'snapshots'))), ...(await readdir(join(fs, 'ingest'))), ...(await readdir(content.blobsDir))], [], `round ${round}: nothing left`);
    });
  }
});
