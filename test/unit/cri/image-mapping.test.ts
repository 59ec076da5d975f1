import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ImageRecord } from '../../../src/image/index.js';
import { CriError } from '../../../src/cri/errors.js';
import { imageRefOf, imageVerboseInfo, registryAuthOf, toCriImage, toFilesystemUsage } from '../../../src/cri/image-mapping.js';
import type { AuthConfig } from '../../../src/cri/cri-types.js';

function record(over: Partial<ImageRecord> = {}): ImageRecord {
  return {
    id: 'sha256:' + 'a'.repeat(64),
    repoTags: ['docker.io/library/busybox:latest'],
    repoDigests: ['docker.io/library/busybox@sha256:' + 'b'.repeat(64)],
    size: 2_000_000,
    username: '',
    pinned: false,
    manifestDigest: 'sha256:' + 'b'.repeat(64),
    diffIds: ['sha256:' + 'c'.repeat(64)],
    os: 'linux',
    architecture: 'amd64',
    config: { user: '', env: [], entrypoint: [], cmd: ['sh'], workingDir: '', exposedPorts: [], volumes: [], labels: {}, stopSignal: '' },
    holders: [],
    ...over,
  };
}

const auth = (over: Partial<AuthConfig>): AuthConfig => ({ username: '', password: '', auth: '', server_address: '', identity_token: '', registry_token: '', ...over });

test('an image record becomes a CRI Image: id, tags, digests, size as uint64 string', () => {
  const img = toCriImage(record());
  assert.equal(img.id, 'sha256:' + 'a'.repeat(64));
  assert.deepEqual(img.repo_tags, ['docker.io/library/busybox:latest']);
  assert.equal(img.repo_digests.length, 1);
  assert.equal(img.size, '2000000');
  assert.equal(img.uid, null);
  assert.equal(img.username, '');
  assert.equal(img.pinned, false);
  assert.equal(img.spec?.image, img.id);
});

test('numeric users give uid (0 included), named users give username', () => {
  assert.deepEqual(toCriImage(record({ uid: 0 })).uid, { value: '0' });
  assert.deepEqual(toCriImage(record({ uid: 1000 })).uid, { value: '1000' });
  const named = toCriImage(record({ username: 'nobody' }));
  assert.equal(named.uid, null);
  assert.equal(named.username, 'nobody');
});

test('verbose info is one JSON document', () => {
  const info = JSON.parse(imageVerboseInfo(record({ created: '2024-01-01T00:00:00Z' })).info!);
  assert.equal(info.platform, 'linux/amd64');
  assert.deepEqual(info.config.cmd, ['sh']);
});

test('image refs are required and bounded', () => {
  assert.equal(imageRefOf({ image: 'busybox', annotations: {}, user_specified_image: '', runtime_handler: '', image_ref: '' }), 'busybox');
  assert.throws(() => imageRefOf(null), (e: unknown) => e instanceof CriError && e.code === 'INVALID_ARGUMENT' && /required/.test(e.message));
  assert.throws(() => imageRefOf({ image: 'x'.repeat(10_000) } as never), /longer than/);
});

test('AuthConfig becomes RegistryAuth; auth is decoded; empty means none', () => {
  assert.equal(registryAuthOf(null), undefined);
  assert.equal(registryAuthOf(auth({})), undefined);
  assert.deepEqual(registryAuthOf(auth({ username: 'u', password: 'p' })), { username: 'u', password: 'p' });
  const enc = Buffer.from('alice:pa:ss').toString('base64');
  assert.deepEqual(registryAuthOf(auth({ auth: enc })), { username: 'alice', password: 'pa:ss' });
  // Explicit fields win over the encoded pair.
  assert.deepEqual(registryAuthOf(auth({ auth: enc, username: 'bob', password: 'x' })), { username: 'bob', password: 'x' });
  assert.deepEqual(registryAuthOf(auth({ identity_token: 'it', registry_token: 'rt' })), { identityToken: 'it', registryToken: 'rt' });
  assert.throws(() => registryAuthOf(auth({ auth: '%%%' })), /not base64/);
  assert.throws(() => registryAuthOf(auth({ auth: Buffer.from('nocolon').toString('base64') })), /not base64/);
  assert.throws(() => registryAuthOf(auth({ password: 'p'.repeat(70_000) })), /auth.password is longer/);
});

test('fs info becomes a FilesystemUsage with int64/uint64 strings', () => {
  const u = toFilesystemUsage({ mountpoint: '/var/lib/frakti/image', usedBytes: 123, inodesUsed: 7, timestampNs: 1_700_000_000_123_456_789n });
  assert.deepEqual(u, { timestamp: '1700000000123456789', fs_id: { mountpoint: '/var/lib/frakti/image' }, used_bytes: { value: '123' }, inodes_used: { value: '7' } });
});
