import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ContentInvalidError } from '../../../src/image/errors.js';
import { MT, layerCompression, manifestKind, parseConfig, parseIndex, parseManifest, selectPlatform, userOf } from '../../../src/image/manifest.js';

const d = (c: string) => `sha256:${c.repeat(64)}`;

test('the platform is picked from an index, variants considered', () => {
  const index = parseIndex({
    manifests: [
      { mediaType: MT.ociManifest, digest: d('1'), size: 1, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
      { mediaType: MT.ociManifest, digest: d('2'), size: 1, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { mediaType: MT.dockerManifest, digest: d('3'), size: 1, platform: { os: 'linux', architecture: 'amd64' } },
      { mediaType: MT.ociManifest, digest: d('4'), size: 1, platform: { os: 'windows', architecture: 'amd64' } },
      { mediaType: 'application/vnd.in-toto+json', digest: d('5'), size: 1, platform: { os: 'unknown', architecture: 'unknown' } },
    ],
  });
  assert.equal(selectPlatform(index, 'linux/amd64')?.digest, d('3'));
  assert.equal(selectPlatform(index, 'linux/arm64')?.digest, d('2'));
  assert.equal(selectPlatform(index, 'linux/arm/v7')?.digest, d('1'));
  assert.equal(selectPlatform(index, 'linux/s390x'), undefined);
});

test('manifests are classified and validated', () => {
  assert.equal(manifestKind({ mediaType: MT.dockerList, manifests: [] }), 'index');
  assert.equal(manifestKind({ schemaVersion: 2, config: {}, layers: [] }, 'application/json'), 'manifest');
  assert.throws(() => manifestKind({ schemaVersion: 1, fsLayers: [] }, 'application/vnd.docker.distribution.manifest.v1+prettyjws'), /schema 1/);
  assert.throws(() => parseManifest({ schemaVersion: 2, config: { mediaType: MT.ociConfig, digest: 'sha256:xyz', size: 1 }, layers: [] }), ContentInvalidError);
  assert.throws(() => parseManifest({ schemaVersion: 2, config: { mediaType: MT.ociConfig, digest: d('a'), size: -1 }, layers: [] }), ContentInvalidError);
  assert.throws(
    () => parseManifest({ schemaVersion: 2, config: { mediaType: MT.ociConfig, digest: d('a'), size: 1 }, layers: [{ mediaType: 'application/x-weird', digest: d('b'), size: 1 }] }),
    /unsupported layer media type/,
  );
  assert.equal(layerCompression(MT.dockerLayer), 'gzip');
  assert.equal(layerCompression(MT.ociLayerZstd), 'zstd');
  assert.equal(layerCompression(MT.ociLayer), 'none');
});

test('the config gives the runtime settings and the user', () => {
  const c = parseConfig(
    Buffer.from(
      JSON.stringify({
        os: 'linux',
        architecture: 'amd64',
        config: { User: '1000:1000', Env: ['A=1'], Entrypoint: ['/e'], Cmd: ['c'], WorkingDir: '/w', ExposedPorts: { '80/tcp': {} }, Labels: { a: 'b' } },
        rootfs: { type: 'layers', diff_ids: [d('c')] },
      }),
    ),
  );
  assert.deepEqual(c.runtime.exposedPorts, ['80/tcp']);
  assert.equal(c.runtime.workingDir, '/w');
  assert.deepEqual(userOf(c.runtime.user), { uid: 1000, username: '' });
  assert.deepEqual(userOf('nobody:nogroup'), { username: 'nobody' });
  assert.deepEqual(userOf(''), { username: '' });
  assert.throws(() => parseConfig(Buffer.from('{"os":"linux","architecture":"amd64"}')), /diff_ids/);
});
