// RuntimeService/ExecSync: run a command, collect its output (bounded), honour the timeout.
import type { PodDeps } from './pod-manager-holder.js';
import { invalidArgument } from './errors.js';

export function makeExecSync(d: PodDeps) {
  return async (req: { container_id: string; cmd: string[]; timeout: string }) => {
    const timeout = Number(req.timeout);
    if (!Number.isInteger(timeout) || timeout < 0) throw invalidArgument('ExecSync: timeout must be a whole number of seconds');
    if (req.cmd.length === 0) throw invalidArgument('ExecSync: cmd is required');
    const r = await d.pods().execSync(req.container_id, req.cmd, timeout);
    return { stdout: r.stdout, stderr: r.stderr, exit_code: r.exitCode };
  };
}
