// Exec and attach over WebSocket, as kubelet's streaming server serves
// them: five numbered channels, 0 stdin, 1 stdout, 2 stderr, 3 error (the
// outcome, as over SPDY), 4 resize; a channel the call did not ask for is
// still there but carries nothing. Once the channels are up the server
// sends an empty message on the first one it writes, which tells the
// client the session has begun.
import { runRemoteCommand, versionOf, type ChannelOptions, type CommandSession } from './remote-command.js';
import type { ChannelFraming, ChannelMode, WebSocketChannels } from './websocket-channels.js';

/** Client preference decides. base64 forms exist up to v4; v5 (the close signal) only binary, as in Kubernetes. */
export const REMOTE_COMMAND_WEBSOCKET_PROTOCOLS = [
  'v5.channel.k8s.io',
  'v4.channel.k8s.io',
  'v4.base64.channel.k8s.io',
  'v3.channel.k8s.io',
  'v2.channel.k8s.io',
  'channel.k8s.io',
  'base64.channel.k8s.io',
];

const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const ERROR = 3;
const RESIZE = 4;

/** How a negotiated sub-protocol frames its messages; '' (none offered) is binary channel.k8s.io. */
export function framingOf(protocol: string): ChannelFraming {
  return { base64: protocol.includes('base64.'), closeSignal: versionOf(protocol) >= 5 };
}

export function remoteCommandChannelModes(opts: ChannelOptions): ChannelMode[] {
  // Resize events without a terminal are dropped, not left to fill a buffer nobody reads.
  return [opts.stdin ? 'read' : 'ignore', opts.stdout ? 'write' : 'ignore', opts.stderr ? 'write' : 'ignore', 'write', opts.tty ? 'read' : 'ignore'];
}

/** Carries one exec or attach over a WebSocket whose channels follow remoteCommandChannelModes(opts). */
export async function serveRemoteCommandWebSocket(
  conn: WebSocketChannels,
  protocol: string,
  opts: ChannelOptions,
  start: () => Promise<CommandSession>,
): Promise<void> {
  conn.announce(opts.stdout ? STDOUT : opts.stderr ? STDERR : ERROR);
  const ch = conn.channels;
  await runRemoteCommand(
    conn,
    {
      stdin: opts.stdin ? ch[STDIN] : undefined,
      stdout: opts.stdout ? ch[STDOUT] : undefined,
      stderr: opts.stderr ? ch[STDERR] : undefined,
      error: ch[ERROR],
      resize: opts.tty ? ch[RESIZE] : undefined,
    },
    versionOf(protocol),
    start,
  );
}
