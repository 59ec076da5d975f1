// A scripted stand-in for the pod room's streaming operations, for tests of
// the streaming server: processes that echo, fail, start slowly or write
// megabytes, an attach, and port forwards to a real TCP server.
import { connect, createServer } from 'node:net';
import { PassThrough, type Duplex } from 'node:stream';
import { StreamingServer, type StreamingBackend } from '../../src/streaming/index.js';

export interface Scripted {
  resizes: Array<[number, number]>;
  killed: boolean;
  detached: boolean;
}

export function scripted(): Scripted {
  return { resizes: [], killed: false, detached: false };
}

/** Bytes the 'big' command writes: 3 MiB, well past any window or buffer. */
export const BIG_OUTPUT_BYTES = 48 * 64 * 1024;

/**
 * exec: a process that echoes stdin upper-cased on stdout, says 'bye' on stderr
 * and exits with `code()` once stdin ends ('fail' cannot start, 'slow' starts
 * in 300 ms, 'big' writes BIG_OUTPUT_BYTES, 'deaf' never reads its stdin
 * and runs until killed). attach: says 'attached', echoes
 * stdin the same way; the container exits when stdin ends. portForward: port
 * 8080 reaches `echoPort()`, any other is refused.
 */
export function scriptedBackend(code: () => number, seen: Scripted, echoPort: () => number): StreamingBackend {
  return {
    async startExec(_id, cmd, opts) {
      if (cmd[0] === 'fail') throw new Error('no such container');
      if (cmd[0] === 'slow') await new Promise((r) => setTimeout(r, 300));
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      const stdin = opts.stdin ? new PassThrough() : undefined;
      let finish!: (n: number) => void;
      const exited = new Promise<number>((r) => (finish = r));
      const end = () => {
        stderr.end('bye\n');
        stdout.end();
        finish(code());
      };
      if (cmd[0] === 'deaf') {
        // Never reads its stdin; ends when killed.
      } else if (stdin) {
        stdin.on('data', (b: Buffer) => stdout.write(b.toString().toUpperCase()));
        stdin.on('end', end);
      } else if (cmd[0] === 'big') {
        const chunk = Buffer.alloc(64 * 1024, 'x');
        for (let i = 0; i < BIG_OUTPUT_BYTES / chunk.length; i++) stdout.write(chunk);
        end();
      } else setImmediate(end);
      return {
        stdout, stderr, stdin,
        resize: async (c, r) => void seen.resizes.push([c, r]),
        exited,
        kill: async () => {
          seen.killed = true;
          end();
        },
      };
    },
    attach(_id, opts) {
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      const stdin = opts.stdin ? new PassThrough() : undefined;
      let exit!: () => void;
      const exited = new Promise<void>((r) => (exit = r));
      const end = () => {
        stdout.end();
        stderr.end();
      };
      stdout.write('attached\n');
      stdin?.on('data', (b: Buffer) => stdout.write(b.toString().toUpperCase()));
      stdin?.on('end', () => {
        end();
        exit();
      });
      return {
        tty: false, stdout, stderr, stdin, exited,
        resize: async (c, r) => void seen.resizes.push([c, r]),
        detach: () => {
          seen.detached = true;
          end();
        },
      };
    },
    async portForward(_pod, port): Promise<Duplex> {
      if (port !== 8080) throw new Error(`connection refused on port ${port}`);
      const s = connect({ host: '127.0.0.1', port: echoPort() });
      await new Promise((r, j) => s.once('connect', r).once('error', j));
      return s;
    },
  };
}

export interface ScriptedServer {
  server: StreamingServer;
  seen: Scripted;
  /** What the exec'd processes exit with from now on. */
  exitCode: number;
  /** An exec URL: 'sh' with every channel but a terminal, unless changed. */
  execUrl(over?: Partial<{ cmd: string[]; stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean }>): string;
  stop(): Promise<void>;
}

/** A streaming server on loopback over the scripted backend, with a TCP echo server behind port 8080. */
export async function scriptedServer(): Promise<ScriptedServer> {
  const echo = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const echoPort = () => (echo.address() as { port: number }).port;
  const ctl: ScriptedServer = {
    server: undefined as unknown as StreamingServer,
    seen: scripted(),
    exitCode: 0,
    execUrl: (over = {}) => ctl.server.urlFor({ kind: 'exec', containerId: 'c1', cmd: ['sh'], stdin: true, stdout: true, stderr: true, tty: false, ...over }),
    stop: async () => {
      await ctl.server.stop();
      echo.close();
    },
  };
  ctl.server = await StreamingServer.listen({ address: '127.0.0.1:0', backend: () => scriptedBackend(() => ctl.exitCode, ctl.seen, echoPort), streamCreationTimeoutMs: 2000 });
  return ctl;
}
