import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidReferenceError } from '../../../src/image/errors.js';
import { formatReference, parseReference } from '../../../src/image/reference.js';

const D = `sha256:${'a'.repeat(64)}`;

test('references are normalised as Docker does', () => {
  const cases: [string, string][] = [
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['me/app', 'docker.io/me/app:latest'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest'],
    ['index.docker.io/library/busybox:x', 'docker.io/library/busybox:x'],
    ['localhost/app', 'localhost/app:latest'],
    ['localhost:5000/a/b/c:v1.2-rc_3', 'localhost:5000/a/b/c:v1.2-rc_3'],
    ['127.0.0.1:5000/busybox', '127.0.0.1:5000/busybox:latest'],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`],
    [`quay.io/x/y:t@${D}`, `quay.io/x/y:t@${D}`],
    ['registry.k8s.io/pause:3.9', 'registry.k8s.io/pause:3.9'],
    ['a__b/c.d-e', 'docker.io/a__b/c.d-e:latest'],
  ];
  for (const [input, want] of cases) assert.equal(formatReference(parseReference(input)), want, input);
});

test('invalid references are refused with a reason', () => {
  for (const bad of ['', 'Busybox', 'busybox:', 'busybox@sha256:abc', 'a//b', '-a', 'a:b:c', 'host:99999999/x', `busybox@md5:${'a'.repeat(32)}`, 'a/../b', 'x:' + 't'.repeat(200), 'a'.repeat(64)]) {
    assert.throws(() => parseReference(bad), InvalidReferenceError, JSON.stringify(bad));
  }
});
