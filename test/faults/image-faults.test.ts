// Faults of the image room, seen through the CRI ImageService of a real
// daemon pulling from a real registry on loopback: a disk that fills up in
// the middle of a pull, a power loss right after a pull said it was done,
// and ten kubelets pulling one image while one of them gives up. What is
// checked is what an operator would check: the gRPC status and its
// message, what ListImages and ImageStatus say, and the store's folder
// (src/image/image-store.ts draws its layout) holding exactly what the
// image records explain.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { grpcError, startDaemon, waitFor, type RunningDaemon } from '../helpers/cri-client.js';
import { startProxy } from '../helpers/image-proxy.js';
import { buildBusyboxImage, buildRandomImage, pushImage, startRegistry, type Registry } from '../helpers/image-registry.js';
import { faultSchedule, type Schedule } from './schedule.js';

const run = promisify(execFile);
const MIB = 1024 * 1024;
const PULL_TIMEOUT_MS = 180_000;
const TEST_TIMEOUT_MS = 900_000;
/** The random image's files: per layer, named data<layer>/file<n> (test/helpers/image-registry.ts). */
const FILES_PER_LAYER = 8;

/**
 * Cleanup in reverse order of setup, run by t.after also when the test
 * fails; a step that fails fails the test. (Not src/lib's UndoStack: its
 * steps are fail points, which must never fire in the test process.)
 */
class Cleanup {
  private readonly steps: { what: string; step: () => Promise<unknown> | unknown }[] = [];

  constructor(t: TestContext) {
    t.after(() => this.run());
  }

  push(what: string, step: () => Promise<unknown> | unknown): void {
    this.steps.push({ what, step });
  }

  private async run(): Promise<void> {
    const failures: string[] = [];
    for (let s = this.steps.pop(); s; s = this.steps.pop()) await Promise.resolve(s.step()).catch((err: unknown) => failures.push(`${s!.what}: ${String(err)}`));
    if (failures.length) throw new Error(`cleanup failed: ${failures.join('; ')}`);
  }
}

