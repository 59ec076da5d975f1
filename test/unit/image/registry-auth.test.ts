import assert from 'node:assert/strict';
import { test } from 'node:test';
import { basicCredentials, parseChallenge } from '../../../src/image/registry-auth.js';
import { isLoopbackHost, registryBaseUrl } from '../../../src/image/registry-client.js';

test('WWW-Authenticate challenges are parsed', () => {
  assert.deepEqual(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"'), {
    scheme: 'bearer',
    params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' },
  });
  assert.deepEqual(parseChallenge('Basic realm="frakti-test"'), { scheme: 'basic', params: { realm: 'frakti-test' } });
  assert.equal(parseChallenge('Negotiate abc'), undefined);
  assert.equal(parseChallenge(undefined), undefined);
});

test('credentials come from username/password or from auth', () => {
  assert.deepEqual(basicCredentials({ username: 'u', password: 'p' }), { username: 'u', password: 'p' });
  assert.deepEqual(basicCredentials({ auth: Buffer.from('u:p:q').toString('base64') }), { username: 'u', password: 'p:q' });
  assert.equal(basicCredentials({}), undefined);
  assert.throws(() => basicCredentials({ auth: Buffer.from('nocolon').toString('base64') }), /username:password/);
});

test('loopback registries speak HTTP, others HTTPS unless insecure', () => {
  assert.ok(isLoopbackHost('127.0.0.1:5000') && isLoopbackHost('127.1.2.3') && isLoopbackHost('localhost:80') && isLoopbackHost('[::1]:5000'));
  assert.ok(!isLoopbackHost('10.0.0.1:5000') && !isLoopbackHost('localhost.evil.com'));
  assert.equal(registryBaseUrl('docker.io', []), 'https://registry-1.docker.io');
  assert.equal(registryBaseUrl('127.0.0.1:5000', []), 'http://127.0.0.1:5000');
  assert.equal(registryBaseUrl('reg.local:5000', []), 'https://reg.local:5000');
  assert.equal(registryBaseUrl('reg.local:5000', ['reg.local:5000']), 'http://reg.local:5000');
  assert.equal(registryBaseUrl('reg.local:5000', ['reg.local']), 'http://reg.local:5000');
});
