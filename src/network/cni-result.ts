// CNI results (spec 0.3.x, 0.4.0 and 1.0.0) parsed into one validated shape.
// A plugin is a program of the cluster's choosing: its output is checked
// like any input from outside.
import { isIP } from 'node:net';
import { NetworkError } from './errors.js';

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  /** Set for interfaces inside the pod's namespace. */
  sandbox?: string;
}

export interface CniIp {
  /** CIDR, e.g. 10.88.0.5/16 */
  address: string;
  gateway?: string;
  /** Index into interfaces. */
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
}

export interface CniDns {
  nameservers: string[];
  domain?: string;
  search: string[];
  options: string[];
}

export interface CniResult {
  cniVersion: string;
  interfaces: CniInterface[];
  ips: CniIp[];
  routes: CniRoute[];
  dns: CniDns;
}

const MAC_RE = /^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/;
const IFNAME_RE = /^[^\s/:]{1,15}$/;
const MAX_ENTRIES = 64;

export function isCidr(s: unknown): s is string {
  if (typeof s !== 'string') return false;
  const [ip, len, more] = s.split('/');
  if (more !== undefined || len === undefined || !/^\d{1,3}$/.test(len)) return false;
  const fam = isIP(ip ?? '');
  return fam !== 0 && Number(len) <= (fam === 4 ? 32 : 128);
}

function list(v: unknown, what: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.length > MAX_ENTRIES) throw invalid(`${what} must be a list of at most ${MAX_ENTRIES}`);
  return v;
}

function invalid(why: string): NetworkError {
  return new NetworkError('CNI_RESULT_INVALID', `CNI result: ${why}`);
}

function strings(v: unknown, what: string): string[] {
  return list(v, what).map((x) => {
    if (typeof x !== 'string' || x.length > 255) throw invalid(`${what} must hold short strings`);
    return x;
  });
}

export function parseCniResult(raw: unknown): CniResult {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid('not a JSON object');
  const o = raw as Record<string, unknown>;
  const cniVersion = typeof o.cniVersion === 'string' ? o.cniVersion : '';
  if (!/^(0\.3\.[01]|0\.4\.0|1\.\d+\.\d+)$/.test(cniVersion)) throw invalid(`unsupported cniVersion ${JSON.stringify(o.cniVersion)}`);

  const interfaces = list(o.interfaces, 'interfaces').map((x, i): CniInterface => {
    const f = x as Record<string, unknown>;
    if (typeof f?.name !== 'string' || !IFNAME_RE.test(f.name)) throw invalid(`interfaces[${i}].name is not an interface name`);
    if (f.mac !== undefined && (typeof f.mac !== 'string' || !MAC_RE.test(f.mac))) throw invalid(`interfaces[${i}].mac is not a MAC address`);
    if (f.mtu !== undefined && (typeof f.mtu !== 'number' || !Number.isInteger(f.mtu) || f.mtu < 68 || f.mtu > 65535)) throw invalid(`interfaces[${i}].mtu out of range`);
    if (f.sandbox !== undefined && typeof f.sandbox !== 'string') throw invalid(`interfaces[${i}].sandbox is not a string`);
    return { name: f.name, mac: f.mac as string | undefined, mtu: f.mtu as number | undefined, sandbox: f.sandbox as string | undefined };
  });

  const ips = list(o.ips, 'ips').map((x, i): CniIp => {
    const f = x as Record<string, unknown>;
    if (!isCidr(f?.address)) throw invalid(`ips[${i}].address is not a CIDR`);
    if (f.gateway !== undefined && (typeof f.gateway !== 'string' || isIP(f.gateway) === 0)) throw invalid(`ips[${i}].gateway is not an IP`);
    if (f.interface !== undefined && (typeof f.interface !== 'number' || !Number.isInteger(f.interface) || f.interface < 0 || f.interface >= interfaces.length)) {
      throw invalid(`ips[${i}].interface does not index an interface`);
    }
    return { address: f.address as string, gateway: f.gateway as string | undefined, interface: f.interface as number | undefined };
  });

  const routes = list(o.routes, 'routes').map((x, i): CniRoute => {
    const f = x as Record<string, unknown>;
    if (!isCidr(f?.dst)) throw invalid(`routes[${i}].dst is not a CIDR`);
    if (f.gw !== undefined && (typeof f.gw !== 'string' || isIP(f.gw) === 0)) throw invalid(`routes[${i}].gw is not an IP`);
    return { dst: f.dst as string, gw: f.gw as string | undefined };
  });

  const d = (o.dns ?? {}) as Record<string, unknown>;
  if (typeof d !== 'object') throw invalid('dns is not an object');
  const nameservers = strings(d.nameservers, 'dns.nameservers');
  if (nameservers.some((n) => isIP(n) === 0)) throw invalid('dns.nameservers must be IPs');
  const dns: CniDns = {
    nameservers,
    domain: typeof d.domain === 'string' ? d.domain : undefined,
    search: strings(d.search, 'dns.search'),
    options: strings(d.options, 'dns.options'),
  };
  return { cniVersion, interfaces, ips, routes, dns };
}

/** The pod's addresses: the IPs on interfaces inside the sandbox (or all, if none is marked). */
export function podIps(r: CniResult): string[] {
  const inSandbox = r.ips.filter((ip) => ip.interface === undefined || r.interfaces[ip.interface]?.sandbox);
  return (inSandbox.length > 0 ? inSandbox : r.ips).map((ip) => ip.address.split('/')[0]!);
}
