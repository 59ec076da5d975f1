// Entry point of the `frakti` executable: dispatches to one module per
// subcommand under ./commands/. Every failure ends as one line on stderr
// ("frakti: what: why") and a non-zero exit code.
import { errorMessage } from '../lib/errors.js';
import { UsageError, exitCodeOf } from './cli-error.js';

interface CommandModule {
  run(argv: string[]): Promise<number>;
  summary: string;
}

// name -> module file under ./commands (loaded on demand: `frakti qmp` does not
// pay for gRPC or image code).
const COMMANDS: Record<string, string> = {
  check: 'check',
  qmp: 'qmp',
  console: 'console',
  daemon: 'daemon',
  image: 'image',
  run: 'run',
  install: 'install',
};

async function load(name: string): Promise<CommandModule | undefined> {
  const file = COMMANDS[name];
  if (!file) return undefined;
  try {
    return (await import(`./commands/${file}.js`)) as CommandModule;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String(err).includes(`commands/${file}.js`)) return undefined;
    throw err;
  }
}

async function usage(): Promise<string> {
  const lines = ['usage: frakti COMMAND [ARGS...]', '', 'commands:'];
  for (const name of Object.keys(COMMANDS)) {
    const mod = await load(name);
    if (mod) lines.push(`  ${name.padEnd(8)} ${mod.summary}`);
  }
  lines.push('', 'Run `frakti COMMAND --help` for the options of one command.');
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write((await usage()) + '\n');
    return name ? 0 : 2;
  }
  if (name === '--version' || name === 'version') {
    const { versionText } = await import('./version.js');
    process.stdout.write(versionText());
    return 0;
  }
  const mod = await load(name);
  if (!mod) throw new UsageError(`unknown command '${name}' (see frakti --help)`);
  return mod.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`frakti: ${errorMessage(err)}\n`);
    process.exitCode = exitCodeOf(err);
  },
);
