// One HTTP(S) request with bounded waits, manual redirects (Authorization is
// dropped when a redirect leaves the host) and bounded reads of small bodies.
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { RegistryError } from './errors.js';
import { TransientError, isTransientStatus } from './retry.js';

const MAX_REDIRECTS = 5;
const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });
const httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 32 });

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The final URL after redirects. */
  url: string;
  body: http.IncomingMessage;
}

export interface HttpRequestOptions {
  method?: 'GET' | 'HEAD' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  /** Bound on connect, on headers and on any silence of the body. */
  timeoutMs: number;
  signal?: AbortSignal;
}

function once(url: URL, opts: HttpRequestOptions, headers: Record<string, string>): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http;
    // The abort listener is ours and is removed when the exchange ends: handing
    // the signal to http.request leaves it attached to a pooled keep-alive
    // socket, where a late abort is an error nobody listens to.
    const signal = opts.signal;
    if (signal?.aborted) return reject(new DOMException('the pull was cancelled', 'AbortError'));
    const onAbort = () => req.destroy(new DOMException('the pull was cancelled', 'AbortError'));
    const detach = () => signal?.removeEventListener('abort', onAbort);
    const req = mod.request(
      url,
      { method: opts.method ?? 'GET', headers, agent: url.protocol === 'https:' ? httpsAgent : httpAgent, timeout: opts.timeoutMs },
      (res) => {
        // The same idle bound applies while the body streams.
        res.socket?.setTimeout(opts.timeoutMs);
        res.once('close', detach);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, url: url.toString(), body: res });
      },
    );
    signal?.addEventListener('abort', onAbort, { once: true });
    // An errno-style error, so that it is classified with the other failures to connect (and retried).
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer from ${url.host} within ${opts.timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', (err) => {
      detach();
      reject(err);
    });
    req.end(opts.body);
  });
}

/** Sends the request, following redirects. Transient statuses (5xx, 429) become TransientError. */
export async function httpRequest(urlStr: string, opts: HttpRequestOptions): Promise<HttpResponse> {
  let url = new URL(urlStr);
  const origin = url.host;
  let headers = { ...(opts.headers ?? {}) };
  for (let hop = 0; ; hop++) {
    const res = await once(url, opts, headers);
    if ([301, 302, 303, 307, 308].includes(res.status) && res.headers.location) {
      res.body.resume();
      if (hop >= MAX_REDIRECTS) throw new RegistryError(`more than ${MAX_REDIRECTS} redirects from ${urlStr}`, { url: urlStr });
      const next = new URL(res.headers.location, url);
      if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new RegistryError(`redirect to unsupported URL ${next.protocol}`, { url: urlStr });
      if (next.host !== origin) {
        headers = { ...headers };
        delete headers.Authorization;
      }
      url = next;
      continue;
    }
    if (isTransientStatus(res.status)) {
      res.body.resume();
      const ra = Number(res.headers['retry-after']);
      throw new TransientError(`${url.host} answered ${res.status}`, { status: res.status, url: url.toString() }, undefined, Number.isFinite(ra) && ra >= 0 ? ra * 1000 : undefined);
    }
    return res;
  }
}

/** Reads a whole body, refusing more than maxBytes. */
export async function readBody(body: Readable, maxBytes: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of body) {
    n += (chunk as Buffer).length;
    if (n > maxBytes) {
      body.destroy();
      throw new RegistryError(`${what} is larger than ${maxBytes} bytes`, { maxBytes });
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, n);
}
