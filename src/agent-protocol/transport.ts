// Transports of the agent channel: each yields a byte stream (Duplex).
// - unix: a unix socket, either QEMU's virtio-serial chardev or the agent's
//   own --listen-unix socket in host tests.
// - vsock: Node cannot wrap an AF_VSOCK fd (libuv only knows inet and unix
//   handles), so we spawn build/bin/frakti-vsock-relay CID PORT, which
//   connects the vsock socket and relays it over its stdin/stdout. This keeps
//   native code out of the daemon: a crash there ends one relay, not frakti.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { Duplex } from 'node:stream';
import { shippedFile } from '../lib/shipped-files.js';
import { AgentError } from './errors.js';

export type AgentTarget = { kind: 'unix'; path: string } | { kind: 'vsock'; cid: number; port: number };

/** Longest unix socket path Linux accepts (sun_path is 108 bytes with the NUL). */
const MAX_UNIX_PATH_BYTES = 107;
/** How much of a failing relay's stderr ends up in the error. */
const MAX_RELAY_STDERR_BYTES = 2048;

/** The relay binary: FRAKTI_VSOCK_RELAY overrides the shipped one (build/bin in a checkout). */
export function vsockRelayPath(): string {
  return process.env.FRAKTI_VSOCK_RELAY || shippedFile('frakti-vsock-relay');
}

export function validateTarget(target: AgentTarget): void {
  if (typeof target !== 'object' || target === null) throw new AgentError('AGENT_OPTIONS', 'agent target must be an object');
  if (target.kind === 'unix') {
    checkKeys(target, ['kind', 'path']);
    if (typeof target.path !== 'string' || target.path.length === 0) throw new AgentError('AGENT_OPTIONS', 'agent unix target needs a path');
    if (Buffer.byteLength(target.path) > MAX_UNIX_PATH_BYTES) {
      throw new AgentError('AGENT_OPTIONS', `agent socket path is longer than ${MAX_UNIX_PATH_BYTES} bytes: ${target.path}`, { path: target.path });
    }
  } else if (target.kind === 'vsock') {
    checkKeys(target, ['kind', 'cid', 'port']);
    // CID 0 is the hypervisor, 2 the host, 0xffffffff "any": none of them is a guest.
    if (!Number.isInteger(target.cid) || target.cid < 1 || target.cid === 2 || target.cid >= 0xffffffff) {
      throw new AgentError('AGENT_OPTIONS', `invalid vsock CID ${String(target.cid)}`, { cid: target.cid });
    }
    if (!Number.isInteger(target.port) || target.port < 0 || target.port >= 0xffffffff) {
      throw new AgentError('AGENT_OPTIONS', `invalid vsock port ${String(target.port)}`, { port: target.port });
    }
  } else {
    throw new AgentError('AGENT_OPTIONS', `unknown agent target kind ${String((target as { kind: unknown }).kind)}`);
  }
}

export function checkKeys(obj: object, allowed: string[]): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) throw new AgentError('AGENT_OPTIONS', `unknown option ${key} (allowed: ${allowed.join(', ')})`);
  }
}

export function describeTarget(target: AgentTarget): string {
  return target.kind === 'unix' ? `unix:${target.path}` : `vsock:${target.cid}:${target.port}`;
}

/**
 * Opens the byte stream to the agent. For unix, resolves once connected; for
 * vsock, once the relay is spawned (a connect failure then shows up as the
 * stream closing with the relay's error line).
 */
export function openTransport(target: AgentTarget, signal?: AbortSignal): Promise<Duplex> {
  if (target.kind === 'unix') return openUnix(target.path, signal);
  return Promise.resolve(openRelay([String(target.cid), String(target.port)], describeTarget(target)));
}

function openUnix(path: string, signal?: AbortSignal): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ path });
    const onAbort = () => {
      sock.destroy();
      reject(new AgentError('AGENT_ABORTED', `connecting to the agent at ${path} was aborted`, { path }));
    };
    const onError = (err: NodeJS.ErrnoException) => {
      signal?.removeEventListener('abort', onAbort);
      reject(new AgentError('AGENT_CONNECT', `cannot connect to the agent at ${path}: ${err.code ?? err.message}`, { path, errno: err.code }, { cause: err }));
    };
    sock.once('error', onError);
    sock.once('connect', () => {
      sock.off('error', onError);
      signal?.removeEventListener('abort', onAbort);
      resolve(sock);
    });
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Spawns the relay with `args` (CID PORT, or the test-only `--unix PATH`)
 * and returns a Duplex over its stdio. Destroying the Duplex kills the relay;
 * the relay exiting ends the Duplex, with its stderr line as the error.
 */
export function openRelay(args: string[], what: string): Duplex {
  const relay = vsockRelayPath();
  if (!existsSync(relay)) {
    const d = new Duplex({ read() {}, write(_c, _e, cb) { cb(); } });
    process.nextTick(() => d.destroy(new AgentError('AGENT_CONNECT', `vsock relay not found at ${relay} (run make)`, { relay })));
    return d;
  }
  const child = spawn(relay, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  let exited = false;
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    if (stderr.length < MAX_RELAY_STDERR_BYTES) stderr += s.slice(0, MAX_RELAY_STDERR_BYTES - stderr.length);
  });
  // Write errors (EPIPE once the relay is gone) surface through 'close' below.
  child.stdin.on('error', () => {});
  const duplex = new Duplex({
    read() {
      child.stdout.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      if (exited) return cb();
      child.stdin.write(chunk, () => cb());
    },
    final(cb) {
      child.stdin.end(cb);
    },
    destroy(err, cb) {
      if (!exited) child.kill('SIGKILL');
      cb(err);
    },
  });
  child.stdout.on('data', (d: Buffer) => {
    if (!duplex.push(d)) child.stdout.pause();
  });
  // 'close' comes after the relay exited and its stdout and stderr were read to the end,
  // so the end of the stream carries the relay's verdict: clean EOF, or its error line.
  child.once('close', (code, sig) => {
    exited = true;
    if (code === 0) {
      duplex.push(null);
      return;
    }
    const line = stderr.trim().split('\n')[0] || (sig ? `killed by ${sig}` : `exit code ${code}`);
    duplex.destroy(new AgentError('AGENT_CONNECT', `vsock relay to ${what}: ${line}`, { relay, code, signal: sig }));
  });
  child.once('error', (err) => {
    exited = true;
    duplex.destroy(new AgentError('AGENT_CONNECT', `cannot run the vsock relay ${relay}: ${err.message}`, { relay }, { cause: err }));
  });
  return duplex;
}
