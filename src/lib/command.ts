// Short commands (CNI plugins, ip, tc, mount) run to completion: through
// frakti-spawner, a small helper process, because Node forks its whole
// process for every child. At the daemon's ~90 MiB resident a fork cost ~10 ms
// of page-table copying with the event loop stopped, and a pod start runs
// five such commands on its path (`make bench-spawn` measures both ways).
// Without the helper (missing, or it keeps dying) commands go through execa.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { getSystemErrorMap } from 'node:util';
import { execa } from 'execa';
import { logger } from './log.js';
import { errorMessage } from './errors.js';
import { shippedFile } from './shipped-files.js';

const log = logger('command');

export interface CommandOptions {
  /** Written to the command's stdin, which is then closed. */
  input?: string;
  /** Added to frakti's environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** Killed (its whole process group) after this long; 0 or absent: never. */
  timeoutMs?: number;
  /** Per stream; more output kills the command. Default and ceiling 16 MiB. */
  maxBuffer?: number;
}

/** As execa's result with `reject: false`: a command that failed still resolves. */
export interface CommandResult {
  /** Undefined when the command did not start, was killed, or printed too much. */
  exitCode: number | undefined;
  signal: string | undefined;
  /** Without the final newline, as execa gives them. */
  stdout: string;
  stderr: string;
  timedOut: boolean;
  failed: boolean;
}

export const COMMAND_MAX_BUFFER = 16 * 1024 * 1024;
/** Above this, a request is refused before it is sent (the helper reads at most 1 MiB a request). */
const MAX_REQUEST_BYTES = 1024 * 1024;
/** The largest answer the helper sends: its header and both outputs at their ceiling. */
const MAX_ANSWER_BYTES = 24 + 2 * COMMAND_MAX_BUFFER;
/** Commands in flight through one helper (it runs at most 64). */
const MAX_IN_FLIGHT = 64;
/** A helper that dies this many times in a row is given up for execa. */
const MAX_RESTARTS = 3;
/**
 * The helper enforces a command's timeout; if its answer is still missing
 * this long after, the helper is stuck (or the killed command is, in the
 * kernel): the caller is answered as timed out, and a late answer dropped.
 */
const ANSWER_GRACE_MS = 5_000;

const KIND_EXITED = 0;
const KIND_KILLED = 1;
const KIND_NOT_STARTED = 2;

interface Pending {
  resolve: (r: CommandResult) => void;
  timeoutMs: number;
  backstop?: NodeJS.Timeout;
}

class Spawner {
  private child: ChildProcess | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Answer bytes not yet parsed, as received (joined once a frame is whole). */
  private chunks: Buffer[] = [];
  private buffered = 0;
  private deaths = 0;

  constructor(private readonly binary: string) {}

