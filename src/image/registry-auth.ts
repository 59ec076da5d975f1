// Registry authentication: WWW-Authenticate challenges, bearer tokens from
// the token service (with basic credentials or an OAuth2 refresh token), and
// basic auth; fed by the CRI AuthConfig fields.
import { RegistryAuthError } from './errors.js';
import { httpRequest, readBody } from './http-request.js';
import type { RegistryAuth } from './types.js';

const MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024;
const MAX_CHALLENGE_LENGTH = 4096;

export interface Challenge {
  scheme: 'bearer' | 'basic';
  params: Record<string, string>;
}

/** Parses `Bearer realm="...",service="...",scope="..."` (or Basic). Other schemes give undefined. */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header || header.length > MAX_CHALLENGE_LENGTH) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'bearer' && scheme !== 'basic') return undefined;
  const params: Record<string, string> = {};
  const re = /([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[2]!)) !== null) params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
  return { scheme, params };
}

/** username/password from the explicit fields or from `auth` (base64 "user:pass"). */
export function basicCredentials(auth: RegistryAuth | undefined): { username: string; password: string } | undefined {
  if (!auth) return undefined;
  if (auth.username) return { username: auth.username, password: auth.password ?? '' };
  if (auth.auth) {
    const decoded = Buffer.from(auth.auth, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i <= 0) throw new RegistryAuthError('auth credentials are not base64 of "username:password"');
    return { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
  }
  return undefined;
}

function basicHeader(c: { username: string; password: string }): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

export interface TokenRequestContext {
  registry: string;
  scope: string;
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * The Authorization header that answers `challenge`. Bearer: a registry token
 * is used as is; otherwise the token service is asked (anonymously when no
 * credentials are given, which public registries allow for pulls).
 */
export async function authorize(challenge: Challenge, auth: RegistryAuth | undefined, ctx: TokenRequestContext): Promise<string> {
  if (challenge.scheme === 'basic') {
    const c = basicCredentials(auth);
    if (!c) throw new RegistryAuthError(`registry ${ctx.registry} requires credentials`, { registry: ctx.registry });
    return basicHeader(c);
  }
  if (auth?.registryToken) return `Bearer ${auth.registryToken}`;
  const realm = challenge.params.realm;
  if (!realm) throw new RegistryAuthError(`registry ${ctx.registry} sent a bearer challenge without a realm`, { registry: ctx.registry });
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    throw new RegistryAuthError(`registry ${ctx.registry} sent an invalid token realm`, { registry: ctx.registry });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new RegistryAuthError(`token realm of ${ctx.registry} is not http(s)`, { registry: ctx.registry });
  const service = challenge.params.service;
  const scope = challenge.params.scope ?? ctx.scope;
  const creds = basicCredentials(auth);
  let res;
  if (auth?.identityToken) {
    // OAuth2 refresh-token grant, as Docker does with an identity token.
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: auth.identityToken, client_id: 'frakti', scope });
    if (service) form.set('service', service);
    res = await httpRequest(url.toString(), {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: form.toString(),
      timeoutMs: ctx.timeoutMs,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    });
  } else {
    if (service) url.searchParams.set('service', service);
    url.searchParams.set('scope', scope);
    const headers: Record<string, string> = {};
    if (creds) headers.Authorization = basicHeader(creds);
    res = await httpRequest(url.toString(), { headers, timeoutMs: ctx.timeoutMs, ...(ctx.signal ? { signal: ctx.signal } : {}) });
  }
  const body = await readBody(res.body, MAX_TOKEN_RESPONSE_BYTES, 'token response');
  if (res.status === 401 || res.status === 403) {
    throw new RegistryAuthError(`registry ${ctx.registry} refused the credentials${creds ? ` of user '${creds.username}'` : ''} (token service answered ${res.status})`, {
      registry: ctx.registry,
      status: res.status,
    });
  }
  if (res.status !== 200) throw new RegistryAuthError(`token service of ${ctx.registry} answered ${res.status}`, { registry: ctx.registry, status: res.status });
  let token: unknown;
  try {
    const doc = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    token = doc.token ?? doc.access_token;
  } catch {
    /* fall through */
  }
  if (typeof token !== 'string' || token === '' || token.length > 64 * 1024) throw new RegistryAuthError(`token service of ${ctx.registry} sent no token`, { registry: ctx.registry });
  return `Bearer ${token}`;
}
