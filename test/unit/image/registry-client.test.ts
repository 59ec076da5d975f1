// The token flow against a fake registry + token service (the real registry
// of the integration tests only does basic auth): anonymous tokens, basic
// credentials at the token service, OAuth2 refresh (identity token), and a
// registry token used as is.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { RegistryAuthError } from '../../../src/image/errors.js';
import { parseReference } from '../../../src/image/reference.js';
import { RegistrySession, sha256Digest } from '../../../src/image/registry-client.js';

const MANIFEST = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: {}, layers: [] }));

async function fakeRegistry(): Promise<{ host: string; tokenRequests: string[]; close(): Promise<void> }> {
  const tokenRequests: string[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/token') {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const basic = req.headers.authorization?.startsWith('Basic ') ? Buffer.from(req.headers.authorization.slice(6), 'base64').toString() : '';
        const form = new URLSearchParams(body);
        tokenRequests.push(`${req.method} scope=${url.searchParams.get('scope') ?? form.get('scope')} service=${url.searchParams.get('service') ?? form.get('service')} basic=${basic} refresh=${form.get('refresh_token') ?? ''}`);
        if (basic && basic !== 'alice:pw') return res.writeHead(401).end();
        if (req.method === 'POST' && form.get('refresh_token') !== 'idtok') return res.writeHead(401).end();
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(req.method === 'POST' ? { access_token: 'tok-oauth' } : { token: basic ? 'tok-user' : 'tok-anon' }));
      });
      return;
    }
    const authz = req.headers.authorization ?? '';
    if (!/^Bearer (tok-anon|tok-user|tok-oauth|given)$/.test(authz)) {
      const port = (server.address() as AddressInfo).port;
      res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="http://127.0.0.1:${port}/token",service="fake",scope="repository:lib/app:pull"` }).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json', 'Docker-Content-Digest': sha256Digest(MANIFEST) }).end(MANIFEST);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { host: `127.0.0.1:${(server.address() as AddressInfo).port}`, tokenRequests, close: () => new Promise((r) => server.close(() => r())) };
}

const OPTS = { insecureRegistries: [], mirrors: {}, maxRetries: 0, retryBaseDelayMs: 1, requestTimeoutMs: 5000 };

test('bearer tokens: anonymous, with basic credentials, by refresh token, or given', async (t) => {
  const fake = await fakeRegistry();
  t.after(() => fake.close());
  const ref = parseReference(`${fake.host}/lib/app:1`);
  const anon = await new RegistrySession(ref, undefined, OPTS).fetchManifest('1');
  assert.equal(anon.digest, sha256Digest(MANIFEST));
  await new RegistrySession(ref, { username: 'alice', password: 'pw' }, OPTS).fetchManifest('1');
  await new RegistrySession(ref, { identityToken: 'idtok' }, OPTS).fetchManifest('1');
  await new RegistrySession(ref, { registryToken: 'given' }, OPTS).fetchManifest('1');
  assert.deepEqual(fake.tokenRequests, [
    'GET scope=repository:lib/app:pull service=fake basic= refresh=',
    'GET scope=repository:lib/app:pull service=fake basic=alice:pw refresh=',
    'POST scope=repository:lib/app:pull service=fake basic= refresh=idtok',
  ]);
  await assert.rejects(new RegistrySession(ref, { username: 'alice', password: 'bad' }, OPTS).fetchManifest('1'), RegistryAuthError);
  await assert.rejects(new RegistrySession(ref, { identityToken: 'stale' }, OPTS).fetchManifest('1'), RegistryAuthError);
});
