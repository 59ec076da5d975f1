// Port forward over WebSocket, as kubelet's streaming server serves it: the
// ports of the PortForward call, in order, each with two channels, data
// (2i, both ways) and error (2i+1, to the client). The first message on
// each channel is the port, two bytes little-endian. Each port gets one
// connection for the life of the WebSocket; a failure is told as text on
// its error channel. When every port's connection has ended the server
// closes the WebSocket.
import type { Duplex } from 'node:stream';
import { finished } from 'node:stream/promises';
import { errorMessage } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { copyBothWays } from './port-forward-streams.js';
import type { ChannelMode, WebSocketChannels } from './websocket-channels.js';

const log = logger('stream');

/** What kubelet accepts for port forward over WebSocket; none offered means v4 binary too. */
export const PORT_FORWARD_WEBSOCKET_PROTOCOLS = ['v4.channel.k8s.io', 'v4.base64.channel.k8s.io'];

export function portForwardChannelModes(ports: number[]): ChannelMode[] {
  return ports.flatMap((): ChannelMode[] => ['both', 'write']);
}

function portBytes(port: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(port);
  return b;
}

export async function servePortForwardWebSocket(conn: WebSocketChannels, podId: string, ports: number[], connect: (port: number) => Promise<Duplex>): Promise<void> {
  const forward = async (port: number, data: Duplex, error: Duplex) => {
    data.on('error', () => {}); // a copy that failed is told on the error channel
    data.write(portBytes(port));
    error.write(portBytes(port));
    let failure: string | undefined;
    try {
      const target = await connect(port);
      failure = await copyBothWays(data, target, false);
    } catch (err) {
      failure = errorMessage(err);
    }
    if (failure !== undefined && !conn.isClosed) {
      log.debug('port forward ended with an error', { pod: podId, port, err: failure });
      error.write(`error forwarding port ${port} to pod ${podId}: ${failure}`);
    }
    error.end();
    // Before the close goes out behind it.
    await finished(error, { readable: false }).catch(() => {});
  };
  await Promise.all(ports.map((port, i) => forward(port, conn.channel(2 * i), conn.channel(2 * i + 1))));
  await conn.close();
}
