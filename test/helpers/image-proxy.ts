// A small HTTP proxy in front of a test registry, used as a registry mirror:
// it counts requests and can fail, corrupt or slow down chosen ones, so tests
// can check sharing, retries, mirrors and a kill in the middle of a pull.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProxyRule {
  /** Which requests (path) the rule applies to. */
  match: RegExp;
  /** Answer this status instead of forwarding, for the first `times` matching requests. */
  status?: number;
  times?: number;
  /** Flip one byte of the body (a corrupt blob). */
  corrupt?: boolean;
  /** Forward the body at this rate. */
  bytesPerSecond?: number;
}

export interface Proxy {
  /** "http://127.0.0.1:PORT": use as a mirror endpoint. */
  url: string;
  /** Paths requested so far, in order (GET and HEAD). */
  requests: string[];
  /** Bytes of bodies forwarded so far. */
  bytesOut(): number;
  stop(): Promise<void>;
}

export async function startProxy(upstreamHost: string, rules: ProxyRule[] = []): Promise<Proxy> {
  const requests: string[] = [];
  const hits = new Map<ProxyRule, number>();
  let out = 0;
  const server = http.createServer((req, res) => {
    const path = req.url ?? '/';
    requests.push(`${req.method} ${path}`);
    const rule = rules.find((r) => r.match.test(path));
    if (rule?.status) {
      const n = hits.get(rule) ?? 0;
      if (rule.times === undefined || n < rule.times) {
        hits.set(rule, n + 1);
        res.writeHead(rule.status, { 'Content-Type': 'text/plain' }).end('injected failure\n');
        return;
      }
    }
    const up = http.request({ host: upstreamHost.split(':')[0], port: Number(upstreamHost.split(':')[1]), path, method: req.method, headers: { ...req.headers, host: upstreamHost } }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      let flipped = false;
      ur.on('data', (chunk: Buffer) => {
        if (rule?.corrupt && !flipped && chunk.length > 0) {
          chunk = Buffer.from(chunk);
          chunk[chunk.length >> 1] = chunk[chunk.length >> 1]! ^ 0xff;
          flipped = true;
        }
        out += chunk.length;
        const more = res.write(chunk);
        if (rule?.bytesPerSecond) {
          ur.pause();
          setTimeout(() => ur.resume(), Math.ceil((chunk.length / rule.bytesPerSecond) * 1000));
        } else if (!more) {
          ur.pause();
          res.once('drain', () => ur.resume());
        }
      });
      ur.on('end', () => res.end());
      ur.on('error', () => res.destroy());
    });
    up.on('error', () => res.writeHead(502).end());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    bytesOut: () => out,
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
