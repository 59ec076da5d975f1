// ImageService through the real daemon against a real registry on
// 127.0.0.1 (Debian's docker-registry), with the busybox test image the
// image room's helper builds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { buildBusyboxImage, buildRandomImage, pushImage, startRegistry, type BuiltImage, type Registry } from '../../helpers/image-registry.js';
import { grpcError, startDaemon, type RunningDaemon } from '../../helpers/cri-client.js';

interface Fixture {
  reg: Registry;
  image: BuiltImage;
  dir: string;
  d: RunningDaemon;
}

/** A registry with busybox pushed as `name`, and a daemon; all cleaned up by t.after. */
async function setup(t: { after: (fn: () => Promise<void>) => void }, opts: { htpasswd?: { username: string; password: string }; config?: Record<string, unknown>; name?: string } = {}): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-cri-img-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const reg = await startRegistry(opts.htpasswd ? { htpasswd: opts.htpasswd } : {});
  t.after(() => reg.stop());
  const image = await buildBusyboxImage(dir, opts.config ?? {});
  await pushImage(image.layout, `${reg.host}/${opts.name ?? 'busybox:latest'}`, opts.htpasswd ? { creds: opts.htpasswd } : {});
  const d = await startDaemon();
  t.after(() => d.cleanup());
  return { reg, image, dir, d };
}

const spec = (image: string) => ({ image });

test('pull, list, status, fs info and remove of an image from a local registry', async (t) => {
  const { reg, image, d } = await setup(t);
  const ref = `${reg.host}/busybox:latest`;
  const img = d.client.image;

  const pulled = await img.PullImage!({ image: spec(ref) }, { timeoutMs: 120_000 });
  assert.equal(pulled.image_ref, image.configDigest);

  const { images } = await img.ListImages!({});
  assert.equal(images.length, 1);
  const listed = images[0];
  assert.equal(listed.id, image.configDigest);
  assert.deepEqual(listed.repo_tags, [ref]);
  assert.deepEqual(listed.repo_digests, [`${reg.host}/busybox@${image.manifestDigest}`]);
  assert.ok(Number(listed.size) > 500_000, `size ${listed.size} counts the busybox layer`);
  assert.equal(listed.pinned, false);

  // Found by tag, short name, id, id prefix and digest; filters narrow the list.
  for (const name of [ref, image.configDigest, image.configDigest.slice(7, 19), `${reg.host}/busybox@${image.manifestDigest}`]) {
    const st = await img.ImageStatus!({ image: spec(name) });
    assert.equal(st.image?.id, image.configDigest, `ImageStatus(${name})`);
  }
  assert.equal((await img.ListImages!({ filter: { image: spec(ref) } })).images.length, 1);
  assert.equal((await img.ListImages!({ filter: { image: spec(`${reg.host}/other:latest`) } })).images.length, 0);
  const streamed = await d.client.imageStream.StreamImages!({});
  assert.equal(streamed[0].images[0].id, image.configDigest);

  const verbose = await img.ImageStatus!({ image: spec(ref), verbose: true });
  const info = JSON.parse(verbose.info.info);
  assert.equal(info.platform, 'linux/amd64');
  assert.deepEqual(info.diffIds, image.diffIds);

  const fs = await img.ImageFsInfo!({});
  assert.equal(fs.image_filesystems.length, 1);
  const u = fs.image_filesystems[0];
  assert.equal(u.fs_id.mountpoint, join(d.root, 'image'));
  assert.ok(Number(u.used_bytes.value) > 500_000);
  assert.ok(Number(u.inodes_used.value) > 10);
  assert.ok(BigInt(u.timestamp) > BigInt(Date.now() - 60_000) * 1_000_000n, 'timestamp in nanoseconds');

  // Unknown image: no error, no image.
  const none = await img.ImageStatus!({ image: spec(`${reg.host}/nothing:here`) });
  assert.equal(none.image, null);

  await img.RemoveImage!({ image: spec(ref) });
  assert.equal((await img.ListImages!({})).images.length, 0);
  assert.equal((await img.ImageStatus!({ image: spec(image.configDigest) })).image, null);
  // Removing it again (or anything unknown) succeeds.
  await img.RemoveImage!({ image: spec(ref) });
  await img.RemoveImage!({ image: spec(image.configDigest) });
});

