// RuntimeService/Status: the two conditions kubelet waits for. RuntimeReady
// is true while we serve; NetworkReady comes from whoever owns pod
// networking (a probe passed in), and says why not when it is false.
import type { RuntimeCondition, StatusRequest, StatusResponse } from './cri-types.js';

export interface ConditionState {
  ready: boolean;
  /** CamelCase reason when not ready (kubelet prints it). */
  reason?: string;
  message?: string;
}

export interface RuntimeStatusDeps {
  /** NetworkReady; the default says networking is not wired in yet. */
  network?: () => Promise<ConditionState> | ConditionState;
  /** Extra verbose info (e.g. the effective config), JSON strings by key. */
  verboseInfo?: () => Record<string, string>;
}

export const NETWORK_NOT_READY: ConditionState = {
  ready: false,
  reason: 'NetworkPluginNotReady',
  message: 'frakti has no pod networking wired in yet',
};

function condition(type: string, s: ConditionState): RuntimeCondition {
  return { type, status: s.ready, reason: s.ready ? '' : (s.reason ?? 'NotReady'), message: s.ready ? '' : (s.message ?? '') };
}

export function makeRuntimeStatus(deps: RuntimeStatusDeps = {}) {
  return async function runtimeStatus(req: StatusRequest): Promise<StatusResponse> {
    const network = deps.network ? await deps.network() : NETWORK_NOT_READY;
    return {
      status: { conditions: [condition('RuntimeReady', { ready: true }), condition('NetworkReady', network)] },
      info: req.verbose && deps.verboseInfo ? deps.verboseInfo() : {},
      // The default handler (empty name) only; frakti has no per-handler features yet.
      runtime_handlers: [{ name: '', features: { recursive_read_only_mounts: false, user_namespaces: false } }],
      features: { supplemental_groups_policy: false, user_namespaces_host_network: false, mount_options: false },
    };
  };
}
