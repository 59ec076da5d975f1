// `frakti qmp TARGET [COMMAND [JSON-ARGS]] [--events]`: the QMP debug CLI.
// TARGET is a QMP socket path, a VM directory, or a pod/VM id under --state.
import { readdir, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { QmpClient, vmPaths } from '../../vmm/index.js';
import { errorMessage } from '../../lib/errors.js';
import { UsageError } from '../cli-error.js';
import { DEFAULT_STATE_DIR, vmDir } from '../defaults.js';

export const summary = 'talk QMP to a pod VM: one command, an interactive shell, or its events';

const HELP = `usage: frakti qmp TARGET [COMMAND [JSON-ARGS]] [options]

TARGET is a QMP socket path, a VM directory, or a pod id (its VM under --state).
  frakti qmp POD query-status             run one command, print the reply as JSON
  frakti qmp POD device_del '{"id":"x"}'  with arguments, a JSON object
  frakti qmp POD                          interactive shell (history, tab completion)
  frakti qmp POD --events                 print events as they arrive

options:
  --state DIR        frakti's state directory (default ${DEFAULT_STATE_DIR})
  --timeout-ms N     bound on connecting and on each command (default 10000)
  -h, --help`;

const HISTORY_MAX_LINES = 1000;

export async function resolveQmpSocket(target: string, stateDir: string): Promise<string> {
  if (target.includes('/')) {
    const st = await stat(target).catch(() => undefined);
    if (!st) throw new UsageError(`no such QMP socket or VM directory: ${target}`);
    // A VM directory holds the debug monitor beside the daemon's own.
    return st.isDirectory() ? vmPaths(target).debugQmpSocket : target;
  }
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(target)) throw new UsageError(`'${target}' is neither a socket path nor a pod id`);
  // A pod id prefix, as crictl shows them, names the one VM whose directory starts with it.
  let id = target;
  if (target.length < 16) {
    const hits = (await readdir(join(stateDir, 'vm')).catch(() => [] as string[])).filter((n) => n.startsWith(target));
    if (hits.length > 1) throw new UsageError(`pod id prefix '${target}' is ambiguous (${hits.length} VMs match)`);
    if (hits.length === 1) id = hits[0]!;
  }
  const sock = vmPaths(vmDir(stateDir, id)).debugQmpSocket;
  if (!(await stat(sock).catch(() => undefined))) throw new UsageError(`no VM for pod '${target}' under ${stateDir} (no ${sock})`);
  return sock;
}

function parseJsonArgs(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`arguments are not JSON: ${errorMessage(err)}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UsageError('arguments must be a JSON object');
  return v as Record<string, unknown>;
}

export async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        state: { type: 'string', default: DEFAULT_STATE_DIR },
        events: { type: 'boolean', default: false },
        'timeout-ms': { type: 'string', default: '10000' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const [target, command, jsonArgs, ...extra] = positionals;
  if (!target) throw new UsageError('missing TARGET (see frakti qmp --help)');
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
  const timeoutMs = Number(values['timeout-ms']);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new UsageError('--timeout-ms must be a positive integer');
  const args = parseJsonArgs(jsonArgs);
  const socket = await resolveQmpSocket(target, values.state!);
  const qmp = await QmpClient.connect(socket, { timeoutMs, commandTimeoutMs: timeoutMs });
  try {
    if (command) {
      const reply = await qmp.execute(command, args);
      process.stdout.write(JSON.stringify(reply ?? {}, null, 2) + '\n');
      return 0;
    }
    if (values.events) return await followEvents(qmp);
    return await shell(qmp);
  } finally {
    qmp.close();
  }
}

async function followEvents(qmp: QmpClient): Promise<number> {
  qmp.on('event', (ev) => process.stdout.write(JSON.stringify(ev) + '\n'));
  process.stderr.write('frakti qmp: following events (Ctrl-C to stop)\n');
  return new Promise((resolve) => {
    const stop = () => resolve(0);
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    // The VM going away ends the stream; that is not an error of this command.
    qmp.on('close', () => {
      process.stderr.write('frakti qmp: the VM closed the connection\n');
      resolve(0);
    });
  });
}

function historyFile(): string {
  return process.env.FRAKTI_QMP_HISTORY ?? join(homedir(), '.frakti_qmp_history');
}

function loadHistory(): string[] {
  try {
    return readFileSync(historyFile(), 'utf8').split('\n').filter(Boolean).reverse().slice(0, HISTORY_MAX_LINES);
  } catch {
    return [];
  }
}

async function shell(qmp: QmpClient): Promise<number> {
  const commands = ((await qmp.execute<{ name: string }[]>('query-commands')) ?? []).map((c) => c.name).sort();
  const rl = createInterface({
    input: process.stdin,
    output: process.stdout,
    prompt: '(qmp) ',
    history: loadHistory(),
    historySize: HISTORY_MAX_LINES,
    completer: (line: string) => {
      const word = line.trimStart();
      if (word.includes(' ')) return [[], line];
      const hits = commands.filter((c) => c.startsWith(word));
      return [hits.length ? hits : commands, word];
    },
  });
  qmp.on('event', (ev) => {
    process.stdout.write(`\nevent ${JSON.stringify(ev)}\n`);
    rl.prompt(true);
  });
  // Lines run one after another; piped input may end before the last reply arrives.
  let queue: Promise<void> = Promise.resolve();
  let quitting = false;
  const done = new Promise<number>((resolve) => {
    rl.on('close', () => {
      quitting = true;
      void queue.then(() => resolve(0));
    });
    qmp.on('close', () => {
      if (!quitting) process.stderr.write('frakti qmp: the VM closed the connection\n');
      rl.close();
    });
  });
  const history: string[] = [];
  const runLine = async (text: string) => {
    const sp = text.indexOf(' ');
    const name = sp < 0 ? text : text.slice(0, sp);
    try {
      const reply = await qmp.execute(name, parseJsonArgs(sp < 0 ? undefined : text.slice(sp + 1)));
      process.stdout.write(JSON.stringify(reply ?? {}, null, 2) + '\n');
    } catch (err) {
      process.stdout.write(`error: ${errorMessage(err)}\n`);
    }
    rl.prompt();
  };
  rl.on('line', (line) => {
    const text = line.trim();
    if (text === '') return rl.prompt();
    if (text === 'quit' || text === 'exit') {
      quitting = true;
      return void queue.then(() => rl.close());
    }
    history.push(text);
    queue = queue.then(() => runLine(text));
  });
  rl.prompt();
  const code = await done;
  try {
    const all = [...loadHistory().reverse(), ...history].slice(-HISTORY_MAX_LINES);
    writeFileSync(historyFile(), all.join('\n') + '\n', { mode: 0o600 });
  } catch {
    /* history is a convenience */
  }
  return code;
}
