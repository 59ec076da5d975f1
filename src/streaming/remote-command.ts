// Kubernetes' remote command protocol (exec and attach), as kubelet's
// streaming server speaks it. Over SPDY the client opens one stream per
// channel, named by its `streamType` header: error, stdin, stdout, stderr
// and, from v3 on with a terminal, resize (JSON {"Width","Height"} objects);
// over WebSocket the same channels are numbered (remote-command-websocket.ts).
// When the process ends the server writes the outcome on the error channel
// (v4 and later: a JSON metav1.Status carrying the exit code; before: the
// error text, nothing on success) and closes the connection.
import { finished } from 'node:stream/promises';
import type { Readable, Writable } from 'node:stream';
import { errorMessage } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { ResizeDecoder, parseResizeEvent, type TerminalSize } from './resize-events.js';
import type { SpdyConnection, SpdyStream } from './spdy-connection.js';
import type { StreamCollector } from './stream-collector.js';

const log = logger('stream');

/** Client preference decides; these are what we speak. */
export const REMOTE_COMMAND_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'];

export interface ChannelOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

/** What runs behind the channels: an exec'd process or the container's own. */
export interface CommandSession {
  stdout: Readable;
  stderr: Readable;
  stdin?: Writable;
  resize(cols: number, rows: number): Promise<void>;
  /** The exit code; undefined for an attach, which has none to report. */
  done: Promise<number | undefined>;
  /** The client went away before the end. */
  abandon(): void;
}

/** The channels of one session, whatever carries them. */
export interface CommandChannels {
  error?: Writable;
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
  resize?: Readable;
}

/** The connection the channels share: SPDY or WebSocket. */
export interface SessionConnection {
  readonly isClosed: boolean;
  once(event: 'close', listener: () => void): unknown;
  off(event: 'close', listener: () => void): unknown;
  /** Ends the session once what is queued has gone out. */
  close(): Promise<void>;
}

type SpdyChannels = { [K in keyof CommandChannels]?: SpdyStream };

const CHANNEL_TYPES = new Set(['error', 'stdin', 'stdout', 'stderr', 'resize']);

/** 1 for channel.k8s.io (and no protocol), N for vN.channel.k8s.io, also in their base64 forms. */
export function versionOf(protocol: string): number {
  const m = /^v(\d+)\./.exec(protocol);
  return m ? Number(m[1]) : 1;
}

/** The status JSON of v4+: what client-go turns into an exit code or an error. */
export function statusJson(outcome: { exitCode: number } | { error: string } | 'success'): string {
  if (outcome === 'success') return JSON.stringify({ metadata: {}, status: 'Success' });
  if ('exitCode' in outcome) {
    return JSON.stringify({
      metadata: {},
      status: 'Failure',
      message: `command terminated with non-zero exit code: exit status ${outcome.exitCode}`,
      reason: 'NonZeroExitCode',
      details: { causes: [{ reason: 'ExitCode', message: String(outcome.exitCode) }] },
    });
  }
  return JSON.stringify({
    metadata: {},
    status: 'Failure',
    message: `Internal error occurred: ${outcome.error}`,
    reason: 'InternalError',
    details: { causes: [{ message: outcome.error }] },
    code: 500,
  });
}

async function collectChannels(streams: StreamCollector, expected: number, timeoutMs: number): Promise<SpdyChannels | undefined> {
  const got: SpdyChannels = {};
  const deadline = Date.now() + timeoutMs;
  let count = 0;
  while (count < expected) {
    const s = await streams.next(deadline);
    if (!s) return undefined;
    const type = s.header('streamtype') ?? '';
    if (!CHANNEL_TYPES.has(type) || got[type as keyof SpdyChannels]) {
      log.warn('refused a stream', { stream_type: type, reason: CHANNEL_TYPES.has(type) ? 'a second of its type' : 'unknown type' });
      s.destroy();
      continue;
    }
    got[type as keyof SpdyChannels] = s;
    count++;
  }
  return got;
}

/**
 * Applies resize events until the channel ends. Only the latest size waits
 * while one is being applied, so a client that floods the channel costs one
 * pending size, not a queue; a bad event is skipped (logged once), an
 * over-long one stops resizing.
 */
