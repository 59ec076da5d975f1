// The streaming server behind the Exec, Attach and PortForward URLs. The
// RPC stores the request under a one-time token (stream-requests.ts) and
// answers http://ADDRESS/{exec,attach,portforward}/TOKEN; kubelet (or
// crictl) then comes here with an HTTP upgrade, chosen by its Upgrade
// header: to SPDY/3.1, naming the sub-protocols it speaks in
// X-Stream-Protocol-Version headers, or to WebSocket, naming them in
// Sec-WebSocket-Protocol. The server listens on loopback by default:
// kubelet on the same node proxies to it.
import { createServer, STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import { isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { errorMessage } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import type { PodManager } from '../pod/index.js';
import { PORT_FORWARD_PROTOCOLS, servePortForward } from './port-forward-streams.js';
import { PORT_FORWARD_WEBSOCKET_PROTOCOLS, portForwardChannelModes, servePortForwardWebSocket } from './port-forward-websocket.js';
import { REMOTE_COMMAND_PROTOCOLS, serveRemoteCommand, type ChannelOptions, type CommandSession } from './remote-command.js';
import { REMOTE_COMMAND_WEBSOCKET_PROTOCOLS, framingOf, remoteCommandChannelModes, serveRemoteCommandWebSocket } from './remote-command-websocket.js';
import { DEFAULT_SPDY_LIMITS, SpdyConnection, type SpdyLimits } from './spdy-connection.js';
import { StreamCollector } from './stream-collector.js';
import { StreamRequests, type StreamRequest } from './stream-requests.js';
import { WebSocketChannels } from './websocket-channels.js';

const log = logger('stream');

export const DEFAULT_STREAM_ADDRESS = '127.0.0.1:0';
export const DEFAULT_STREAM_IDLE_TIMEOUT_MS = 4 * 60 * 60 * 1000;
export const DEFAULT_STREAM_CREATION_TIMEOUT_MS = 30_000;
/** Upgraded connections at once; each holds a process or forwards. */
export const MAX_STREAM_CONNECTIONS = 256;
const PROTOCOL_HEADER = 'x-stream-protocol-version';
const ACCEPTED_HEADER = 'X-Accepted-Stream-Protocol-Versions';

/** What the sessions run on: the pod manager's streaming operations. */
export type StreamingBackend = Pick<PodManager, 'startExec' | 'attach' | 'portForward'>;

export interface StreamingServerOptions {
  /** HOST:PORT to listen on; HOST an IP address ([v6] in brackets). Port 0 picks a free one. */
  address: string;
  backend: () => StreamingBackend;
  idleTimeoutMs?: number;
  streamCreationTimeoutMs?: number;
  /** Bounds of a connection; WebSocket sessions take maxFrameBytes (largest message), streamBufferBytes and idleTimeoutMs. */
  limits?: Partial<SpdyLimits>;
}

type CommandRequest = Extract<StreamRequest, { kind: 'exec' | 'attach' }>;

export class StreamAddressError extends Error {}

/** Splits HOST:PORT; the host must be an IP literal, so the URL handed out is what the server binds. */
export function parseStreamAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(address);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || !host || isIP(host) === 0 || port > 65535) {
    throw new StreamAddressError(`stream address must be IP:PORT (or [IPv6]:PORT), got '${address}'`);
  }
  return { host, port };
}

