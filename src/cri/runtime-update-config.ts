// RuntimeService/UpdateRuntimeConfig: kubelet hands over the node's pod CIDR
// (when it manages pod CIDRs). frakti's CNI configuration decides addresses,
// so the value is kept for whoever wants it (Status' verbose info shows it)
// and the call succeeds.
import { invalidArgument } from './errors.js';

export interface UpdateRuntimeConfigRequest {
  runtime_config: { network_config: { pod_cidr: string } | null } | null;
}

/** "10.244.0.0/24", "fd00::/64" or a comma-separated pair of them; "" clears. */
const CIDR = /^[0-9a-fA-F:.]{2,45}\/\d{1,3}$/;

export class RuntimeConfigState {
  podCidr = '';

  readonly handler = async (req: UpdateRuntimeConfigRequest): Promise<Record<string, never>> => {
    const cidr = req.runtime_config?.network_config?.pod_cidr ?? '';
    if (cidr !== '' && !cidr.split(',').every((c) => CIDR.test(c.trim()))) throw invalidArgument(`pod_cidr '${cidr.slice(0, 100)}' is not a CIDR`);
    this.podCidr = cidr;
    return {};
  };
}
