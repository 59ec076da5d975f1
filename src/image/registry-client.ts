// Distribution API client for one repository: resolves manifests and opens
// blob streams, over mirrors first and then the registry itself, with auth
// and retries. Plain HTTP only for loopback and configured insecure registries.
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { logger } from '../lib/log.js';
import { EndpointReport, classifyAttempt, movesOn } from './endpoint-errors.js';
import { ContentInvalidError, ImageNotFoundError, RegistryAuthError, RegistryError } from './errors.js';
import { httpRequest, readBody, type HttpResponse } from './http-request.js';
import { MANIFEST_ACCEPT, MAX_MANIFEST_BYTES } from './manifest.js';
import { DEFAULT_REGISTRY, formatReference, type ImageReference } from './reference.js';
import { authorize, parseChallenge } from './registry-auth.js';
import { withRetry, type RetryPolicy } from './retry.js';
import type { RegistryAuth } from './types.js';

const log = logger('registry');

export interface RegistryClientOptions {
  insecureRegistries: string[];
  mirrors: Record<string, string[]>;
  maxRetries: number;
  retryBaseDelayMs: number;
  requestTimeoutMs: number;
}

interface Endpoint {
  /** "https://registry-1.docker.io" or a mirror URL (maybe with a path prefix). */
  base: string;
  mirror: boolean;
  /** Authorization header learnt from this endpoint's challenge. */
  authorization?: string;
}

