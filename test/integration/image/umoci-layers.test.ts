// Layers as umoci writes them (Debian's umoci): `umoci insert DIR /` starts
// its layer with a "/" entry and ends it right after the last entry's data,
// without padding or end blocks; `umoci repack` writes a "." root entry and
// whiteouts. Each unpacks alone, and the image pulls from a real registry.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { ImageStore } from '../../../src/image/index.js';
import { unpackLayer } from '../../../src/image/layer-unpack.js';
import { pushImage, startRegistry, type Registry } from '../../helpers/image-registry.js';

const run = promisify(execFile);
const BLOCK = 512;
const rootless = process.geteuid?.() !== 0 ? ['--rootless'] : [];
let work: string;
let layout: string;
/** The image's layers, uncompressed, oldest first. */
let layers: Buffer[];

async function umoci(...args: string[]): Promise<void> {
  await run('umoci', args, { cwd: work, timeout: 60_000 });
}

/** One more layer by `umoci repack`: `change` edits a fresh unpack of the image's rootfs. */
async function repack(name: string, change: (rootfs: string) => Promise<void>): Promise<void> {
  // A bundle repacks onto the image it was unpacked from: each layer needs a fresh one.
  const bundle = join(work, name);
  await umoci('unpack', ...rootless, '--image', 'layout:latest', bundle);
  await change(join(bundle, 'rootfs'));
  await umoci('repack', '--image', 'layout:latest', bundle);
}

/** An image of three layers: a repack that adds files, a repack that removes one, an insert at "/". */
async function buildWithUmoci(): Promise<void> {
  await umoci('init', '--layout', 'layout');
  await umoci('new', '--image', 'layout:latest');
  await repack('bundle-1', async (rootfs) => {
    await mkdir(join(rootfs, 'etc'));
    await writeFile(join(rootfs, 'etc/hostname'), 'repacked\n');
    await writeFile(join(rootfs, 'etc/doomed'), 'removed by the next layer\n');
    await symlink('hostname', join(rootfs, 'etc/hostname-link'));
  });
  await repack('bundle-2', async (rootfs) => {
    await unlink(join(rootfs, 'etc/doomed'));
    await writeFile(join(rootfs, 'etc/second'), 'second repack\n');
  });
  const src = join(work, 'insert-src');
  await mkdir(join(src, 'bin'), { recursive: true });
  await writeFile(join(src, 'bin/hi'), 'hi\n');
  await umoci('insert', ...rootless, '--image', 'layout:latest', src, '/');
}

async function readLayers(): Promise<Buffer[]> {
  const blob = async (digest: string) => readFile(join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length)));
  const index = JSON.parse((await readFile(join(layout, 'index.json'))).toString()) as { manifests: { digest: string }[] };
  const manifest = JSON.parse((await blob(index.manifests[0]!.digest)).toString()) as { layers: { digest: string }[] };
  return Promise.all(manifest.layers.map(async (l) => gunzipSync(await blob(l.digest))));
}

function firstName(tar: Buffer): string {
  return tar.subarray(0, 100).toString('latin1').replace(/\0.*$/s, '');
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'frakti-umoci-'));
  layout = join(work, 'layout');
  await buildWithUmoci();
  layers = await readLayers();
});

after(() => rm(work, { recursive: true, force: true }));

test('umoci writes what these tests claim: a "." repack root, a "/" insert root, an unpadded insert end', () => {
  assert.equal(layers.length, 3);
  assert.equal(firstName(layers[0]!), '.');
  assert.equal(firstName(layers[2]!), '/');
  assert.notEqual(layers[2]!.length % BLOCK, 0, 'the inserted layer ends inside a block');
});

test('each umoci layer unpacks on its own, with its files', async (t) => {
  const dirs: string[] = [];
  for (const [i, tar] of layers.entries()) {
    const dest = join(work, `unpacked-${i}`);
    await mkdir(dest);
    t.after(() => rm(dest, { recursive: true, force: true }));
    await unpackLayer(Readable.from([tar]), dest, { scratchDir: work });
    dirs.push(dest);
  }
  assert.equal(await readFile(join(dirs[0]!, 'etc/hostname'), 'utf8'), 'repacked\n');
  assert.equal(await readFile(join(dirs[0]!, 'etc/hostname-link'), 'utf8'), 'repacked\n');
  assert.equal(await readFile(join(dirs[1]!, 'etc/second'), 'utf8'), 'second repack\n');
  assert.ok((await readdir(join(dirs[1]!, 'etc'))).includes('doomed'), 'the removal is a whiteout node');
  assert.equal(await readFile(join(dirs[2]!, 'bin/hi'), 'utf8'), 'hi\n');
});

test('the umoci image pulls from a registry, every layer unpacked', async (t) => {
  const reg: Registry = await startRegistry();
  t.after(() => reg.stop());
  await pushImage(layout, `${reg.host}/umoci/made:latest`);
  const store = await ImageStore.open({ root: join(work, 'store'), retryBaseDelayMs: 10 });
  t.after(() => rm(join(work, 'store'), { recursive: true, force: true }));
  const img = await store.pull(`${reg.host}/umoci/made:latest`);
  const [first, second, third] = await store.rootfsLayers(img.id);
  assert.equal(await readFile(join(first!, 'etc/hostname'), 'utf8'), 'repacked\n');
  assert.equal(await readFile(join(second!, 'etc/second'), 'utf8'), 'second repack\n');
  assert.equal(await readFile(join(third!, 'bin/hi'), 'utf8'), 'hi\n');
});
