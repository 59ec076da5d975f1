// A scripted fake agent on a unix socket, for unit tests of the client: it
// hands each connection to the test, which reads the host's HELLO and writes
// whatever bytes it wants back (good frames, garbage, stale output).
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AGENT_MAGIC,
  encodeFrame,
  FRAME_HEADER_BYTES,
  FrameType,
  HOST_MAGIC,
  PROTOCOL_VERSION,
  type Frame,
} from '../../src/agent-protocol/framing.js';
import protobuf from 'protobufjs';
import { agentProtoPath } from '../../src/agent-protocol/messages.js';

const root = protobuf.loadSync(agentProtoPath());
const T = (n: string) => root.lookupType(`frakti.agent.v1.${n}`);

export function pack(type: string, obj: Record<string, unknown>): Buffer {
  const t = T(type);
  return Buffer.from(t.encode(t.fromObject(obj)).finish());
}

export function unpack(type: string, buf: Buffer): Record<string, unknown> {
  const t = T(type);
  return t.toObject(t.decode(buf), { bytes: Buffer, defaults: true, oneofs: true }) as Record<string, unknown>;
}

/** One accepted connection, seen from the fake agent's side. */
export class PeerConn {
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;

  constructor(readonly sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiters.splice(0).forEach((w) => w());
    });
    sock.on('close', () => {
      this.closed = true;
      this.waiters.splice(0).forEach((w) => w());
    });
    sock.on('error', () => {});
  }

  private async bytes(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      if (this.closed) throw new Error('fake peer: host closed the connection');
      await new Promise<void>((r) => this.waiters.push(r));
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Reads HOST_MAGIC + HELLO; returns the host's nonce. */
  async readHello(): Promise<Buffer> {
    const magic = await this.bytes(HOST_MAGIC.length);
    if (!magic.equals(HOST_MAGIC)) throw new Error('fake peer: no HOST_MAGIC');
    const f = await this.readFrame();
    if (f.type !== FrameType.HELLO) throw new Error('fake peer: first frame is not HELLO');
    return unpack('Hello', f.payload).nonce as Buffer;
  }

  async readFrame(): Promise<Frame> {
    const header = await this.bytes(FRAME_HEADER_BYTES);
    const payload = await this.bytes(header.readUInt32BE(0));
    return { type: header.readUInt8(8), streamId: header.readUInt32BE(4), flags: header.readUInt8(9), payload: Buffer.from(payload) };
  }

  /** Answers the handshake as a real agent would. */
  sendSync(nonce: Buffer, opts: { protocolVersion?: number; before?: Buffer } = {}): void {
    const hello = encodeFrame({
      type: FrameType.HELLO,
      streamId: 0,
      flags: 0,
      payload: pack('Hello', { protocolVersion: opts.protocolVersion ?? PROTOCOL_VERSION, agentVersion: 'fake-1' }),
    });
    this.sock.write(Buffer.concat([opts.before ?? Buffer.alloc(0), AGENT_MAGIC, nonce, hello]));
  }

  sendResponse(streamId: number, result: Record<string, unknown>): void {
    this.sock.write(encodeFrame({ type: FrameType.RESPONSE, streamId, flags: 0, payload: pack('Response', result) }));
  }

  write(b: Buffer): void {
    this.sock.write(b);
  }
}

export interface FakePeer {
  path: string;
  /** Resolves with the next connection the client opens. */
  next(): Promise<PeerConn>;
  close(): Promise<void>;
}

export async function startFakePeer(): Promise<FakePeer> {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-agent-fake-'));
  const path = join(dir, 'agent.sock');
  const queue: PeerConn[] = [];
  const waiters: ((c: PeerConn) => void)[] = [];
  const conns: PeerConn[] = [];
  const server: Server = createServer((sock) => {
    const c = new PeerConn(sock);
    conns.push(c);
    const w = waiters.shift();
    if (w) w(c);
    else queue.push(c);
  });
  await new Promise<void>((r) => server.listen(path, r));
  return {
    path,
    next: () => {
      const c = queue.shift();
      return c ? Promise.resolve(c) : new Promise((r) => waiters.push(r));
    },
    close: async () => {
      for (const c of conns) c.sock.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
