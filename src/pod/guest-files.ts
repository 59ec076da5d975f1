// Files every container of a pod sees: /etc/resolv.conf from the CRI DNS
// config, /etc/hosts with the pod's own name and addresses.
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { PodError } from './errors.js';
import type { DnsConfig } from './types.js';

/** glibc reads at most 3 nameservers and 6 search domains. */
const MAX_SERVERS = 3;
const MAX_SEARCHES = 32;
/** At most 64 bytes (Linux's HOST_NAME_MAX); nothing that would break /etc/hosts. */
const HOSTNAME_RE = /^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?$/;

export function resolvConf(dns: DnsConfig): string {
  if (dns.servers.length === 0 && dns.searches.length === 0 && dns.options.length === 0) return '';
  for (const s of dns.servers) if (isIP(s) === 0) throw new PodError('INVALID_ARGUMENT', `DNS server ${JSON.stringify(s)} is not an IP address`);
  if (dns.searches.length > MAX_SEARCHES) throw new PodError('INVALID_ARGUMENT', `more than ${MAX_SEARCHES} DNS search domains`);
  for (const x of [...dns.searches, ...dns.options]) if (/\s/.test(x) || x === '') throw new PodError('INVALID_ARGUMENT', `bad DNS search or option ${JSON.stringify(x)}`);
  const lines = dns.servers.slice(0, MAX_SERVERS).map((s) => `nameserver ${s}`);
  if (dns.searches.length > 0) lines.push(`search ${dns.searches.join(' ')}`);
  if (dns.options.length > 0) lines.push(`options ${dns.options.join(' ')}`);
  return lines.join('\n') + '\n';
}

/** The node's resolver file, and how much of it is read. */
export const HOST_RESOLV_CONF = '/etc/resolv.conf';
const HOST_RESOLV_MAX_BYTES = 64 * 1024;

/**
 * The node's DNS settings for a pod whose request has none. Loopback
 * nameservers (a local stub resolver) are left out: in the guest, loopback
 * is the guest's own. A missing file gives none.
 */
export async function hostDns(path = HOST_RESOLV_CONF): Promise<DnsConfig> {
  const text = (await readFile(path, 'latin1').catch(() => '')).slice(0, HOST_RESOLV_MAX_BYTES);
  const dns: DnsConfig = { servers: [], searches: [], options: [] };
  for (const line of text.split('\n')) {
    const [key, ...words] = line.replace(/[#;].*/, '').trim().split(/\s+/);
    if (key === 'nameserver' && words[0] && isIP(words[0]) && !/^(127\.|::1$)/.test(words[0])) dns.servers.push(words[0]);
    else if (key === 'search' || key === 'domain') dns.searches = words.filter(Boolean).slice(0, MAX_SEARCHES);
    else if (key === 'options') dns.options.push(...words.filter(Boolean));
  }
  dns.servers = dns.servers.slice(0, MAX_SERVERS);
  return dns;
}

export function checkHostname(h: string): string {
  if (!HOSTNAME_RE.test(h)) throw new PodError('INVALID_ARGUMENT', `hostname ${JSON.stringify(h)} is not a valid host name`);
  return h;
}

export function hostsFile(hostname: string, ips: string[]): string {
  const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback', 'fe00::0\tip6-localnet', 'fe00::1\tip6-allnodes', 'fe00::2\tip6-allrouters'];
  for (const ip of ips) lines.push(`${ip}\t${hostname}`);
  if (ips.length === 0) lines.push(`127.0.1.1\t${hostname}`);
  return lines.join('\n') + '\n';
}
