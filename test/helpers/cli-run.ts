// Runs the real `bin/frakti` as a user would, capturing exit code and output.
import { fileURLToPath } from 'node:url';
import { execa, type Options } from 'execa';

export const FRAKTI_BIN = fileURLToPath(new URL('../../../bin/frakti', import.meta.url));

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function frakti(args: string[], opts: Options = {}): Promise<CliResult> {
  const res = await execa(FRAKTI_BIN, args, { reject: false, timeout: 60_000, ...opts });
  return { exitCode: res.exitCode ?? -1, stdout: String(res.stdout ?? ''), stderr: String(res.stderr ?? '') };
}
