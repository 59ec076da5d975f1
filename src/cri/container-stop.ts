// RuntimeService/StopContainer: SIGTERM, then SIGKILL after `timeout` seconds; idempotent.
import type { PodDeps } from './pod-manager-holder.js';
import { invalidArgument } from './errors.js';

export const MAX_STOP_TIMEOUT_SEC = 24 * 3600;

export function makeStopContainer(d: PodDeps) {
  return async (req: { container_id: string; timeout: string }) => {
    const timeout = Number(req.timeout);
    if (!Number.isInteger(timeout) || timeout < 0 || timeout > MAX_STOP_TIMEOUT_SEC) throw invalidArgument(`StopContainer: timeout must be 0..${MAX_STOP_TIMEOUT_SEC} seconds`);
    await d.pods().stopContainer(req.container_id, timeout);
    return {};
  };
}