function followResizes(channel: Readable, session: CommandSession): void {
  const decoder = new ResizeDecoder();
  let latest: TerminalSize | undefined;
  let applying = false;
  let warned = false;
  const apply = async () => {
    if (applying) return;
    applying = true;
    while (latest) {
      const size = latest;
      latest = undefined;
      await session.resize(size.cols, size.rows).catch((err: unknown) => log.warn('terminal resize failed', { err: errorMessage(err) }));
    }
    applying = false;
  };
  channel.setEncoding('utf8');
  channel.on('data', (text: string) => {
    let events: string[];
    try {
      events = decoder.push(text);
    } catch (err) {
      log.warn('resizing stops', { err: errorMessage(err) });
      channel.destroy();
      return;
    }
    for (const e of events) {
      const size = parseResizeEvent(e);
      if (typeof size !== 'string') latest = size;
      else if (!warned) {
        warned = true;
        log.warn('skipped a resize event (further ones are skipped quietly)', { reason: size });
      }
    }
    void apply();
  });
  channel.on('error', () => {});
}

/** Settles when the side we use is done one way or another (finished, ended, destroyed). */
function settled(s: Readable | Writable | undefined, side: 'read' | 'write'): Promise<void> {
  if (!s) return Promise.resolve();
  return finished(s, side === 'write' ? { readable: false } : { writable: false }).then(
    () => undefined,
    () => undefined,
  );
}

/** Carries one exec or attach over an upgraded SPDY connection until it ends. */
export async function serveRemoteCommand(
  conn: SpdyConnection,
  streams: StreamCollector,
  protocol: string,
  opts: ChannelOptions,
  start: () => Promise<CommandSession>,
  streamCreationTimeoutMs: number,
): Promise<void> {
  const version = versionOf(protocol);
  const expected = 1 + Number(opts.stdin) + Number(opts.stdout) + Number(opts.stderr) + Number(opts.tty && version >= 3);
  const ch = await collectChannels(streams, expected, streamCreationTimeoutMs);
  if (!ch) {
    log.warn('the client did not open its streams in time', { expected, timeout_ms: streamCreationTimeoutMs });
    conn.destroy();
    return;
  }
  await runRemoteCommand(conn, ch, version, start);
}

/** Runs the session on channels that are all there, until the process ends or the client goes. */
export async function runRemoteCommand(conn: SessionConnection, ch: CommandChannels, version: number, start: () => Promise<CommandSession>): Promise<void> {
  const writeOutcome = async (outcome: { exitCode: number } | { error: string } | 'success') => {
    const e = ch.error;
    if (!e || e.destroyed) return;
    if (version >= 4) e.write(statusJson(outcome));
    else if (outcome !== 'success') e.write('exitCode' in outcome ? `command terminated with non-zero exit code: exit status ${outcome.exitCode}` : outcome.error);
    e.end();
    await settled(e, 'write');
  };

  let session: CommandSession;
  try {
    session = await start();
  } catch (err) {
    await writeOutcome({ error: errorMessage(err) });
    await conn.close();
    return;
  }
  const onClose = () => session.abandon();
  // The client may have gone while the process was starting.
  if (conn.isClosed) onClose();
  else conn.once('close', onClose);

  // The session's streams error when the pod's VM or agent goes away under
  // them (a removed pod, a dead QEMU). That ends this session, never the
  // daemon: every stream here has an error listener, and an errored output
  // ends its channel with what came before.
  if (ch.stdin) {
    const input = ch.stdin;
    if (session.stdin) {
      const target = session.stdin;
      target.on('error', (err) => {
        log.debug('session input closed under the client', { err: errorMessage(err) });
        input.unpipe(target);
        input.resume(); // what the client still types is dropped
      });
      input.pipe(target);
    } else input.resume();
  }
  const pipeOut = (from: Readable, to: Writable | undefined) => {
    from.on('error', (err) => {
      log.debug('session output ended by an error', { err: errorMessage(err) });
      if (to && !to.writableEnded) to.end();
    });
    if (to) from.pipe(to);
    else from.resume();
    return to ? settled(to, 'write') : settled(from, 'read');
  };
  const outputDone = Promise.all([pipeOut(session.stdout, ch.stdout), pipeOut(session.stderr, ch.stderr)]);
  if (ch.resize) followResizes(ch.resize, session);

  try {
    const code = await session.done;
    await outputDone;
    await writeOutcome(code === undefined || code === 0 ? 'success' : { exitCode: code });
  } catch (err) {
    await writeOutcome({ error: errorMessage(err) });
  } finally {
    conn.off('close', onClose);
    await conn.close();
  }
}
