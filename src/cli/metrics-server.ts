// The Prometheus endpoint of the daemon: GET /metrics in the text
// exposition format, nothing else. It is its own HTTP listener (never the
// CRI socket), off unless --metrics-address is given, and loopback unless
// the address names another host.
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { logger } from '../lib/log.js';
import { errorMessage } from '../lib/errors.js';

const log = logger('daemon');
/** Scrapes at once; Prometheus sends one at a time per target. */
const MAX_CONNECTIONS = 16;
/** A scrape that takes longer is cut: a hung collector must not pile up sockets. */
const REQUEST_TIMEOUT_MS = 10_000;

export interface MetricsServer {
  /** "http://HOST:PORT/metrics". */
  url: string;
  stop(): Promise<void>;
}

export async function serveMetrics(registry: Registry, where: { host: string; port: number }): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: only GET /metrics is served here\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err) => {
        log.warn('metrics collection failed', { err: errorMessage(err) });
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n');
      },
    );
  });
  server.maxConnections = MAX_CONNECTIONS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(where.port, where.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.warn('metrics server error', { err: errorMessage(err) }));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : where.port;
  const host = where.host.includes(':') ? `[${where.host}]` : where.host;
  return {
    url: `http://${host}:${port}/metrics`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
