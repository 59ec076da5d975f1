import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ImageOptionsError } from '../../../src/image/errors.js';
import { resolveImageStoreOptions } from '../../../src/image/options.js';

test('defaults are filled in', () => {
  const o = resolveImageStoreOptions({});
  assert.equal(o.root, '/var/lib/frakti/image');
  assert.equal(o.maxConcurrentDownloads, 3);
  assert.equal(o.maxRetries, 3);
  assert.deepEqual(o.insecureRegistries, []);
  assert.equal(o.syncLayers, true);
  assert.equal(o.platform, process.arch === 'x64' ? 'linux/amd64' : o.platform);
});

test('mirrors are normalised URLs', () => {
  const o = resolveImageStoreOptions({ mirrors: { 'docker.io': ['https://mirror.example.com/'] } });
  assert.deepEqual(o.mirrors['docker.io'], ['https://mirror.example.com']);
});

test('unknown keys and wrong values are refused, naming the key', () => {
  const bad: [unknown, string][] = [
    [{ maxConcurrentDownload: 3 }, 'maxConcurrentDownload'],
    [{ maxConcurrentDownloads: 0 }, 'maxConcurrentDownloads'],
    [{ maxConcurrentDownloads: 1.5 }, 'maxConcurrentDownloads'],
    [{ root: 'relative' }, 'root'],
    [{ insecureRegistries: 'x' }, 'insecureRegistries'],
    [{ mirrors: { 'docker.io': ['ftp://x'] } }, 'mirrors.docker.io'],
    [{ platform: 'amd64' }, 'platform'],
    [{ maxRetries: 11 }, 'maxRetries'],
    [{ syncLayers: 'yes' }, 'syncLayers'],
  ];
  for (const [opts, key] of bad) {
    assert.throws(
      () => resolveImageStoreOptions(opts as never),
      (e: unknown) => e instanceof ImageOptionsError && e.fields.key === key && e.message.includes(key),
      key,
    );
  }
});
