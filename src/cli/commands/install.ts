// `frakti install`: puts the single executable on a node with a systemd unit,
// a commented config file and crictl's endpoint file. An existing config or
// crictl.yaml is kept (the operator's); the executable and the unit are
// replaced. Enabling the service is left to the operator (the command prints how).
import { chmod, copyFile, mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { writeFileAtomic, fsyncDir } from '../../lib/atomic-file.js';
import { errorMessage, isErrno } from '../../lib/errors.js';
import { checkoutDir, isSingleExecutable } from '../../lib/shipped-files.js';
import { defaultConfig } from '../../cri/index.js';
import { UsageError } from '../cli-error.js';
import { DEFAULT_ROOT_DIR, DEFAULT_SOCKET, DEFAULT_STATE_DIR } from '../defaults.js';
import { configText, crictlText, unitText } from '../node-install.js';

export const summary = 'install this executable as a systemd service, with its config file';

const HELP = `usage: frakti install [options]

Copies the frakti executable to BIN-DIR/frakti, writes the systemd unit
UNIT-DIR/frakti.service (KillMode=process: pod VMs survive a restart of the
service), ETC-DIR/frakti/config.toml (every key commented out at its default;
kept if present) and ETC-DIR/crictl.yaml (kept if present). Then:
systemctl daemon-reload && systemctl enable --now frakti

options:
  --bin-dir DIR      where the executable goes (default /usr/local/bin)
  --etc-dir DIR      where config.toml (under frakti/) and crictl.yaml go (default /etc)
  --unit-dir DIR     where frakti.service goes (default /etc/systemd/system)
  --executable FILE  what to install (default: this executable; in a checkout
                     build/release/frakti, made by \`make release\`)
  -h, --help`;

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        'bin-dir': { type: 'string', default: '/usr/local/bin' },
        'etc-dir': { type: 'string', default: '/etc' },
        'unit-dir': { type: 'string', default: '/etc/systemd/system' },
        executable: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  for (const k of ['bin-dir', 'etc-dir', 'unit-dir', 'executable'] as const) {
    const v = values[k];
    if (v !== undefined && !v.startsWith('/')) throw new UsageError(`--${k} must be an absolute path, got '${v}'`);
  }
  const source = values.executable ?? (isSingleExecutable() ? process.execPath : join(checkoutDir(), 'build/release/frakti'));
  const st = await stat(source).catch(() => undefined);
  if (!st?.isFile()) throw new UsageError(`${source} is not a file (run \`make release\`, or give --executable)`);

  const executable = join(values['bin-dir']!, 'frakti');
  const configFile = join(values['etc-dir']!, 'frakti', 'config.toml');
  const unitFile = join(values['unit-dir']!, 'frakti.service');
  const crictlFile = join(values['etc-dir']!, 'crictl.yaml');
  const say = (line: string) => process.stdout.write(line + '\n');

  if (source !== executable) {
    await installExecutable(source, executable);
    say(`installed ${executable}`);
  }
  await mkdir(values['unit-dir']!, { recursive: true, mode: 0o755 });
  await writeFileAtomic(unitFile, unitText({ executable, configFile }), 0o644);
  say(`wrote ${unitFile}`);
  const defaults = defaultConfig({ root: DEFAULT_ROOT_DIR, state: DEFAULT_STATE_DIR, listen: DEFAULT_SOCKET });
  say((await writeIfMissing(configFile, configText(defaults))) ? `wrote ${configFile}` : `kept ${configFile}`);
  say((await writeIfMissing(crictlFile, crictlText(defaults.listen))) ? `wrote ${crictlFile}` : `kept ${crictlFile}`);
  say('');
  say('then: systemctl daemon-reload && systemctl enable --now frakti');
  say(`crictl: crictl --runtime-endpoint unix://${defaults.listen} --image-endpoint unix://${defaults.listen} info`);
  say(`kubelet: --container-runtime-endpoint=unix://${defaults.listen}`);
  return 0;
}

/** Copies to a temporary name beside the target and renames: a running frakti keeps its old inode. */
async function installExecutable(source: string, target: string): Promise<void> {
  const dir = dirname(target);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const tmp = `${target}.tmp-${randomBytes(4).toString('hex')}`;
  try {
    await copyFile(source, tmp);
    await chmod(tmp, 0o755);
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(dir);
}

async function writeIfMissing(path: string, text: string): Promise<boolean> {
  try {
    await readFile(path);
    return false;
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  await writeFileAtomic(path, text, 0o644);
  return true;
}
