// The tc-redirect wiring: a tap device beside the CNI veth in the pod's
// namespace, with everything arriving on either mirrored out of the other.
// Any CNI plugin works unchanged, and the VM's NIC (on the tap) takes the
// veth's MAC, so the plugin's view of the pod stays true. Removing the
// namespace removes all of it.
import { isIP } from 'node:net';
import { ipIn, tcBatchIn } from './netns.js';
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
  const families = await Promise.all(['-4', '-6'].map((fam) => ipIn(netns, ['-j', fam, 'route', 'show'])));
  for (const text of families) {
    const out = JSON.parse(text) as { dst: string; gateway?: string; dev?: string; protocol?: string }[];
    for (const r of out) {
      // Kernel-made prefix routes come back in the guest by themselves with its addresses.
      if (r.protocol === 'kernel') continue;
      if (r.dst !== 'default' && !isCidr(r.dst) && isIP(r.dst) === 0) continue;
      routes.push({ dst: r.dst, gateway: r.gateway, dev: r.dev });
    }
  }
  return routes;
}

/** The four tc changes of the two redirects, for one tc process instead of four on a pod's start. */
function redirectLines(a: string, b: string): string[] {
  const lines: string[] = [];
  for (const [from, to] of [[a, b], [b, a]]) {
    lines.push(`qdisc add dev ${from} ingress`);
    lines.push(`filter add dev ${from} parent ffff: protocol all u32 match u8 0 0 action mirred egress redirect dev ${to}`);
  }
  return lines;
}

function checkNames(...names: string[]): void {
  for (const n of names) if (!IFNAME_RE.test(n)) throw new NetworkError('NET_IFACE', `bad interface name ${JSON.stringify(n)}`);
}

/**
 * A tap in the namespace, up, not yet wired: a VM's NIC is on it from boot,
 * before CNI has made the interface it will mirror (wireTap with tapExists).
 */
export async function createTap(netns: string, tap = 'tap0'): Promise<void> {
  checkNames(tap);
  await ipIn(netns, ['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  await ipIn(netns, ['link', 'set', 'dev', tap, 'up']);
}

/**
 * Creates the tap (unless it exists) and the redirects both ways. Must run
 * before QEMU opens a tap it creates.
 */
export async function wireTap(netns: string, ifName = 'eth0', tap = 'tap0', opts: { tapExists?: boolean } = {}): Promise<TapWiring> {
  checkNames(ifName, tap);
  const [iface, routes] = await Promise.all([readInterface(netns, ifName), readRoutes(netns)]);
  if (!opts.tapExists) await ipIn(netns, ['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  await ipIn(netns, ['link', 'set', 'dev', tap, 'mtu', String(iface.mtu), 'up']);
  await tcBatchIn(netns, redirectLines(ifName, tap));
  return { tap, iface, routes };
}