test('bad requests get INVALID_ARGUMENT, a missing image NOT_FOUND', async (t) => {
  const { reg, d } = await setup(t);
  const img = d.client.image;
  const empty = await grpcError(img.PullImage!({ image: spec('') }));
  assert.equal(empty.code, status.INVALID_ARGUMENT);
  assert.match(empty.details, /ImageSpec.image is required/);
  const bad = await grpcError(img.PullImage!({ image: spec('UPPER/Case') }));
  assert.equal(bad.code, status.INVALID_ARGUMENT);
  assert.match(bad.details, /invalid image reference/);
  const missing = await grpcError(img.PullImage!({ image: spec(`${reg.host}/busybox:nope`) }, { timeoutMs: 60_000 }));
  assert.equal(missing.code, status.NOT_FOUND, missing.details);
});

test('the image user maps to uid or username', async (t) => {
  const { reg, d } = await setup(t, { config: { User: '1000:1000' } });
  await d.client.image.PullImage!({ image: spec(`${reg.host}/busybox:latest`) }, { timeoutMs: 120_000 });
  const st = await d.client.image.ImageStatus!({ image: spec(`${reg.host}/busybox:latest`) });
  assert.deepEqual(st.image.uid, { value: '1000' });
  assert.equal(st.image.username, '');
});

test('credentials from AuthConfig reach the registry; wrong ones are refused', async (t) => {
  const creds = { username: 'alice', password: 'correct horse' };
  const { reg, image, d } = await setup(t, { htpasswd: creds });
  const ref = `${reg.host}/busybox:latest`;
  const img = d.client.image;

  const none = await grpcError(img.PullImage!({ image: spec(ref) }, { timeoutMs: 60_000 }));
  assert.equal(none.code, status.PERMISSION_DENIED, none.details);
  const wrong = await grpcError(img.PullImage!({ image: spec(ref), auth: { username: 'alice', password: 'wrong' } }, { timeoutMs: 60_000 }));
  assert.equal(wrong.code, status.PERMISSION_DENIED, wrong.details);

  // The docker config.json form: base64("user:password").
  const auth = Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
  const ok = await img.PullImage!({ image: spec(ref), auth: { auth, server_address: reg.host } }, { timeoutMs: 120_000 });
  assert.equal(ok.image_ref, image.configDigest);
  // The password never reaches the daemon's logs.
  assert.ok(d.stderr().includes('rpc start'));
  assert.ok(!d.stderr().includes(creds.password) && !d.stderr().includes(auth));
});

test('a pull whose client gives up is cancelled; the daemon goes on and a later pull completes', async (t) => {
  const { reg, dir, d } = await setup(t);
  const big = await buildRandomImage(dir, 32 * 1024 * 1024, 4);
  const ref = `${reg.host}/big:latest`;
  await pushImage(big.layout, ref);
  for (const ms of [50, 300]) {
    const e = await grpcError(d.client.image.PullImage!({ image: spec(ref) }, { timeoutMs: ms }));
    assert.equal(e.code, status.DEADLINE_EXCEEDED);
    assert.equal((await d.client.runtime.Version!({})).runtime_name, 'frakti');
  }
  // Nothing half-pulled is listed.
  assert.equal((await d.client.image.ImageStatus!({ image: spec(ref) })).image, null);
  const ok = await d.client.image.PullImage!({ image: spec(ref) }, { timeoutMs: 120_000 });
  assert.equal(ok.image_ref, big.configDigest);
});

test('SIGTERM lets an in-flight pull finish, then the daemon exits and removes its socket', async (t) => {
  const { reg, dir, d } = await setup(t);
  const big = await buildRandomImage(dir, 24 * 1024 * 1024, 3);
  const ref = `${reg.host}/big:latest`;
  await pushImage(big.layout, ref);
  const pull = d.client.image.PullImage!({ image: spec(ref) }, { timeoutMs: 120_000 });
  // Let the call reach the daemon before the signal.
  for (let i = 0; i < 100 && !d.stderr().includes('"rpc":"ImageService/PullImage"'); i++) await new Promise((r) => setTimeout(r, 10));
  d.kill('SIGTERM');
  assert.equal((await pull).image_ref, big.configDigest);
  // (d.stop() would send a second SIGTERM, which means "exit now".)
  assert.equal((await d.child).exitCode, 0);
  await assert.rejects(stat(d.socket), /ENOENT/);
});
