// The RuntimeService handler table. Version, Status, RuntimeConfig and
// UpdateRuntimeConfig are served here; every other RPC answers UNIMPLEMENTED naming itself until the
// pod room provides it (issue 5).
import { makeRuntimeStatus, type RuntimeStatusDeps } from './runtime-status.js';
import { runtimeConfig } from './runtime-config.js';
import { runtimeVersion } from './runtime-version.js';
import { RuntimeConfigState } from './runtime-update-config.js';
import type { HandlerTable } from './service-table.js';

export type RuntimeServiceDeps = RuntimeStatusDeps;

export function runtimeHandlers(deps: RuntimeServiceDeps = {}): HandlerTable {
  const config = new RuntimeConfigState();
  const verboseInfo = () => ({ ...deps.verboseInfo?.(), pod_cidr: config.podCidr });
  return {
    unary: {
      Version: runtimeVersion,
      Status: makeRuntimeStatus({ ...deps, verboseInfo }),
      RuntimeConfig: runtimeConfig,
      UpdateRuntimeConfig: config.handler,
    },
  };
}
