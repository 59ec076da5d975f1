// A registry behind htpasswd (basic auth): the CRI AuthConfig fields decide.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ImageStore, RegistryAuthError } from '../../../src/image/index.js';
import { buildBusyboxImage, pushImage, startRegistry, type BuiltImage, type Registry } from '../../helpers/image-registry.js';

const creds = { username: 'frakti', password: 's3cret-pw' };
let reg: Registry;
let work: string;
let img: BuiltImage;
let n = 0;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'frakti-image-auth-'));
  reg = await startRegistry({ htpasswd: creds });
  img = await buildBusyboxImage(work);
  await pushImage(img.layout, `${reg.host}/private/busybox:latest`, { creds });
});

after(async () => {
  await reg?.stop();
  await rm(work, { recursive: true, force: true });
});

const store = () => ImageStore.open({ root: join(work, `store-${++n}`) });
const ref = () => `${reg.host}/private/busybox:latest`;

test('no credentials: refused as unauthorised', async () => {
  await assert.rejects((await store()).pull(ref()), (e: unknown) => e instanceof RegistryAuthError && /requires credentials/.test(e.message));
});

test('a wrong password: refused as unauthorised, nothing stored', async () => {
  const s = await store();
  await assert.rejects(s.pull(ref(), { auth: { username: creds.username, password: 'wrong' } }), (e: unknown) => e instanceof RegistryAuthError && /refused/.test(e.message));
  assert.deepEqual(await s.list(), []);
});

test('the right username and password pull the image', async () => {
  const r = await (await store()).pull(ref(), { auth: { username: creds.username, password: creds.password } });
  assert.equal(r.id, img.configDigest);
});

test('the auth field (base64 user:password) works as well', async () => {
  const auth = Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
  const r = await (await store()).pull(ref(), { auth: { auth } });
  assert.equal(r.id, img.configDigest);
});
