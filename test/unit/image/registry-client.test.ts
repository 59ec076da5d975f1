// The token flow against a fake registry + token service (the real registry
// of the integration tests only does basic auth): anonymous tokens, basic
// credentials at the token service, OAuth2 refresh (identity token), and a
// registry token used as is.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { ContentInvalidError, ImageNotFoundError, RegistryAuthError, RegistryUnreachableError, UnsafeLayerEntryError } from '../../../src/image/errors.js';
import { parseReference } from '../../../src/image/reference.js';
import { RegistrySession, sha256Digest } from '../../../src/image/registry-client.js';
import { freePort } from '../../helpers/image-registry.js';

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

// --- mirrors: which failures move on to the next endpoint, and what the error says ---

interface Fake {
  url: string;
  host: string;
  requests: string[];
  close(): Promise<void>;
}

/** A registry endpoint that answers every request with `answer`. */
async function fakeEndpoint(answer: (res: http.ServerResponse, path: string) => void): Promise<Fake> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '/');
    answer(res, req.url ?? '/');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url: `http://${host}`, host, requests, close: () => new Promise((r) => server.close(() => r())) };
}

const serveManifest = (res: http.ServerResponse) =>
  res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json', 'Docker-Content-Digest': sha256Digest(MANIFEST) }).end(MANIFEST);

/** A loopback address nothing listens on: connections are refused at once. */
async function deadHost(): Promise<string> {
  return `127.0.0.1:${await freePort()}`;
}

function session(registry: string, mirrors: string[]): RegistrySession {
  return new RegistrySession(parseReference(`${registry}/lib/app:1`), undefined, { ...OPTS, mirrors: { [registry]: mirrors } });
}

test('a mirror that answers an error, then an unreachable registry: the error names both and says the registry cannot be reached', async (t) => {
  const mirror = await fakeEndpoint((res) => res.writeHead(500).end());
  t.after(() => mirror.close());
  const registry = await deadHost();
  await assert.rejects(session(registry, [mirror.url]).fetchManifest('1'), (e: unknown) => {
    assert.ok(e instanceof RegistryUnreachableError, `got ${String(e)}`);
    assert.equal(e.code, 'REGISTRY_UNREACHABLE');
    assert.match(e.message, new RegExp(`every endpoint failed: mirror ${mirror.url}: ${mirror.host} answered 500; cannot reach registry ${registry} for manifest 1: connect ECONNREFUSED`));
    assert.equal((e.fields.endpoints as string[]).length, 2);
    return true;
  });
});

test('bad content at a mirror ends the request there: the registry is not asked, the cause is kept', async (t) => {
  const mirror = await fakeEndpoint((res) => res.writeHead(200, { 'Docker-Content-Digest': sha256Digest(Buffer.from('other')) }).end(MANIFEST));
  const registry = await fakeEndpoint(serveManifest);
  t.after(() => Promise.all([mirror.close(), registry.close()]));
  await assert.rejects(session(registry.host, [mirror.url]).fetchManifest('1'), (e: unknown) => {
    assert.ok(e instanceof ContentInvalidError, `got ${String(e)}`);
    assert.match(e.message, new RegExp(`registry claims sha256:[0-9a-f]+, content is ${sha256Digest(MANIFEST)} \\(at mirror ${mirror.url}\\)`));
    return true;
  });
  assert.deepEqual(registry.requests, []);
  // The same for a blob whose consumer refuses what it got (a layer that does not unpack).
  const blobs = session(registry.host, [mirror.url]);
  await assert.rejects(
    blobs.withBlob(sha256Digest(MANIFEST), async (body) => {
      body.resume();
      throw new UnsafeLayerEntryError('../x', 'climbs out');
    }),
    (e: unknown) => e instanceof UnsafeLayerEntryError && e.message === `layer entry '../x' refused: climbs out (at mirror ${mirror.url})`,
  );
  assert.deepEqual(registry.requests, []);
});

test('a mirror that cannot be reached or lacks the image is skipped; the registry answers', async (t) => {
  const lacking = await fakeEndpoint((res) => res.writeHead(404).end());
  const registry = await fakeEndpoint(serveManifest);
  t.after(() => Promise.all([lacking.close(), registry.close()]));
  const m = await session(registry.host, [`http://${await deadHost()}`, lacking.url]).fetchManifest('1');
  assert.equal(m.digest, sha256Digest(MANIFEST));
  assert.equal(lacking.requests.length, 1);
  const missing = await fakeEndpoint((res) => res.writeHead(404).end());
  t.after(() => missing.close());
  await assert.rejects(session(missing.host, [lacking.url]).fetchManifest('1'), (e: unknown) => {
    assert.ok(e instanceof ImageNotFoundError, `the registry's answer decides: ${String(e)}`);
    assert.match(e.message, new RegExp(`mirror ${lacking.url}: no such image: .*; registry ${missing.host}: no such image`));
    return true;
  });
});

test('the report of many failed endpoints is bounded', async () => {
  const mirrors = await Promise.all(Array.from({ length: 20 }, async () => `http://${await deadHost()}`));
  await assert.rejects(session(await deadHost(), mirrors).fetchManifest('1'), (e: unknown) => {
    assert.ok(e instanceof RegistryUnreachableError);
    assert.match(e.message, /; and 13 more$/);
    assert.ok(e.message.length < 8 * 320 + 200, `${e.message.length} characters`);
    return true;
  });
});
