// The tc-redirect wiring: a tap device beside the CNI veth in the pod's
// namespace, with everything arriving on either mirrored out of the other.
// Any CNI plugin works unchanged, and the VM's NIC (on the tap) takes the
// veth's MAC, so the plugin's view of the pod stays true. Removing the
// namespace removes all of it.
import { isIP } from 'node:net';
import { ipIn, ipJsonBatchIn, tcBatchIn } from './netns.js';
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

type IpLink = { ifname: string; address?: string; mtu?: number; addr_info?: { local: string; prefixlen: number; scope: string }[] };
type IpRoute = { dst: string; gateway?: string; dev?: string; protocol?: string };

/**
 * The named interfaces and the routes of the namespace, as CNI left them:
 * links, addresses and IPv4 routes from one `ip`; IPv6 routes (which `ip
 * -batch` cannot ask for) from a second only when an interface has an IPv6 address.
 */
async function readNamespace(netns: string, names: string[]): Promise<{ ifaces: PodInterface[]; routes: PodRoute[] }> {
  const [links, routes4] = (await ipJsonBatchIn(netns, ['addr show', 'route show'])) as [IpLink[], IpRoute[]];
  if (!Array.isArray(links) || !Array.isArray(routes4)) throw new NetworkError('NET_IFACE', `netns ${netns}: ip printed no links or routes`);
  const ifaces = names.map((name) => {
    const link = links.find((l) => l.ifname === name);
    if (!link?.address || !link.mtu) throw new NetworkError('NET_IFACE', `netns ${netns}: interface ${name} has no MAC or MTU`);
    const addresses = (link.addr_info ?? []).filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`).filter(isCidr);
    return { name, mac: link.address, mtu: link.mtu, addresses };
  });
  const v6 = ifaces.some((i) => i.addresses.some((a) => a.includes(':')));
  const routes6 = v6 ? await readRoutes6(netns) : [];
  const routes: PodRoute[] = [];
  for (const r of [...routes4, ...routes6]) {
    // Kernel-made prefix routes come back in the guest by themselves with its addresses.
    if (r.protocol === 'kernel') continue;
    if (r.dst !== 'default' && !isCidr(r.dst) && isIP(r.dst) === 0) continue;
    routes.push({ dst: r.dst, gateway: r.gateway, dev: r.dev });
  }
  return { ifaces, routes };
}

async function readRoutes6(netns: string): Promise<IpRoute[]> {
  const out = await ipIn(netns, ['-j', '-6', 'route', 'show']);
  try {
    const routes = JSON.parse(out) as unknown;
    if (Array.isArray(routes)) return routes as IpRoute[];
  } catch {
    /* reported below */
  }
  throw new NetworkError('NET_IFACE', `netns ${netns}: ip printed no IPv6 routes: ${out.slice(0, 120)}`);
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
 * before QEMU opens a tap it creates. The redirects and the reads of what
 * CNI made go in parallel: on a pod's start each process is time.
 */
export async function wireTap(netns: string, ifName = 'eth0', tap = 'tap0', opts: { tapExists?: boolean } = {}): Promise<TapWiring> {
  checkNames(ifName, tap);
  if (!opts.tapExists) await ipIn(netns, ['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  const [{ ifaces: [iface, tapNow], routes }] = await Promise.all([
    readNamespace(netns, [ifName, tap]),
    tcBatchIn(netns, redirectLines(ifName, tap)),
  ]);
  // The tap carries what the interface carries; up, as a tap made here is not yet.
  if (tapNow!.mtu !== iface!.mtu || !opts.tapExists) await ipIn(netns, ['link', 'set', 'dev', tap, 'mtu', String(iface!.mtu), 'up']);
  return { tap, iface: iface!, routes };
}