function refuse(socket: Duplex, code: number, message: string, extra: Record<string, string[]> = {}): void {
  const body = message + '\n';
  const lines = [`HTTP/1.1 ${code} ${STATUS_CODES[code]}`, 'Content-Type: text/plain; charset=utf-8', `Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close'];
  for (const [k, vs] of Object.entries(extra)) for (const v of vs) lines.push(`${k}: ${v}`);
  socket.end(lines.join('\r\n') + '\r\n\r\n' + body);
}

/** The path of a request's target, without its query; never throws on a malformed target. */
function pathOf(req: IncomingMessage): string {
  const target = req.url ?? '/';
  const q = target.indexOf('?');
  return q < 0 ? target : target.slice(0, q);
}

/** The sub-protocols a client names in a header, in its order of preference. */
function offered(req: IncomingMessage, header: string): string[] {
  const raw = req.headersDistinct[header] ?? [];
  return raw.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
}

/** The client's sub-protocols, in its order of preference; the first we speak wins. */
function negotiate(req: IncomingMessage, ours: string[]): string | undefined {
  return offered(req, PROTOCOL_HEADER).find((p) => ours.includes(p));
}

/** The channels of an exec or attach; a terminal has one output. */
function channelOptions(want: CommandRequest): ChannelOptions {
  return { stdin: want.stdin, stdout: want.stdout, stderr: want.stderr && !want.tty, tty: want.tty };
}

export class StreamingServer {
  readonly requests = new StreamRequests();
  private readonly connections = new Set<SpdyConnection | WebSocketChannels>();
  private readonly sockets = new Set<Socket>();
  private readonly idleTimeoutMs: number;
  private readonly creationTimeoutMs: number;
  private readonly limits: SpdyLimits;

  private constructor(
    private readonly server: Server,
    /** Base of the URLs handed out, e.g. http://127.0.0.1:34567 */
    readonly baseUrl: string,
    private readonly opts: StreamingServerOptions,
  ) {
    this.idleTimeoutMs = opts.idleTimeoutMs ?? DEFAULT_STREAM_IDLE_TIMEOUT_MS;
    this.creationTimeoutMs = opts.streamCreationTimeoutMs ?? DEFAULT_STREAM_CREATION_TIMEOUT_MS;
    this.limits = { ...DEFAULT_SPDY_LIMITS, idleTimeoutMs: this.idleTimeoutMs, ...opts.limits };
  }

  static async listen(opts: StreamingServerOptions): Promise<StreamingServer> {
    const { host, port } = parseStreamAddress(opts.address);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((err: unknown) => {
      throw new StreamAddressError(`cannot listen on ${opts.address} for streaming: ${errorMessage(err)}`);
    });
    const bound = server.address();
    const boundPort = typeof bound === 'object' && bound ? bound.port : port;
    // Listening on every address: hand out loopback, which kubelet on this node reaches.
    const urlHost = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : isIP(host) === 6 ? `[${host}]` : host;
    const s = new StreamingServer(server, `http://${urlHost}:${boundPort}`, opts);
    server.on('connection', (sock: Socket) => {
      s.sockets.add(sock);
      sock.once('close', () => s.sockets.delete(sock));
    });
    server.on('request', (req, res) => {
      const known = /^\/(exec|attach|portforward)\/[^/]+$/.test(pathOf(req));
      res.writeHead(known ? 400 : 404, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
      res.end(known ? 'this URL needs an HTTP upgrade to SPDY/3.1 or WebSocket (Connection: Upgrade, Upgrade: SPDY/3.1 or websocket)\n' : 'not found\n');
    });
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => s.upgrade(req, socket, head));
    server.on('clientError', (_err, socket: Duplex) => socket.destroy());
    log.info('streaming server listening', { url: s.baseUrl });
    return s;
  }

  /** Stores the request and gives the URL its client must open. */
  urlFor(req: StreamRequest): string {
    return `${this.baseUrl}/${req.kind}/${this.requests.insert(req)}`;
  }

  private upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    // The HTTP server lets go of an upgraded socket's errors: a peer that resets must not take the daemon down.
    socket.on('error', (err) => log.debug('streaming socket error', { err: err.message }));
    const m = /^\/(exec|attach|portforward)\/([A-Za-z0-9_-]{1,128})$/.exec(pathOf(req));
    if (!m) return refuse(socket, 404, 'not found');
    const kind = m[1] as StreamRequest['kind'];
    const want = this.requests.consume(m[2]!);
    if (!want || want.kind !== kind) return refuse(socket, 404, `unknown or expired ${kind} token (a URL works once, within a minute of the call)`);
    const upgradeTo = (req.headers.upgrade ?? '').toLowerCase();
    if (upgradeTo === 'websocket') return this.upgradeWebSocket(req, socket, head, want);
    if (upgradeTo !== 'spdy/3.1') return refuse(socket, 400, `unable to upgrade: cannot upgrade to '${req.headers.upgrade ?? ''}'; use SPDY/3.1 or websocket`);
    const ours = kind === 'portforward' ? PORT_FORWARD_PROTOCOLS : REMOTE_COMMAND_PROTOCOLS;
    if (!req.headersDistinct[PROTOCOL_HEADER]) return refuse(socket, 400, `unable to upgrade: ${PROTOCOL_HEADER} is required`);
    const protocol = negotiate(req, ours);
    if (!protocol) {
      const theirs = (req.headersDistinct[PROTOCOL_HEADER] ?? []).join(', ');
      return refuse(socket, 403, `unable to upgrade: unable to negotiate protocol: client supports [${theirs}], server accepts [${ours.join(', ')}]`, { [ACCEPTED_HEADER]: ours });
    }
    if (this.connections.size >= MAX_STREAM_CONNECTIONS) return refuse(socket, 503, `${MAX_STREAM_CONNECTIONS} streaming sessions are open; try again later`);
    socket.write(['HTTP/1.1 101 Switching Protocols', 'Connection: Upgrade', 'Upgrade: SPDY/3.1', `X-Stream-Protocol-Version: ${protocol}`, '', ''].join('\r\n'));
    const streams = new StreamCollector();
    const conn = new SpdyConnection(socket, head, this.limits, streams.add);
    this.connections.add(conn);
    conn.once('close', (err?: Error) => {
      this.connections.delete(conn);
      streams.end();
      if (err) log.debug('streaming connection closed', { kind, err: err.message });
    });
    void this.serveSpdy(want, protocol, conn, streams).catch((err: unknown) => {
      log.error('streaming session failed', { kind, err: errorMessage(err) });
      conn.destroy();
    });
  }

  private upgradeWebSocket(req: IncomingMessage, socket: Socket, head: Buffer, want: StreamRequest): void {
    const ours = want.kind === 'portforward' ? PORT_FORWARD_WEBSOCKET_PROTOCOLS : REMOTE_COMMAND_WEBSOCKET_PROTOCOLS;
    const theirs = offered(req, 'sec-websocket-protocol');
    // A client that names no sub-protocol gets the oldest binary framing, as from kubelet.
    const protocol = theirs.length === 0 ? '' : theirs.find((p) => ours.includes(p));
    if (protocol === undefined) {
      return refuse(socket, 403, `unable to upgrade: requested protocol(s) are not supported: [${theirs.join(', ')}]; supports [${ours.join(', ')}]`);
    }
    if (want.kind === 'portforward' && want.ports.length === 0) {
      return refuse(socket, 400, 'unable to upgrade: port forward over WebSocket forwards the ports of the PortForward call, and it named none');
    }
    if (this.connections.size >= MAX_STREAM_CONNECTIONS) return refuse(socket, 503, `${MAX_STREAM_CONNECTIONS} streaming sessions are open; try again later`);
    const modes = want.kind === 'portforward' ? portForwardChannelModes(want.ports) : remoteCommandChannelModes(channelOptions(want));
    const wss = new WebSocketServer({ noServer: true, clientTracking: false, perMessageDeflate: false, maxPayload: this.limits.maxFrameBytes, handleProtocols: () => protocol || false });
    // A handshake that fails (no key, a wrong version) is answered 400 by ws, and the socket closed.
    wss.handleUpgrade(req, socket, head, (ws) => {
      const conn = new WebSocketChannels(ws, socket, modes, framingOf(protocol), { channelBufferBytes: this.limits.streamBufferBytes, idleTimeoutMs: this.limits.idleTimeoutMs });
      this.connections.add(conn);
      conn.once('close', (err?: Error) => {
        this.connections.delete(conn);
        if (err) log.debug('streaming connection closed', { kind: want.kind, err: err.message });
      });
      void this.serveWebSocket(want, protocol, conn).catch((err: unknown) => {
        log.error('streaming session failed', { kind: want.kind, err: errorMessage(err) });
        conn.destroy();
      });
    });
  }

  private async serveSpdy(want: StreamRequest, protocol: string, conn: SpdyConnection, streams: StreamCollector): Promise<void> {
    if (want.kind === 'portforward') {
      const backend = this.opts.backend();
      return servePortForward(conn, streams, want.podId, (port) => backend.portForward(want.podId, port), this.creationTimeoutMs);
    }
    await serveRemoteCommand(conn, streams, protocol, channelOptions(want), this.commandStarter(want), this.creationTimeoutMs);
  }

  private async serveWebSocket(want: StreamRequest, protocol: string, conn: WebSocketChannels): Promise<void> {
    if (want.kind === 'portforward') {
      const backend = this.opts.backend();
      return servePortForwardWebSocket(conn, want.podId, want.ports, (port) => backend.portForward(want.podId, port));
    }
    await serveRemoteCommandWebSocket(conn, protocol, channelOptions(want), this.commandStarter(want));
  }

  /** Starts the exec'd process, or attaches to the container's own, when the channels are up. */
  private commandStarter(want: CommandRequest): () => Promise<CommandSession> {
    const backend = this.opts.backend();
    return async () => {
      if (want.kind === 'exec') {
        const s = await backend.startExec(want.containerId, want.cmd, { tty: want.tty, stdin: want.stdin });
        log.info('exec session', { container: want.containerId, tty: want.tty, stdin: want.stdin });
        return { stdout: s.stdout, stderr: s.stderr, stdin: s.stdin, resize: (c, r) => s.resize(c, r), done: s.exited, abandon: () => void s.kill() };
      }
      const a = backend.attach(want.containerId, { stdin: want.stdin });
      log.info('attach session', { container: want.containerId, stdin: want.stdin });
      return { stdout: a.stdout, stderr: a.stderr, stdin: a.stdin, resize: (c, r) => a.resize(c, r), done: a.exited.then(() => undefined), abandon: () => a.detach() };
    };
  }

  /** Stops listening and cuts every session. */
  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of this.connections) c.destroy();
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}
