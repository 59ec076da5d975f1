// kill -9 in the middle of a pull: no half image is visible afterwards, the
// leftovers are cleaned, and the next pull completes with the right content.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ImageStore } from '../../../src/image/index.js';
import { startProxy, type Proxy } from '../../helpers/image-proxy.js';
import { buildRandomImage, pushImage, startRegistry, type BuiltImage, type Registry } from '../../helpers/image-registry.js';

const IMAGE_BYTES = 32 * 1024 * 1024;
const KILL_WAIT_MS = 60_000;
const INDEX_JS = fileURLToPath(new URL('../../../src/image/index.js', import.meta.url));

let reg: Registry;
let slow: Proxy;
let work: string;
let img: BuiltImage;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'frakti-image-crash-'));
  reg = await startRegistry();
  img = await buildRandomImage(work, IMAGE_BYTES, 4);
  await pushImage(img.layout, `${reg.host}/test/random:latest`);
  slow = await startProxy(reg.host, [{ match: /\/blobs\//, bytesPerSecond: 4 * 1024 * 1024 }]);
});

after(async () => {
  await slow?.stop();
  await reg?.stop();
  await rm(work, { recursive: true, force: true });
});

async function sha(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

test('kill -9 mid-pull leaves no half image; the next pull completes', async (t) => {
  const root = join(work, 'store');
  const ref = `${reg.host}/test/random:latest`;
  const code = `
    import { ImageStore } from ${JSON.stringify(INDEX_JS)};
    const s = await ImageStore.open({ root: ${JSON.stringify(root)}, mirrors: { ${JSON.stringify(reg.host)}: [${JSON.stringify(slow.url)}] } });
    await s.pull(${JSON.stringify(ref)});
    console.log('pulled');`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  // Wait until a good part of the image went through the proxy, then kill.
  const deadline = Date.now() + KILL_WAIT_MS;
  while (slow.bytesOut() < IMAGE_BYTES / 3 && Date.now() < deadline && child.exitCode === null) await sleep(50);
  assert.equal(child.exitCode, null, `the pull was still running when killed: ${out}`);
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
  assert.ok(slow.bytesOut() < IMAGE_BYTES, 'killed before the end');

  const ingest = await readdir(join(root, 'ingest'));
  assert.ok(ingest.length > 0, 'the killed pull left work in progress (the kill really was mid-pull)');
  const store = await ImageStore.open({ root });
  assert.deepEqual(await store.list(), [], 'no image is visible');
  assert.deepEqual(await readdir(join(root, 'ingest')), [], 'leftover downloads of the dead process were removed');
  assert.deepEqual((await readdir(join(root, 'snapshots'))).filter((n) => n.startsWith('.')), [], 'half-unpacked layers were removed');

  const pulled = await store.pull(ref);
  assert.equal(pulled.id, img.configDigest);
  const layers = await store.rootfsLayers(pulled.id);
  for (const [i, dir] of layers.entries()) assert.equal((await readdir(join(dir, `data${i}`))).length, 8);
  // Compare every file with the image's own layers, unpacked independently by umoci.
  await new Promise<void>((resolve, reject) => {
    const u = spawn('umoci', ['raw', 'unpack', '--rootless', '--image', `${img.layout}:${img.tag}`, join(work, 'umoci-root')], { stdio: 'ignore' });
    u.on('exit', (c) => (c === 0 ? resolve() : reject(new Error(`umoci exited ${c}`))));
  });
  for (const [i, dir] of layers.entries()) {
    for (const f of await readdir(join(dir, `data${i}`))) {
      assert.equal(await sha(join(dir, `data${i}`, f)), await sha(join(work, 'umoci-root', `data${i}`, f)), `data${i}/${f}`);
    }
  }
  assert.deepEqual((await readdir(join(root, 'snapshots'))).filter((n) => n.startsWith('.')), []);
  assert.deepEqual(await readdir(join(root, 'ingest')), []);
});
