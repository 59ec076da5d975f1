// A Kubernetes-style streaming client for tests: the HTTP upgrade to
// SPDY/3.1 done by hand, the SPDY itself by spdy-transport (an independent
// implementation, so a mistake in our framing or header compression shows).
import { createRequire } from 'node:module';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const transport: any = require('spdy-transport');

export interface UpgradeResult {
  status: number;
  headers: Record<string, string[]>;
  body: string;
  socket: Socket;
  rest: Buffer;
}

/** Sends the upgrade request and reads the response head (and, when not 101, the body). */
export async function upgradeRequest(url: string, headers: Array<[string, string]>): Promise<UpgradeResult> {
  const u = new URL(url);
  const socket = connect({ host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const lines = [`POST ${u.pathname} HTTP/1.1`, `Host: ${u.host}`, 'Content-Length: 0', ...headers.map(([k, v]) => `${k}: ${v}`)];
  socket.write(lines.join('\r\n') + '\r\n\r\n');
  let buf = Buffer.alloc(0);
  const head = await new Promise<string>((resolve, reject) => {
    const onData = (b: Buffer) => {
      buf = Buffer.concat([buf, b]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.pause();
      const h = buf.subarray(0, end).toString('latin1');
      buf = buf.subarray(end + 4);
      resolve(h);
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed before a response')));
  });
  const [statusLine, ...rest] = head.split('\r\n');
  const status = Number(statusLine!.split(' ')[1]);
  const out: Record<string, string[]> = {};
  for (const l of rest) {
    const i = l.indexOf(':');
    const k = l.slice(0, i).trim().toLowerCase();
    (out[k] ??= []).push(l.slice(i + 1).trim());
  }
  let body = '';
  if (status !== 101) {
    const len = Number(out['content-length']?.[0] ?? 0);
    socket.resume();
    while (buf.length < len) buf = Buffer.concat([buf, await new Promise<Buffer>((r) => socket.once('data', r))]);
    body = buf.subarray(0, len).toString('utf8');
    socket.destroy();
  }
  return { status, headers: out, body, socket, rest: buf };
}

/* eslint-disable @typescript-eslint/no-explicit-any */
export interface SpdyClient {
  /** Opens a stream with these headers; resolves once the server replied. */
  open(headers: Record<string, string>): Promise<Duplex>;
  close(): void;
  closed: Promise<void>;
}

/** Upgrades `url` to SPDY/3.1 offering `protocols`; fails unless the server switches. */
export async function spdyConnect(url: string, protocols: string[]): Promise<{ client: SpdyClient; protocol: string }> {
  const r = await upgradeRequest(url, [['Connection', 'Upgrade'], ['Upgrade', 'SPDY/3.1'], ...protocols.map((p) => ['X-Stream-Protocol-Version', p] as [string, string])]);
  if (r.status !== 101) throw new Error(`upgrade refused: ${r.status} ${r.body.trim()}`);
  if (r.rest.length > 0) r.socket.unshift(r.rest);
  r.socket.resume();
  const conn = transport.connection.create(r.socket, { protocol: 'spdy', isServer: false });
  conn.start(3.1);
  conn.on('error', () => {});
  const closed = new Promise<void>((resolve) => r.socket.once('close', () => resolve()));
  return {
    protocol: r.headers['x-stream-protocol-version']?.[0] ?? '',
    client: {
      open: (headers) =>
        new Promise((resolve, reject) => {
          const s = conn.request({ method: 'POST', path: '/', headers }, (err: Error | null) => {
            if (err) return reject(err);
            s.once('response', () => resolve(s));
          });
          // Kubernetes' Go SPDY servers (containerd's streaming server, the
          // kubelet's) reply without :status, as kubectl expects; spdy-transport
          // would reset such a stream, so a reply without one is taken as 200.
          const handle = (s as any)._handleResponse;
          (s as any)._handleResponse = function (this: unknown, frame: { headers: Record<string, string> }) {
            if (frame.headers[':status'] === undefined) frame.headers[':status'] = '200';
            return handle.call(this, frame);
          };
          s.on('error', (err: Error) => reject(err));
          s.once('close', () => reject(new Error('stream closed before the reply')));
        }),
      close: () => r.socket.destroy(),
      closed,
    },
  };
}

/** Everything a readable gives until it ends (or the connection goes). */
export function readAll(s: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    s.on('data', (b: Buffer) => parts.push(Buffer.from(b)));
    const done = () => resolve(Buffer.concat(parts).toString('utf8'));
    s.once('end', done);
    s.once('close', done);
  });
}