/** Loopback registries are plain HTTP, as Docker treats them. */
export function isLoopbackHost(registry: string): boolean {
  const host = registry.startsWith('[') ? registry.slice(1, registry.indexOf(']')) : registry.replace(/:\d+$/, '');
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export function registryBaseUrl(registry: string, insecure: string[]): string {
  if (registry === DEFAULT_REGISTRY) return 'https://registry-1.docker.io';
  const host = registry.replace(/:\d+$/, '');
  const plain = isLoopbackHost(registry) || insecure.includes(registry) || insecure.includes(host);
  return `${plain ? 'http' : 'https'}://${registry}`;
}

export interface FetchedManifest {
  body: Buffer;
  mediaType: string | undefined;
  digest: string;
}

export function sha256Digest(buf: Buffer): string {
  return `sha256:${createHash('sha256').update(buf).digest('hex')}`;
}

/** One pull's conversation with one repository. */
export class RegistrySession {
  private readonly endpoints: Endpoint[];
  private readonly retry: RetryPolicy;
  /** The endpoint that answered last; blobs are asked there first. */
  private preferred = 0;

  constructor(
    readonly ref: ImageReference,
    private readonly auth: RegistryAuth | undefined,
    private readonly opts: RegistryClientOptions,
    private readonly signal?: AbortSignal,
  ) {
    const mirrors = opts.mirrors[ref.registry] ?? [];
    this.endpoints = [...mirrors.map((base) => ({ base, mirror: true })), { base: registryBaseUrl(ref.registry, opts.insecureRegistries), mirror: false }];
    this.retry = {
      maxRetries: opts.maxRetries,
      baseDelayMs: opts.retryBaseDelayMs,
      onRetry: (attempt, delayMs, err) => log.warn('retrying registry request', { ref: formatReference(ref), attempt, delayMs, err: String(err) }),
      ...(signal ? { signal } : {}),
    };
  }

  private url(ep: Endpoint, path: string): string {
    return `${ep.base}/v2/${this.ref.repository}/${path}`;
  }

  /** How messages name an endpoint: "mirror https://mirror.local", "registry docker.io". */
  private label(ep: Endpoint): string {
    return ep.mirror ? `mirror ${ep.base}` : `registry ${this.ref.registry}`;
  }

  /** GET with auth: on a 401 the challenge is answered once and the request repeated. */
  private async get(ep: Endpoint, path: string, accept?: string): Promise<HttpResponse> {
    const send = () => {
      const headers: Record<string, string> = { 'User-Agent': 'frakti' };
      if (accept) headers.Accept = accept;
      if (ep.authorization) headers.Authorization = ep.authorization;
      return httpRequest(this.url(ep, path), { headers, timeoutMs: this.opts.requestTimeoutMs, ...(this.signal ? { signal: this.signal } : {}) });
    };
    let res = await send();
    if (res.status === 401) {
      res.body.resume();
      const challenge = parseChallenge(headerOf(res, 'www-authenticate'));
      if (!challenge) throw new RegistryAuthError(`${this.label(ep)} asked for authentication without a usable challenge`, { registry: this.ref.registry });
      ep.authorization = await authorize(challenge, this.auth, {
        registry: this.ref.registry,
        scope: `repository:${this.ref.repository}:pull`,
        timeoutMs: this.opts.requestTimeoutMs,
        ...(this.signal ? { signal: this.signal } : {}),
      });
      res = await send();
      if (res.status === 401 || res.status === 403) {
        res.body.resume();
        throw new RegistryAuthError(`${this.label(ep)} refused access to ${this.ref.repository} (${res.status}): wrong or missing credentials`, {
          registry: this.ref.registry,
          status: res.status,
        });
      }
    } else if (res.status === 403) {
      res.body.resume();
      throw new RegistryAuthError(`${this.label(ep)} denied access to ${this.ref.repository} (403)`, { registry: this.ref.registry, status: 403 });
    }
    return res;
  }

  /**
   * Tries each endpoint in turn (the one that answered last first, then
   * mirrors before the registry), each with retries. An endpoint that cannot
   * be reached or answers an error is skipped; any other failure (bad
   * content, a layer that does not unpack, a full disk) ends the request
   * there (see endpoint-errors.ts). The error names every endpoint tried.
   */
  private async eachEndpoint<T>(what: string, fn: (ep: Endpoint) => Promise<T>): Promise<T> {
    const order = [this.preferred, ...this.endpoints.map((_, i) => i).filter((i) => i !== this.preferred)];
    const report = new EndpointReport(`${what} of ${formatReference(this.ref)}`, this.endpoints.length);
    for (const i of order) {
      const ep = this.endpoints[i]!;
      const label = this.label(ep);
      try {
        const out = await withRetry(this.retry, () => fn(ep).catch((err: unknown) => Promise.reject(classifyAttempt(err, label, what))));
        this.preferred = i;
        return out;
      } catch (err) {
        if (this.signal?.aborted) throw err;
        if (!movesOn(err)) throw report.stop(err, label);
        report.add(label, err, !ep.mirror);
        log.info('endpoint failed, trying the next', { endpoint: label, what, err: String(err) });
      }
    }
    throw report.exhausted();
  }

  /** Fetches a manifest or index by tag or digest; a digest reference is verified against the bytes. */
  async fetchManifest(reference: string): Promise<FetchedManifest> {
    return this.eachEndpoint(`manifest ${reference}`, async (ep) => {
      const res = await this.get(ep, `manifests/${reference}`, MANIFEST_ACCEPT);
      if (res.status === 404) {
        res.body.resume();
        throw new ImageNotFoundError(`${formatReference({ ...this.ref, tag: undefined, digest: undefined })}${reference.startsWith('sha256:') ? '@' : ':'}${reference}`);
      }
      if (res.status !== 200) {
        res.body.resume();
        throw new RegistryError(`${this.label(ep)} answered ${res.status} for manifest ${reference}`, { status: res.status });
      }
      const declared = Number(headerOf(res, 'content-length'));
      if (Number.isFinite(declared) && declared > MAX_MANIFEST_BYTES) {
        res.body.destroy();
        throw new ContentInvalidError(`manifest ${reference} is ${declared} bytes, more than ${MAX_MANIFEST_BYTES}`);
      }
      const body = await readBody(res.body, MAX_MANIFEST_BYTES, `manifest ${reference}`);
      const digest = sha256Digest(body);
      if (reference.startsWith('sha256:') && digest !== reference) throw new ContentInvalidError(`manifest ${reference} has digest ${digest}`, { expected: reference, actual: digest });
      const claimed = headerOf(res, 'docker-content-digest');
      if (claimed && claimed.startsWith('sha256:') && claimed !== digest) throw new ContentInvalidError(`manifest ${reference}: registry claims ${claimed}, content is ${digest}`);
      return { body, mediaType: headerOf(res, 'content-type'), digest };
    });
  }

  /** Fetches a small blob (a config) whole, verified. */
  async fetchSmallBlob(digest: string, size: number, maxBytes: number): Promise<Buffer> {
    if (size > maxBytes) throw new ContentInvalidError(`blob ${digest} is ${size} bytes, more than ${maxBytes}`);
    return this.eachEndpoint(`blob ${digest}`, async (ep) => {
      const res = await this.openBlobAt(ep, digest);
      const body = await readBody(res, maxBytes, `blob ${digest}`);
      if (body.length !== size) throw new ContentInvalidError(`blob ${digest} is ${body.length} bytes, descriptor says ${size}`);
      const actual = sha256Digest(body);
      if (actual !== digest) throw new ContentInvalidError(`blob ${digest} has digest ${actual}`, { expected: digest, actual });
      return body;
    });
  }

  private async openBlobAt(ep: Endpoint, digest: string): Promise<Readable> {
    const res = await this.get(ep, `blobs/${digest}`);
    if (res.status === 404) {
      res.body.resume();
      throw new RegistryError(`${this.label(ep)} has no blob ${digest} in ${this.ref.repository}`, { status: 404, digest });
    }
    if (res.status !== 200) {
      res.body.resume();
      throw new RegistryError(`${this.label(ep)} answered ${res.status} for blob ${digest}`, { status: res.status, digest });
    }
    return res.body;
  }

  /**
   * Streams a blob through `consume` (which must verify it). The whole
   * attempt (open + consume) is retried on transient errors, and moves on to
   * the next endpoint when a mirror fails.
   */
  async withBlob<T>(digest: string, consume: (body: Readable) => Promise<T>): Promise<T> {
    return this.eachEndpoint(`blob ${digest}`, async (ep) => {
      const body = await this.openBlobAt(ep, digest);
      try {
        return await consume(body);
      } catch (err) {
        body.destroy();
        throw err;
      }
    });
  }
}

function headerOf(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
