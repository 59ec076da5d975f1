// What CNI leaves in the host's NAT table when a pod's DEL never runs: the
// bridge plugin's ipMasq chain and its POSTROUTING jump, and portmap's DNAT
// rules, each commented with the network's name. A test daemon's cleanup
// removes them and says so, so a test that leaks a pod's network fails
// instead of leaving rules behind on the machine.
import { execa } from 'execa';

/** Splits a line of `iptables -S` into arguments: double quotes group, \" is a quote. */
export function splitRule(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  let any = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted && c === '\\' && line[i + 1] === '"') {
      cur += '"';
      i++;
    } else if (c === '"') {
      quoted = !quoted;
      any = true;
    } else if (c === ' ' && !quoted) {
      if (any || cur) out.push(cur);
      cur = '';
      any = false;
    } else {
      cur += c;
    }
  }
  if (any || cur) out.push(cur);
  return out;
}

/** The NAT rules (`iptables -S` lines) whose comment names `network`; throws when iptables cannot list them. */
export async function natRulesNaming(network: string): Promise<string[]> {
  const listed = await execa('iptables', ['-w', '5', '-t', 'nat', '-S'], { timeout: 30_000 });
  const needle = `name: \\"${network}\\"`;
  return listed.stdout.split('\n').filter((l) => l.startsWith('-A ') && l.includes(needle));
}

/** Removes the NAT rules (and their own CNI-* chains) that name `network`; returns the rules it found. */
export async function removeNatLeftovers(network: string): Promise<string[]> {
  // A node without iptables has no such rules to leave.
  const rules = await natRulesNaming(network).catch(() => [] as string[]);
  const chains = new Set<string>();
  for (const rule of rules) {
    const args = splitRule(rule);
    const target = args[args.indexOf('-j') + 1];
    // The chains CNI made for this pod alone (not portmap's shared CNI-HOSTPORT-*).
    if (target && /^CNI-(DN-)?[0-9a-f]+$/.test(target)) chains.add(target);
    await execa('iptables', ['-w', '5', '-t', 'nat', '-D', ...args.slice(1)], { reject: false, timeout: 30_000 });
  }
  for (const chain of chains) {
    await execa('iptables', ['-w', '5', '-t', 'nat', '-F', chain], { reject: false, timeout: 30_000 });
    await execa('iptables', ['-w', '5', '-t', 'nat', '-X', chain], { reject: false, timeout: 30_000 });
  }
  return rules;
}
