// Kubernetes' port-forward protocol (portforward.k8s.io) over SPDY. Each
// forwarded connection is a pair of streams with the same `requestID`
// header (older clients send none: the ids of the pair are then n and n+2):
// `streamType: error` and `streamType: data`, both naming the `port`. The
// data stream carries the bytes both ways; a failure is told on the error
// stream as JSON {closeConnection, message}, as kubelet does.
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorMessage } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import type { SpdyConnection, SpdyStream } from './spdy-connection.js';
import type { StreamCollector } from './stream-collector.js';

const log = logger('stream');

export const PORT_FORWARD_PROTOCOLS = ['portforward.k8s.io'];

interface Pair {
  error?: SpdyStream;
  data?: SpdyStream;
  timer: NodeJS.Timeout;
}

function portOf(s: SpdyStream): number | undefined {
  const v = s.header('port') ?? '';
  const n = Number(v);
  return /^\d{1,5}$/.test(v) && n >= 1 && n <= 65535 ? n : undefined;
}

function requestIdOf(s: SpdyStream, type: string): string {
  return s.header('requestid') ?? String(type === 'error' ? s.id : s.id - 2);
}

function tellError(s: SpdyStream, message: string, closeConnection: boolean): void {
  if (s.destroyed || s.writableEnded) return;
  s.end(JSON.stringify({ closeConnection, message }) + '\n');
}

/**
 * Copies between a forwarded connection's data channel and the pod's port
 * until they are done; the message of the first failure, if any. With
 * half-close (SPDY) each direction ends on its own; without it (WebSocket,
 * where the client cannot end one channel) the port's end is the end.
 */
export async function copyBothWays(data: Duplex, target: Duplex, halfClose: boolean): Promise<string | undefined> {
  const up = pipeline(data, target);
  const down = pipeline(target, data);
  if (!halfClose) up.catch(() => {}); // ends when the port's side is destroyed below
  const results = await Promise.allSettled(halfClose ? [up, down] : [down]);
  target.destroy();
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  return failed ? errorMessage(failed.reason) : undefined;
}

/** Serves the forwarded connections of one client until it closes. */
export async function servePortForward(
  conn: SpdyConnection,
  streams: StreamCollector,
  podId: string,
  connect: (port: number) => Promise<Duplex>,
  streamCreationTimeoutMs: number,
): Promise<void> {
  const pairs = new Map<string, Pair>();
  const forward = async (port: number, p: Pair) => {
    const data = p.data!;
    const error = p.error!;
    error.resume(); // the client sends nothing here; its end must not stall the socket
    let target: Duplex;
    try {
      target = await connect(port);
    } catch (err) {
      tellError(error, `error forwarding port ${port} to pod ${podId}: ${errorMessage(err)}`, false);
      data.destroy();
      return;
    }
    // Each direction ends on its own: the client's FIN closes our write side to the port and the reverse.
    const failure = await copyBothWays(data, target, true);
    if (failure !== undefined && !conn.isClosed) {
      log.debug('port forward ended with an error', { pod: podId, port, err: failure });
      tellError(error, `error forwarding port ${port} to pod ${podId}: ${failure}`, false);
    } else if (!error.writableEnded) error.end();
  };

  for (;;) {
    const s = await streams.next();
    if (!s) break;
    const type = s.header('streamtype') ?? '';
    const port = portOf(s);
    if ((type !== 'error' && type !== 'data') || port === undefined) {
      log.warn('refused a port-forward stream', { stream_type: type, port: s.header('port') });
      s.destroy();
      continue;
    }
    const id = requestIdOf(s, type);
    let p = pairs.get(id);
    if (!p) {
      const timer = setTimeout(() => {
        pairs.delete(id);
        if (p!.error) tellError(p!.error, `timed out waiting for the other stream of request ${id}`, false);
        else p!.data?.destroy();
      }, streamCreationTimeoutMs);
      p = { timer };
      pairs.set(id, p);
    }
    if (p[type as 'error' | 'data']) {
      log.warn('refused a port-forward stream', { request: id, reason: `a second ${type} stream` });
      s.destroy();
      continue;
    }
    p[type as 'error' | 'data'] = s;
    if (p.error && p.data) {
      clearTimeout(p.timer);
      pairs.delete(id);
      void forward(port, p);
    }
  }
  for (const p of pairs.values()) clearTimeout(p.timer);
}