  get usable(): boolean {
    return this.deaths < MAX_RESTARTS;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  run(file: string, args: string[], opts: CommandOptions): Promise<CommandResult> {
    const strs = [opts.cwd ?? '', file, ...args, ...Object.entries(opts.env ?? {}).flat()];
    // As Node's spawn refuses them: a NUL would cut the string short in the helper.
    if (strs.some((x) => x.includes('\0'))) return Promise.resolve(notStarted(`${file}: a NUL byte in its arguments, environment or working directory`));
    const child = this.ensure();
    const id = this.nextId;
    this.nextId = id >= 0xffffffff ? 1 : id + 1;
    const env = Object.entries({ ...process.env, ...opts.env }).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`);
    const strings = [opts.cwd ?? '', file, ...args, ...env].map((s) => Buffer.from(`${s}\0`));
    const input = Buffer.from(opts.input ?? '');
    const head = Buffer.alloc(28);
    const payloadLength = 24 + strings.reduce((n, b) => n + b.length, 0) + input.length;
    if (payloadLength > MAX_REQUEST_BYTES) return Promise.resolve(notStarted(`${file}: the command line and input are over ${MAX_REQUEST_BYTES} bytes`));
    head.writeUInt32LE(payloadLength, 0);
    head.writeUInt32LE(id, 4);
    head.writeUInt32LE(Math.max(0, Math.min(Math.ceil(opts.timeoutMs ?? 0), 0xffffffff)), 8);
    head.writeUInt32LE(Math.min(opts.maxBuffer ?? COMMAND_MAX_BUFFER, COMMAND_MAX_BUFFER), 12);
    head.writeUInt32LE(1 + args.length, 16);
    head.writeUInt32LE(env.length, 20);
    head.writeUInt32LE(input.length, 24);
    return new Promise((resolve) => {
      const timeoutMs = opts.timeoutMs ?? 0;
      const p: Pending = { resolve, timeoutMs };
      if (timeoutMs > 0) {
        p.backstop = setTimeout(() => {
          if (this.pending.get(id) !== p) return;
          this.settle(id);
          log.error('command spawner did not answer past a command\'s timeout', { file, timeoutMs });
          resolve({ ...notStarted(`${file}: timed out after ${timeoutMs} ms (the command spawner did not answer within ${ANSWER_GRACE_MS} ms more)`), timedOut: true });
        }, timeoutMs + ANSWER_GRACE_MS);
      }
      this.pending.set(id, p);
      holdLoop(child, true);
      child.stdin!.write(Buffer.concat([head, ...strings, input]));
    });
  }

  private ensure(): ChildProcess {
    if (this.child) return this.child;
    const child = spawn(this.binary, lockFile ? [lockFile] : [], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.child = child;
    this.chunks = [];
    this.buffered = 0;
    child.stdout!.on('data', (chunk: Buffer) => this.onData(chunk));
    child.stdin!.on('error', () => {}); // a dead helper shows as its exit
    child.on('error', (err) => this.onGone(child, `could not run ${this.binary}: ${errorMessage(err)}`));
    child.on('exit', (code, signal) => this.onGone(child, `exited (${signal ?? code})`));
    holdLoop(child, false);
    return child;
  }

  private onData(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.buffered < 4) return;
      if (this.chunks[0]!.length < 4) this.chunks = [Buffer.concat(this.chunks)];
      const len = this.chunks[0]!.readUInt32LE(0);
      if (len > MAX_ANSWER_BYTES) {
        // Not an answer of ours: the stream cannot be read further. Its exit fails what was in flight.
        log.error('command spawner sent a frame over the limit', { bytes: len });
        this.child?.kill('SIGKILL');
        this.chunks = [];
        this.buffered = 0;
        return;
      }
      if (this.buffered < 4 + len) return;
      const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
      const rest = all.subarray(4 + len);
      this.chunks = rest.length ? [rest] : [];
      this.buffered = rest.length;
      this.deaths = 0;
      this.onAnswer(all.subarray(4, 4 + len));
    }
  }

  private onAnswer(f: Buffer): void {
    if (f.length < 24) return;
    const id = f.readUInt32LE(0);
    const p = this.pending.get(id);
    if (!p) return;
    this.settle(id);
    const kind = f.readInt32LE(4);
    const code = f.readInt32LE(8);
    const timedOut = f[12] === 1;
    const overflow = f[13] === 1;
    const outLen = f.readUInt32LE(16);
    const errLen = f.readUInt32LE(20);
    const stdout = stripFinalNewline(f.subarray(24, 24 + outLen).toString());
    const stderr = stripFinalNewline(f.subarray(24 + outLen, 24 + outLen + errLen).toString());
    if (kind === KIND_EXITED && !overflow && !timedOut) {
      p.resolve({ exitCode: code, signal: undefined, stdout, stderr, timedOut: false, failed: code !== 0 });
      return;
    }
    if (kind === KIND_KILLED || kind === KIND_EXITED) {
      const why = timedOut ? `timed out after ${p.timeoutMs} ms` : overflow ? 'printed more than its output limit' : `killed by signal ${code}`;
      p.resolve({ exitCode: undefined, signal: kind === KIND_KILLED ? signalName(code) : undefined, stdout, stderr: stderr || why, timedOut, failed: true });
      return;
    }
    p.resolve(notStarted(kind === KIND_NOT_STARTED ? `could not start: ${errnoName(code)}` : `refused by the spawner: ${errnoName(code)}`));
  }

  /** Forgets a request answered (or given up on); an idle helper stops holding the process. */
  private settle(id: number): void {
    clearTimeout(this.pending.get(id)?.backstop);
    this.pending.delete(id);
    if (this.pending.size === 0 && this.child) holdLoop(this.child, false);
  }

  private onGone(child: ChildProcess, why: string): void {
    if (this.child !== child) return;
    this.child = undefined;
    this.deaths++;
    log.warn('command spawner gone', { why, inFlight: this.pending.size, restarts: this.deaths });
    // What was in flight may have run or not: its callers learn it failed, nothing is run twice.
    for (const p of this.pending.values()) {
      clearTimeout(p.backstop);
      p.resolve(notStarted(`the command spawner ${why}`));
    }
    this.pending.clear();
  }
}

/** An idle helper does not keep the process alive (a CLI command ends when its work does). */
function holdLoop(child: ChildProcess, hold: boolean): void {
  for (const h of [child, child.stdin as unknown as { ref(): void; unref(): void } | null, child.stdout as unknown as { ref(): void; unref(): void } | null]) {
    if (h) {
      if (hold) h.ref();
      else h.unref();
    }
  }
}

function stripFinalNewline(s: string): string {
  return s.endsWith('\r\n') ? s.slice(0, -2) : s.endsWith('\n') ? s.slice(0, -1) : s;
}

function notStarted(message: string): CommandResult {
  return { exitCode: undefined, signal: undefined, stdout: '', stderr: message, timedOut: false, failed: true };
}

function signalName(n: number): string {
  return Object.entries(osConstants.signals).find(([, v]) => v === n)?.[0] ?? `signal ${n}`;
}

/** 'ENOENT (no such file or directory)', as libuv names an errno. */
function errnoName(n: number): string {
  const known = getSystemErrorMap().get(-n);
  return known ? `${known[0]} (${known[1]})` : `errno ${n}`;
}

/** Undefined until first used; null when there is no helper to use. */
let spawner: Spawner | null | undefined;
let lockFile: string | undefined;

/**
 * The daemon's helpers hold this file while they run. A helper outlives a
 * daemon that is killed, until the commands it was running are over (a CNI
 * DEL cut in half leaks what no retry finds); the next daemon's helper takes
 * the file first, so its commands never run beside them. Set before the first
 * command.
 */
export function setSpawnerLock(path: string): void {
  lockFile = path;
}

/** The helper, started on first use; undefined while there is none to use. */
function currentSpawner(): Spawner | undefined {
  if (spawner !== undefined) return spawner ?? undefined;
  if (process.env.FRAKTI_SPAWNER === 'off') {
    spawner = null;
    return undefined;
  }
  let path: string;
  try {
    path = process.env.FRAKTI_SPAWNER || shippedFile('frakti-spawner');
  } catch {
    return undefined; // the single executable's assets are not placed yet: asked again next time
  }
  spawner = existsSync(path) ? new Spawner(path) : null;
  if (!spawner) log.debug('no command spawner: commands are forked from the daemon', { path });
  return spawner ?? undefined;
}

/** Runs a command to its end; never rejects (look at exitCode, failed and timedOut). */
export async function runCommand(file: string, args: string[], opts: CommandOptions = {}): Promise<CommandResult> {
  const helper = currentSpawner();
  if (helper && helper.usable && helper.inFlight < MAX_IN_FLIGHT) return helper.run(file, args, opts);
  const res = await execa(file, args, {
    reject: false,
    timeout: opts.timeoutMs,
    maxBuffer: Math.min(opts.maxBuffer ?? COMMAND_MAX_BUFFER, COMMAND_MAX_BUFFER),
    cwd: opts.cwd,
    env: opts.env,
    extendEnv: true,
    ...(opts.input === undefined ? {} : { input: opts.input }),
  });
  return {
    exitCode: res.exitCode,
    signal: res.signal ?? undefined,
    stdout: String(res.stdout ?? ''),
    stderr: String(res.stderr ?? '') || (res.failed && res.exitCode === undefined ? (res.shortMessage ?? '') : ''),
    timedOut: res.timedOut,
    failed: res.failed,
  };
}

/** Runs a command and throws, naming it with its error output, unless it exits 0. */
export async function runOrThrow(file: string, args: string[], opts: CommandOptions = {}): Promise<string> {
  const res = await runCommand(file, args, opts);
  if (res.exitCode !== 0) throw new Error(`${[file, ...args].join(' ')}: ${res.stderr.trim() || (res.timedOut ? 'timed out' : `exit code ${res.exitCode}`)}`);
  return res.stdout;
}