async function scratchDir(undo: Cleanup, tag: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `frakti-faults-${tag}-`));
  undo.push(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A loop device on `file`; detached by undo. */
async function loopDevice(undo: Cleanup, file: string): Promise<string> {
  const dev = (await run('losetup', ['--find', '--show', file])).stdout.trim();
  undo.push(`detach ${dev}`, () => run('losetup', ['-d', dev]));
  return dev;
}

async function mountAt(undo: Cleanup, args: string[], at: string): Promise<void> {
  await mkdir(at, { recursive: true });
  await run('mount', [...args, at]);
  undo.push(`unmount ${at}`, () => run('umount', [at]));
}

/** An existing ext4 image mounted at `at`. */
async function smallFsFrom(undo: Cleanup, image: string, at: string): Promise<void> {
  await mountAt(undo, ['-t', 'ext4', await loopDevice(undo, image)], at);
}

/** A file system of `mib` MiB at `at`: a tmpfs, or ext4 on a loop device over `backing` (no blocks reserved for root). */
async function smallFs(undo: Cleanup, kind: 'tmpfs' | 'ext4', mib: number, at: string, backing: string): Promise<void> {
  if (kind === 'tmpfs') return mountAt(undo, ['-t', 'tmpfs', '-o', `size=${mib}m,mode=0711`, 'tmpfs'], at);
  await run('truncate', ['-s', `${mib}M`, backing]);
  await run('mkfs.ext4', ['-q', '-F', '-m', '0', backing]);
  await smallFsFrom(undo, backing, at);
}

async function freeBytes(path: string): Promise<number> {
  const s = await statfs(path);
  return s.bavail * s.bsize;
}

/** What every case starts with: its schedule, its cleanup, a scratch folder, a registry on loopback. */
async function faultCase(t: TestContext, name: string): Promise<{ sched: Schedule; undo: Cleanup; work: string; reg: Registry }> {
  const sched = faultSchedule(name);
  const undo = new Cleanup(t);
  const work = await scratchDir(undo, name);
  const reg = await startRegistry();
  undo.push('stop the registry', () => reg.stop());
  return { sched, undo, work, reg };
}

async function daemonWithRoot(undo: Cleanup, dir: string): Promise<RunningDaemon> {
  const d = await startDaemon({ dir, testNetwork: false });
  undo.push('stop the daemon', () => d.cleanup());
  return d;
}

const spec = (image: string) => ({ image });
const hexOf = (digest: string) => digest.slice(digest.lastIndexOf(':') + 1);

async function pull(d: RunningDaemon, ref: string): Promise<string> {
  return (await d.client.image.PullImage!({ image: spec(ref) }, { timeoutMs: PULL_TIMEOUT_MS })).image_ref as string;
}

/** ImageStatus' verbose info of `ref`, or undefined when the daemon has no such image. */
async function imageInfo(d: RunningDaemon, ref: string): Promise<{ id: string; manifestDigest: string; diffIds: string[] } | undefined> {
  const st = await d.client.image.ImageStatus!({ image: spec(ref), verbose: true });
  return st.image ? JSON.parse(st.info.info) : undefined;
}

/**
 * What the image store's folder holds that its records do not explain
 * (temp files, half layers, blobs or layers of no listed image), and what a
 * listed image lacks. Empty: the store is consistent.
 */
async function storeProblems(d: RunningDaemon): Promise<string[]> {
  const root = join(d.root, 'image');
  const blobs = new Set<string>();
  const layers = new Set<string>();
  const problems: string[] = [];
  for (const img of (await d.client.image.ListImages!({})).images as { id: string; repo_digests: string[] }[]) {
    const info = (await imageInfo(d, img.id))!;
    blobs.add(hexOf(img.id)).add(hexOf(info.manifestDigest));
    for (const rd of img.repo_digests) blobs.add(hexOf(rd));
    const manifest = JSON.parse(await readFile(join(root, 'blobs', 'sha256', hexOf(info.manifestDigest)), 'utf8')) as { layers: { digest: string }[] };
    for (const l of manifest.layers) blobs.add(hexOf(l.digest));
    for (const id of info.diffIds) layers.add(hexOf(id));
  }
  for (const b of blobs) if (!(await lstat(join(root, 'blobs', 'sha256', b)).catch(() => undefined))?.isFile()) problems.push(`missing blob ${b}`);
  for (const l of layers) if (!(await lstat(join(root, 'snapshots', l)).catch(() => undefined))?.isDirectory()) problems.push(`missing layer ${l}`);
  for (const e of await readdir(root)) if (!['blobs', 'ingest', 'snapshots', 'images.json'].includes(e)) problems.push(`unexplained ${e}`);
  for (const e of await readdir(join(root, 'blobs'))) if (e !== 'sha256') problems.push(`unexplained blobs/${e}`);
  for (const e of await readdir(join(root, 'ingest'))) problems.push(`unexplained ingest/${e}`);
  for (const e of await readdir(join(root, 'blobs', 'sha256'))) if (!blobs.has(e)) problems.push(`unexplained blobs/sha256/${e}`);
  for (const e of await readdir(join(root, 'snapshots'))) if (!layers.has(e)) problems.push(`unexplained snapshots/${e}`);
  return problems;
}

/** Each layer of the random image holds its files whole (the unpacked bytes the image has). */
async function assertRandomLayers(layerDirs: string[], fileBytes: number): Promise<void> {
  for (const [i, dir] of layerDirs.entries()) {
    const files = (await readdir(join(dir, `data${i}`))).sort();
    assert.equal(files.length, FILES_PER_LAYER, `${dir}/data${i}: ${files.join(' ')}`);
    for (const f of files) assert.equal((await lstat(join(dir, `data${i}`, f))).size, fileBytes, `${dir}/data${i}/${f}`);
  }
}

const layerDirsOf = (d: RunningDaemon, diffIds: string[]) => diffIds.map((id) => join(d.root, 'image', 'snapshots', hexOf(id)));

/** The daemon is still serving and never reported an unhandled rejection. */
async function assertDaemonHealthy(d: RunningDaemon): Promise<void> {
  assert.equal(d.child.exitCode, null, `the daemon is running: ${d.stderr().slice(-2000)}`);
  assert.equal((await d.client.runtime.Version!({})).runtime_name, 'frakti');
  assert.doesNotMatch(d.stderr(), /unhandled/i);
}

const BIG_BYTES = 24 * MIB;
const BIG_LAYERS = 6;
const DISK_MIB = 96;

test('a pull that fills the disk is RESOURCE_EXHAUSTED naming ENOSPC and the store, leaves the store as it was, and succeeds once space is freed', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { sched, undo, work, reg } = await faultCase(t, 'image-disk-full');
  const busybox = await buildBusyboxImage(work);
  const big = await buildRandomImage(work, BIG_BYTES, BIG_LAYERS, FILES_PER_LAYER);
  const small = `${reg.host}/busybox:latest`;
  const ref = `${reg.host}/big:latest`;
  await pushImage(busybox.layout, small);
  await pushImage(big.layout, ref);
  const fileBytes = Math.floor(BIG_BYTES / BIG_LAYERS / FILES_PER_LAYER);

  const rounds = sched.count(2, 8);
  for (let round = 0; round < rounds; round++) {
    // Each short run has tmpfs (writes fail at once) and ext4 (delayed
    // allocation, a journal); a failure early in the pull, and one after
    // the first layers were complete (they unpack three at a time).
    const kind = round % 2 === 0 ? 'tmpfs' : 'ext4';
    const late = (round + (round >> 1)) % 2 === 1;
    const leftBytes = late ? 26 * MIB + sched.int(10 * MIB) : MIB + sched.int(11 * MIB);
    await t.test(`round ${round}: ${kind}, ${Math.round(leftBytes / 1024)} KiB left`, async (tr) => {
      const ru = new Cleanup(tr);
      const dir = join(work, `round-${round}`);
      await mkdir(dir);
      ru.push(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
      await smallFs(ru, kind, DISK_MIB, join(dir, 'root'), join(dir, 'disk.img'));
      const d = await daemonWithRoot(ru, dir);
      const store = join(d.root, 'image');

      assert.equal(await pull(d, small), busybox.configDigest);
      const before = await imageInfo(d, small);
      const smallTrees = async () => Promise.all(layerDirsOf(d, busybox.diffIds).map(treeOf));
      const smallBefore = await smallTrees();
      const filler = join(d.root, 'filler');
      await run('fallocate', ['-l', String((await freeBytes(d.root)) - leftBytes), filler]);

      const e = await grpcError(d.client.image.PullImage!({ image: spec(ref) }, { timeoutMs: PULL_TIMEOUT_MS }));
      assert.equal(e.code, grpc.status.RESOURCE_EXHAUSTED, `${grpc.status[e.code]}: ${e.details}`);
      assert.match(e.details, /no space left on device \(ENOSPC\)/);
      assert.ok(e.details.includes(store), `the message names the store ${store}: ${e.details}`);

      // As before the pull: the earlier image listed and whole, nothing of the big one.
      const listed = (await d.client.image.ListImages!({})).images as { id: string }[];
      assert.deepEqual(listed.map((i) => i.id), [busybox.configDigest]);
      assert.deepEqual(await imageInfo(d, small), before);
      assert.deepEqual(await smallTrees(), smallBefore);
      assert.equal(await imageInfo(d, ref), undefined);
      assert.deepEqual(await storeProblems(d), []);
      await assertDaemonHealthy(d);

      await rm(filler);
      assert.equal(await pull(d, ref), big.configDigest);
      const info = (await imageInfo(d, ref))!;
      assert.deepEqual(info.diffIds, big.diffIds);
      await assertRandomLayers(layerDirsOf(d, info.diffIds), fileBytes);
      assert.deepEqual(await storeProblems(d), []);

      await d.client.image.RemoveImage!({ image: spec(ref) });
      assert.deepEqual(((await d.client.image.ListImages!({})).images as { id: string }[]).map((i) => i.id), [busybox.configDigest]);
      assert.deepEqual(await storeProblems(d), []);
      await assertDaemonHealthy(d);
    });
  }
});

/**
 * Every entry under dir as one line: type and mode, owner, size, mtime, the
 * content's hash (or the name a hardlink shares it with), a symlink's target,
 * a device's numbers; then every xattr (getfattr's dump).
 */
async function treeOf(dir: string): Promise<string[]> {
  const out: string[] = [];
  const firstName = new Map<number, string>();
  const walk = async (rel: string): Promise<void> => {
    for (const n of (await readdir(join(dir, rel))).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const p = join(dir, r);
      const st = await lstat(p);
      let what = '';
      if (st.isFile()) {
        what = firstName.get(st.ino) ?? createHash('sha256').update(await readFile(p)).digest('hex');
        if (!firstName.has(st.ino)) firstName.set(st.ino, `same as ${r}`);
      } else if (st.isSymbolicLink()) what = `-> ${await readlink(p)}`;
      else if (st.isCharacterDevice() || st.isBlockDevice()) what = `device ${st.rdev}`;
      out.push(`${r} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeMs} ${what}`);
      if (st.isDirectory()) await walk(r);
    }
  };
  await walk('');
  const xattrs = await run('getfattr', ['-R', '-h', '-d', '-m', '-', '-e', 'hex', '.'], { cwd: dir });
  return [...out, ...xattrs.stdout.split('\n').filter(Boolean)];
}

test('a power loss right after a pull was reported done loses nothing of the image', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { sched, undo, work, reg } = await faultCase(t, 'image-power-loss');
  // busybox has whiteouts, an opaque directory, a hardlink, symlinks and a setuid file.
  const busybox = await buildBusyboxImage(work);
  await pushImage(busybox.layout, `${reg.host}/busybox:latest`);

  const rounds = sched.count(1, 4);
  for (let round = 0; round < rounds; round++) {
    // Many small files, in as many layers and files as the schedule picks.
    const layers = 1 + sched.int(4);
    const files = 16 + sched.int(112);
    await t.test(`round ${round}: ${layers} layers of ${files} files`, async (tr) => {
      const ru = new Cleanup(tr);
      const dir = join(work, `round-${round}`);
      await mkdir(dir);
      ru.push(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
      const many = await buildRandomImage(dir, layers * files * 8 * 1024, layers, files);
      const ref = `${reg.host}/many-${round}:latest`;
      await pushImage(many.layout, ref);

      // The node: an ext4 disk on a loop device, as a real disk behaves on a
      // power cut (what reached the device stays; the page cache is lost).
      const disk = join(dir, 'disk.img');
      await smallFs(ru, 'ext4', 256, join(dir, 'node', 'root'), disk);
      const d = await daemonWithRoot(ru, join(dir, 'node'));
      assert.equal(await pull(d, `${reg.host}/busybox:latest`), busybox.configDigest);
      assert.equal(await pull(d, ref), many.configDigest);

      // The power cut: the device as it is now. A loop device writes through the
      // backing file's page cache, so a copy of that file is what the disk holds.
      const crashed = join(dir, 'crashed.img');
      await run('cp', ['--sparse=always', disk, crashed]);
      await d.stop();

      // The node boots again (the journal is replayed at mount) and frakti starts on the same root.
      await smallFsFrom(ru, crashed, join(dir, 'rebooted', 'root'));
      const after = await daemonWithRoot(ru, join(dir, 'rebooted'));
      for (const img of [busybox, many]) {
        const info = await imageInfo(after, img.configDigest);
        assert.ok(info, `image ${img.configDigest} is listed after the power loss`);
        for (const id of info.diffIds) {
          const live = join(d.root, 'image', 'snapshots', hexOf(id));
          const back = join(after.root, 'image', 'snapshots', hexOf(id));
          assert.deepEqual(await treeOf(back), await treeOf(live), `layer ${id} after the power loss`);
        }
      }
      assert.deepEqual(await storeProblems(after), []);
      await assertDaemonHealthy(after);
    });
  }
});

const CROWD = 10;
const CROWD_BYTES = 16 * MIB;
const CROWD_LAYERS = 4;
/** Per blob download; three run at once (the store's default), so the pull lasts about four seconds. */
const CROWD_BYTES_PER_SECOND = 2 * MIB;

type PullOutcome = { imageRef: string; at: number } | { err: grpc.ServiceError; at: number };

test('ten callers pull one image at once and one gives up mid-pull: the others get it whole, listed once, and RemoveImage leaves nothing', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { sched, undo, work, reg } = await faultCase(t, 'image-pull-crowd');
  const img = await buildRandomImage(work, CROWD_BYTES, CROWD_LAYERS, FILES_PER_LAYER);
  await pushImage(img.layout, `${reg.host}/crowd:latest`);
  // The daemon pulls through a slow proxy (loopback: spoken to over plain
  // HTTP), so that the pull is still going when the caller gives up.
  const slow = await startProxy(reg.host, [{ match: /\/blobs\//, bytesPerSecond: CROWD_BYTES_PER_SECOND }]);
  undo.push('stop the proxy', () => slow.stop());
  const ref = `${slow.url.replace('http://', '')}/crowd:latest`;
  const manifest = JSON.parse(await readFile(join(img.layout, 'blobs', 'sha256', hexOf(img.manifestDigest)), 'utf8')) as { layers: { digest: string; size: number }[] };
  const layerBytes = manifest.layers.reduce((a, l) => a + l.size, 0);
  const expectedMs = (layerBytes / (3 * CROWD_BYTES_PER_SECOND)) * 1000;
  const d = await daemonWithRoot(undo, await scratchDir(undo, 'crowd-daemon'));
  const client = d.client.raw.image as unknown as {
    PullImage(req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { image_ref: string }) => void): grpc.ClientUnaryCall;
  };

  const rounds = sched.count(1, 5);
  for (let round = 0; round < rounds; round++) {
    const victim = sched.int(CROWD);
    const how = sched.pick(['cancel', 'deadline'] as const);
    // Somewhere between a tenth and two thirds of the layers' bytes in.
    const giveUpAt = 0.1 + sched.random() * 0.56;
    await t.test(`round ${round}: caller ${victim} gives up (${how}) ${Math.round(giveUpAt * 100)}% in`, async (tr) => {
      const ru = new Cleanup(tr);
      const bytesBefore = slow.bytesOut();
      const requestsBefore = slow.requests.length;
      const through = () => slow.bytesOut() - bytesBefore;
      const calls: grpc.ClientUnaryCall[] = [];
      const outcomes = Array.from(
        { length: CROWD },
        (_, i) =>
          new Promise<PullOutcome>((resolve) => {
            const deadline = Date.now() + (i === victim && how === 'deadline' ? Math.round(giveUpAt * expectedMs) : PULL_TIMEOUT_MS);
            calls[i] = client.PullImage({ image: spec(ref) }, new grpc.Metadata(), { deadline }, (err, res) => resolve(err ? { err, at: through() } : { imageRef: res!.image_ref, at: through() }));
          }),
      );
      ru.push('cancel calls still running', () => calls.forEach((c) => c.cancel()));
      if (how === 'cancel') {
        await waitFor(`${Math.round(giveUpAt * 100)}% of the layers through the proxy`, async () => through() >= giveUpAt * layerBytes, PULL_TIMEOUT_MS, 10);
        calls[victim]!.cancel();
      }
      const results = await Promise.all(outcomes);

      const gaveUp = results[victim]!;
      assert.ok('err' in gaveUp, `caller ${victim} (${how}) failed`);
      assert.equal(gaveUp.err.code, how === 'cancel' ? grpc.status.CANCELLED : grpc.status.DEADLINE_EXCEEDED, gaveUp.err.details);
      assert.ok(gaveUp.at < layerBytes, `caller ${victim} gave up mid-pull: ${gaveUp.at} of ${layerBytes} bytes through`);
      for (const [i, r] of results.entries()) {
        if (i === victim) continue;
        assert.ok('imageRef' in r, `caller ${i}: ${'err' in r ? `${grpc.status[r.err.code]} ${r.err.details}` : ''}`);
        assert.equal(r.imageRef, img.configDigest, `caller ${i}`);
      }
      // One download of each layer: the caller that left neither stopped nor restarted it.
      const requests = slow.requests.slice(requestsBefore);
      for (const l of manifest.layers) assert.equal(requests.filter((r) => r === `GET /v2/crowd/blobs/${l.digest}`).length, 1, `downloads of ${l.digest}: ${requests.join(', ')}`);

      const listed = (await d.client.image.ListImages!({})).images as { id: string; repo_tags: string[] }[];
      assert.deepEqual(listed.map((i) => [i.id, i.repo_tags]), [[img.configDigest, [ref]]]);
      const info = (await imageInfo(d, ref))!;
      assert.deepEqual(info.diffIds, img.diffIds);
      await assertRandomLayers(layerDirsOf(d, info.diffIds), Math.floor(CROWD_BYTES / CROWD_LAYERS / FILES_PER_LAYER));
      assert.deepEqual(await storeProblems(d), []);
      await assertDaemonHealthy(d);

      await d.client.image.RemoveImage!({ image: spec(ref) });
      assert.deepEqual((await d.client.image.ListImages!({})).images, []);
      const store = join(d.root, 'image');
      for (const sub of ['blobs/sha256', 'snapshots', 'ingest']) assert.deepEqual(await readdir(join(store, sub)), [], `${sub} after RemoveImage`);
      assert.deepEqual(await storeProblems(d), []);
      await assertDaemonHealthy(d);
    });
  }
});
