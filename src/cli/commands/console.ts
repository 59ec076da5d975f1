// `frakti console TARGET`: the last output of a pod VM's serial console (the
// guest kernel and agent), read from QEMU's bounded ring buffer over the
// debug QMP monitor. --follow keeps printing what arrives.
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { QmpClient, CONSOLE_CHARDEV_ID, CONSOLE_RING_BYTES } from '../../vmm/index.js';
import { errorMessage } from '../../lib/errors.js';
import { UsageError } from '../cli-error.js';
import { DEFAULT_STATE_DIR } from '../defaults.js';
import { resolveQmpSocket } from './qmp.js';

export const summary = "print a pod VM's serial console (guest kernel and agent messages)";

const HELP = `usage: frakti console TARGET [--follow] [--state DIR]

TARGET is a pod id, a VM directory or a QMP socket path (see frakti qmp).
Prints what the guest wrote on its console (the last ${CONSOLE_RING_BYTES / 1024} KiB kept by QEMU).
Reading consumes it: a second call prints only what came since.`;

const FOLLOW_INTERVAL_MS = 200;

export async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        state: { type: 'string', default: DEFAULT_STATE_DIR },
        follow: { type: 'boolean', short: 'f', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
  if (parsed.values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const [target, ...extra] = parsed.positionals;
  if (!target) throw new UsageError('missing TARGET (see frakti console --help)');
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
  const qmp = await QmpClient.connect(await resolveQmpSocket(target, parsed.values.state!));
  try {
    const read = () => qmp.execute<string>('ringbuf-read', { device: CONSOLE_CHARDEV_ID, size: CONSOLE_RING_BYTES, format: 'utf8' });
    process.stdout.write(await read());
    if (!parsed.values.follow) return 0;
    let stop = false;
    process.once('SIGINT', () => (stop = true));
    while (!stop && qmp.ready) {
      await sleep(FOLLOW_INTERVAL_MS);
      process.stdout.write(await read().catch(() => ''));
    }
    return 0;
  } finally {
    qmp.close();
  }
}
