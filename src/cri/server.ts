// The CRI gRPC server on a unix socket. It owns the socket file: creates it
// with mode 0600 (only root talks to the runtime), replaces a stale one only
// when nothing answers on it, refuses to start when another daemon serves
// it, and removes it on the way out (only if it is still ours).
import { connect, createServer, type Server as NetServer, type Socket } from 'node:net';
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { isErrno } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { CriError, SocketError } from './errors.js';
import { loadCriServices } from './proto.js';
import { filterAuthority } from './h2-authority.js';
import { CallGate } from './rpc-wrapper.js';
import { buildService, type HandlerTable } from './service-table.js';

const log = logger('cri');

export const SOCKET_MODE = 0o600;
/** kubelet's own limit on CRI messages (a ListContainers on a big node is a few MiB). */
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;
/** A live server accepts a unix connection at once; this only bounds a hung peer. */
const PROBE_TIMEOUT_MS = 2_000;
/** Calls at once on one client connection (kubelet runs a few dozen at most). */
const MAX_CONCURRENT_STREAMS = 1024;
/** Client connections at once (kubelet holds one or two; each crictl call one). */
export const MAX_CONNECTIONS = 256;

export interface CriServerOptions {
  /** Absolute path of the unix socket. Its directory is created (0700) if missing. */
  socketPath: string;
  runtime: HandlerTable;
  image: HandlerTable;
  /** Largest request or response, in bytes. Default 16 MiB. */
  maxMessageBytes?: number;
  /** How long stop() lets in-flight calls finish before cutting them. Default 10000. */
  shutdownTimeoutMs?: number;
}

const KNOWN_OPTIONS = new Set(['socketPath', 'runtime', 'image', 'maxMessageBytes', 'shutdownTimeoutMs']);

/** True when a server accepts connections on the socket at `path`. */
export function socketAnswers(path: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(path);
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(true); // a socket that neither refuses nor accepts is held by someone: do not steal it
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/** Makes `path` free for a new socket, or says why it cannot be. */
async function claimSocketPath(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  let st;
  try {
    st = await lstat(path);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return;
    throw err;
  }
  if (!st.isSocket()) throw new SocketError('SOCKET_NOT_A_SOCKET', `${path} exists and is not a socket; refusing to replace it`, { path });
  if (await socketAnswers(path)) throw new SocketError('SOCKET_IN_USE', `another daemon is already serving ${path}`, { path });
  await unlink(path);
  log.info('removed stale socket', { path });
}

export class CriServer {
  private stopping: Promise<void> | undefined;

  private constructor(
    /** Readiness and in-flight calls; `gate.setReady()` opens the daemon for business. */
    readonly gate: CallGate,
    readonly socketPath: string,
    private readonly server: grpc.Server,
    private readonly listener: NetServer,
    private readonly socketIno: number,
    private readonly shutdownTimeoutMs: number,
  ) {}

  /**
   * Binds the socket and serves. Calls are answered UNAVAILABLE until
   * `gate.setReady()` (so the socket can be claimed before slow start-up work).
   */
  static async listen(opts: CriServerOptions): Promise<CriServer> {
    for (const k of Object.keys(opts)) if (!KNOWN_OPTIONS.has(k)) throw new TypeError(`CriServer: unknown option '${k}'`);
    if (!opts.socketPath.startsWith('/')) throw new TypeError(`CriServer: socketPath must be absolute, got '${opts.socketPath}'`);
    const maxBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    const { RuntimeService, ImageService } = loadCriServices();
    await claimSocketPath(opts.socketPath);

    const server = new grpc.Server({
      'grpc.max_receive_message_length': maxBytes,
      'grpc.max_send_message_length': maxBytes,
      'grpc.max_concurrent_streams': MAX_CONCURRENT_STREAMS,
    });
    const gate = new CallGate();
    server.addService(RuntimeService.service, buildService('RuntimeService', RuntimeService.service, opts.runtime, gate));
    server.addService(ImageService.service, buildService('ImageService', ImageService.service, opts.image, gate));

    // Connections are accepted here, not by grpc-js, so that each client's
    // request headers pass the authority filter (h2-authority.ts) before
    // Node's HTTP/2 server reads them.
    const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const listener = createServer((socket: Socket) => injector.injectConnection(filterAuthority(socket)));
    listener.maxConnections = MAX_CONNECTIONS;
    // The umask makes the socket 0600 from its first instant (a chmod after
    // bind leaves a window); the chmod below is the belt to these braces.
    const oldMask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        listener.once('error', reject);
        listener.listen(opts.socketPath, () => {
          listener.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      // Lost a race with a daemon that started at the same moment.
      const inUse = /EADDRINUSE|address already in use/i.test(String(err));
      throw new SocketError(inUse ? 'SOCKET_IN_USE' : 'SOCKET_BIND', `cannot listen on ${opts.socketPath}: ${String((err as Error).message ?? err)}`, { path: opts.socketPath }, err);
    } finally {
      process.umask(oldMask);
    }
    listener.on('error', (err) => log.warn('socket listener error', { error: String(err) }));
    await chmod(opts.socketPath, SOCKET_MODE);
    const { ino } = await lstat(opts.socketPath);
    log.info('listening', { socket: opts.socketPath });
    return new CriServer(gate, opts.socketPath, server, listener, ino, opts.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS);
  }

  /**
   * Stops accepting, lets in-flight calls finish within the shutdown bound,
   * cuts the rest, and removes the socket file. Safe to call twice.
   */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.gate.setStopping();
    const inFlight = this.gate.inFlight;
    log.info('shutting down', { in_flight: inFlight, timeout_ms: this.shutdownTimeoutMs });
    // No new connections; the ones open finish their calls below.
    this.listener.close();
    const graceful = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), this.shutdownTimeoutMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!graceful) {
      log.warn('in-flight calls did not finish in time; cutting them', { in_flight: this.gate.inFlight });
      this.server.forceShutdown();
      // The clients are gone; tell the handlers so they stop their work too.
      this.gate.abortAll(new CriError('UNAVAILABLE', 'frakti is shutting down'));
    }
    await this.removeSocket();
  }

  private async removeSocket(): Promise<void> {
    try {
      // Another daemon may have taken over the path after a stale-socket check.
      const st = await lstat(this.socketPath);
      if (st.ino === this.socketIno) await unlink(this.socketPath);
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) log.warn('could not remove socket', { socket: this.socketPath, error: String(err) });
    }
  }
}
