// What a fault case checks when it is over and kubelet has removed every
// pod: nothing of frakti's may be left on the node that no record explains.
// Each item is what an operator would look for: QEMU and virtiofsd
// processes, mounts, network namespaces, veths on the pods' bridge, CNI's
// iptables rules, host-local IP reservations, and pod, container and VM
// folders. Returns one line per leak (empty: nothing leaked).
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import type { RunningDaemon } from '../helpers/cri-client.js';
import { fraktiNetns } from '../helpers/e2e-daemon.js';
import { mountsUnder, vmProcessesUnder } from '../helpers/vmm-leaks.js';

export interface NodeBaseline {
  netns: Set<string>;
  cniRules: Set<string>;
}

async function cniRules(): Promise<Set<string>> {
  const r = await execa('iptables-save', [], { reject: false });
  return new Set(r.stdout.split('\n').filter((l) => /CNI-/.test(l) && !l.startsWith('#')));
}

/** What the node had before the case: other frakti daemons' namespaces and rules are not this case's leaks. */
export async function nodeBaseline(): Promise<NodeBaseline> {
  return { netns: new Set(await fraktiNetns()), cniRules: await cniRules() };
}

const entries = (dir: string) => readdir(dir).catch(() => [] as string[]);

/** The bridge of a test daemon's CNI network (test/helpers/cri-client.ts writes it). */
async function testBridge(d: RunningDaemon): Promise<string | undefined> {
  const conf = await import('node:fs/promises').then((fs) => fs.readFile(join(d.dir, 'cni', '10-test.conflist'), 'utf8')).catch(() => undefined);
  return conf ? (JSON.parse(conf) as { plugins: { bridge: string }[] }).plugins[0]!.bridge : undefined;
}

/** Pod and VM ids (64 hex digits) a daemon's logs name: what it made, as far as its namespaces and rules go. */
export function idsInLogs(logs: string): Set<string> {
  return new Set(logs.match(/\b[0-9a-f]{64}\b/g) ?? []);
}

/**
 * `ownIds`, when given, are the ids the case's daemons named in their logs:
 * namespaces and iptables rules of other daemons on the node (another test
 * running at once) are then not counted as this case's.
 */
export async function auditLeaks(d: RunningDaemon, base: NodeBaseline, ownIds?: Set<string>): Promise<string[]> {
  const leaks: string[] = [];
  const mine = (text: string) => !ownIds || [...ownIds].some((id) => text.includes(id.slice(0, 16)));
  for (const p of await vmProcessesUnder(d.dir)) leaks.push(`process ${p.pid}: ${p.cmd.slice(0, 100)}`);
  for (const m of await mountsUnder(d.dir)) leaks.push(`mount ${m}`);
  for (const n of await fraktiNetns()) if (!base.netns.has(n) && mine(n)) leaks.push(`netns ${n}`);
  const bridge = await testBridge(d);
  if (bridge) {
    const r = await execa('ip', ['-o', 'link', 'show', 'master', bridge], { reject: false });
    for (const l of r.stdout.split('\n').filter(Boolean)) leaks.push(`veth on ${bridge}: ${l.split(':')[1]?.trim()}`);
  }
  // A CNI chain's own lines name no pod; its rules name the network and the pod id.
  for (const rule of await cniRules()) {
    if (base.cniRules.has(rule) || (ownIds && rule.startsWith(':'))) continue;
    if (!ownIds || mine(rule)) leaks.push(`iptables: ${rule.slice(0, 120)}`);
  }
  // host-local keeps one file per reserved address, named by it.
  for (const net of await entries(join(d.dir, 'ipam'))) {
    for (const f of await entries(join(d.dir, 'ipam', net))) if (/^[0-9a-f.:]+$/.test(f) && /[.:]/.test(f)) leaks.push(`IP reservation ${net}/${f}`);
  }
  for (const [what, dir] of [['pod record', join(d.root, 'pods')], ['container folder', join(d.root, 'containers')], ['pod state', join(d.state, 'pods')], ['VM folder', join(d.state, 'vm')]] as const) {
    for (const e of await entries(dir)) leaks.push(`${what} ${e}`);
  }
  return leaks;
}
