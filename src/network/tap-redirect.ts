// The tc-redirect wiring: a tap device beside the CNI veth in the pod's
// namespace, with everything arriving on either mirrored out of the other.
// Any CNI plugin works unchanged, and the VM's NIC (on the tap) takes the
// veth's MAC, so the plugin's view of the pod stays true. Removing the
// namespace removes all of it.
import { isIP } from 'node:net';
import { ipIn, tcIn } from './netns.js';
import { NetworkError } from './errors.js';
import { isCidr } from './cni-result.js';

export interface PodInterface {
  name: string;
  mac: string;
  mtu: number;
  /** CIDRs on the interface (global scope). */
  addresses: string[];
}

export interface PodRoute {
  /** CIDR, or "default". */
  dst: string;
  gateway?: string;
  /** Interface name the route goes through. */
  dev?: string;
}

export interface TapWiring {
  tap: string;
  /** The interface the tap mirrors, as CNI left it: the guest takes over its MAC, addresses and MTU. */
  iface: PodInterface;
  routes: PodRoute[];
}

const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;

export async function readInterface(netns: string, name: string): Promise<PodInterface> {
  const out = JSON.parse(await ipIn(netns, ['-j', 'addr', 'show', 'dev', name])) as {
    ifname: string; address?: string; mtu?: number; addr_info?: { local: string; prefixlen: number; scope: string }[];
  }[];
  const link = out[0];
  if (!link?.address || !link.mtu) throw new NetworkError('NET_IFACE', `netns ${netns}: interface ${name} has no MAC or MTU`);
  const addresses = (link.addr_info ?? []).filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`).filter(isCidr);
  return { name, mac: link.address, mtu: link.mtu, addresses };
}

export async function readRoutes(netns: string): Promise<PodRoute[]> {
  const routes: PodRoute[] = [];
  for (const fam of ['-4', '-6']) {
    const out = JSON.parse(await ipIn(netns, ['-j', fam, 'route', 'show'])) as { dst: string; gateway?: string; dev?: string; protocol?: string }[];
    for (const r of out) {
      // Kernel-made prefix routes come back in the guest by themselves with its addresses.
      if (r.protocol === 'kernel') continue;
      if (r.dst !== 'default' && !isCidr(r.dst) && isIP(r.dst) === 0) continue;
      routes.push({ dst: r.dst, gateway: r.gateway, dev: r.dev });
    }
  }
  return routes;
}

async function redirect(netns: string, from: string, to: string): Promise<void> {
  await tcIn(netns, ['qdisc', 'add', 'dev', from, 'ingress']);
  await tcIn(netns, ['filter', 'add', 'dev', from, 'parent', 'ffff:', 'protocol', 'all', 'u32', 'match', 'u8', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', to]);
}

/** Creates the tap and the redirects both ways. Must run before QEMU opens the tap. */
export async function wireTap(netns: string, ifName = 'eth0', tap = 'tap0'): Promise<TapWiring> {
  if (!IFNAME_RE.test(ifName) || !IFNAME_RE.test(tap)) throw new NetworkError('NET_IFACE', `bad interface names ${ifName}, ${tap}`);
  const iface = await readInterface(netns, ifName);
  const routes = await readRoutes(netns);
  await ipIn(netns, ['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  await ipIn(netns, ['link', 'set', 'dev', tap, 'mtu', String(iface.mtu), 'up']);
  await redirect(netns, ifName, tap);
  await redirect(netns, tap, ifName);
  return { tap, iface, routes };
}
