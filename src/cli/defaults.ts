// Default locations shared by the daemon and the subcommands.
import { join } from 'node:path';

export const DEFAULT_ROOT_DIR = '/var/lib/frakti';
export const DEFAULT_STATE_DIR = '/run/frakti';
export const DEFAULT_SOCKET = '/run/frakti/frakti.sock';

/** Each pod VM's directory (sockets, pid files) lives under the volatile state dir, named by the pod id's first 16 digits. */
export function vmDir(stateDir: string, id: string): string {
  return join(stateDir, 'vm', id.slice(0, 16));
}
