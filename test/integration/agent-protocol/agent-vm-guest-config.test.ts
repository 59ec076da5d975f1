// Guest configuration by the real agent in a real VM: permanent neighbour
// entries and a NIC renamed by MAC (on a virtio-net NIC hot-plugged onto a
// host tap, as a pod gets its NIC), and hot-plugged memory onlined. Each test
// boots its own VM and removes it, its tap and its directory again, also
// when it fails.
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { AgentCallError } from '../../../src/agent-protocol/index.js';
import { hotplugMemory, hotplugNic, listMemoryDevices } from '../../../src/vmm/index.js';
import { containerSpec, execProc, readAll, startAgentVm, type AgentVm, type AgentVmOptions } from '../../helpers/agent-vm.js';
import { mountsUnder, processesMentioning } from '../../helpers/vmm-leaks.js';

const MiB = 1024 * 1024;
const NIC_APPEAR_TIMEOUT_MS = 30_000;
const MEMORY_APPEAR_TIMEOUT_MS = 30_000;

interface Probe {
  pod: AgentVm;
  /** Runs a command in a busybox container of the pod (the guest's network namespace, its /sys). */
  sh(script: string): Promise<string>;
}

let tapSeq = 0;

/** A unique tap name (at most 15 bytes) for this process. */
function tapName(): string {
  return `fkt${process.pid % 1_000_000}t${tapSeq++}`;
}

async function linkExists(name: string): Promise<boolean> {
  return (await execa('ip', ['link', 'show', 'dev', name], { reject: false })).exitCode === 0;
}

/**
 * Boots a pod VM with a busybox container to look around in. When `tap` is
 * given, that host tap is created first. Cleanup (VM, tap, directory) is
 * registered before anything is made, and checks that nothing is left.
 */
async function startProbe(t: TestContext, opts: AgentVmOptions & { tap?: string } = {}): Promise<Probe> {
  let pod: AgentVm | undefined;
  let dir: string | undefined;
  t.after(async () => {
    try {
      await pod?.stop();
    } finally {
      if (opts.tap) await execa('ip', ['link', 'del', 'dev', opts.tap], { reject: false });
    }
    const left: string[] = [];
    if (opts.tap && (await linkExists(opts.tap))) left.push(`tap ${opts.tap}`);
    if (dir) {
      left.push(...(await processesMentioning(dir)).map((p) => `process ${p.pid} ${p.cmd.slice(0, 80)}`));
      left.push(...(await mountsUnder(dir)).map((m) => `mount ${m}`));
      if (await access(dir).then(() => true, () => false)) left.push(`directory ${dir}`);
    }
    assert.deepEqual(left, [], 'the test left nothing behind');
  });
  if (opts.tap) await execa('ip', ['tuntap', 'add', 'dev', opts.tap, 'mode', 'tap']);
  pod = await startAgentVm(opts);
  dir = pod.dir;
  const p = pod;
  const root = await p.rootfs('probe');
  await p.agent.createContainer(containerSpec('probe', root));
  const started = await p.agent.startContainer('probe');
  started.stdout.resume();
  started.stderr.resume();
  let n = 0;
  return {
    pod: p,
    async sh(script) {
      const id = `sh${n++}`;
      const x = await p.agent.exec('probe', id, execProc(['sh', '-c', script]));
      const [out, err, exit] = await Promise.all([readAll(x.stdout), readAll(x.stderr), p.agent.wait('probe', id)]);
      assert.equal(exit.exitCode, 0, `\`${script}\` failed: ${err.toString()}`);
      return out.toString();
    },
  };
}

/** The guest's NICs: kernel name -> MAC. */
async function guestLinks(probe: Probe): Promise<Map<string, string>> {
  const out = await probe.sh('for d in /sys/class/net/*; do echo "${d##*/} $(cat $d/address)"; done');
  return new Map(out.trim().split('\n').map((l) => l.split(' ') as [string, string]));
}

/** The flags of `ip link show` output: `3: eth0: <BROADCAST,MULTICAST,UP> mtu ...`. */
function linkFlags(out: string): string[] {
  return /^\d+: [^:]+: <([^>]*)>/m.exec(out)?.[1]?.split(',') ?? assert.fail(`no link in ${out}`);
}

/** Plugs a virtio-net NIC with `mac` on `tap` and waits until the guest kernel has it; returns its guest name. */
async function plugNic(probe: Probe, tap: string, mac: string): Promise<string> {
  assert.ok(![...(await guestLinks(probe)).values()].includes(mac), 'the NIC is not there before it is plugged');
  await hotplugNic(probe.pod.vm.qmp, { id: 'nic0', tap, mac });
  const deadline = Date.now() + NIC_APPEAR_TIMEOUT_MS;
  for (;;) {
    const name = [...(await guestLinks(probe))].find(([, m]) => m === mac)?.[0];
    if (name) return name;
    assert.ok(Date.now() < deadline, `the guest did not see NIC ${mac} within ${NIC_APPEAR_TIMEOUT_MS} ms`);
    await sleep(200);
  }
}

test('neighbours: permanent ARP and NDP entries with the MAC asked for, on the named device or the first NIC', async (t) => {
  const tap = tapName();
  const probe = await startProbe(t, { tap });
  const mac = '02:00:0a:4d:00:02';
  const dev = await plugNic(probe, tap, mac);
  assert.doesNotMatch(await probe.sh('cat /proc/net/arp'), /10\.77\.0\./, 'no neighbour entries before');

  await probe.pod.agent.configureNetwork({
    interfaces: [{ mac, mtu: 1500, addresses: ['10.77.0.2/24', 'fd77::2/64'] }],
    routes: [],
    neighbors: [
      { ip: '10.77.0.1', mac: '02:00:0a:4d:00:01', device: dev },
      // Upper case MAC, and no device: the entry goes to the first interface.
      { ip: '10.77.0.9', mac: '02:00:0A:4D:00:09' },
      { ip: 'fd77::1', mac: '02:00:0a:4d:00:11', device: dev },
    ],
  });

  // /proc/net/arp: IP, HW type, flags (0x6 = ATF_COM|ATF_PERM), HW address, mask, device.
  const arp = await probe.sh('cat /proc/net/arp');
  assert.match(arp, new RegExp(`^10\\.77\\.0\\.1\\s+0x1\\s+0x6\\s+02:00:0a:4d:00:01\\s+\\*\\s+${dev}$`, 'm'));
  assert.match(arp, new RegExp(`^10\\.77\\.0\\.9\\s+0x1\\s+0x6\\s+02:00:0a:4d:00:09\\s+\\*\\s+${dev}$`, 'm'));
  // busybox ip prints `IP lladdr MAC used 0/0/0 probes 0 PERMANENT`.
  const v4 = await probe.sh(`ip -4 neigh show dev ${dev}`);
  assert.match(v4, /^10\.77\.0\.1 lladdr 02:00:0a:4d:00:01 .*\bPERMANENT$/m);
  assert.match(v4, /^10\.77\.0\.9 lladdr 02:00:0a:4d:00:09 .*\bPERMANENT$/m);
  assert.match(await probe.sh(`ip -6 neigh show dev ${dev}`), /^fd77::1 lladdr 02:00:0a:4d:00:11 .*\bPERMANENT$/m);

  // Asked again with a new MAC, the entry is replaced, not duplicated.
  await probe.pod.agent.configureNetwork({ interfaces: [], routes: [], neighbors: [{ ip: '10.77.0.1', mac: '02:00:0a:4d:00:aa', device: dev }] });
  const again = await probe.sh(`ip -4 neigh show dev ${dev}`);
  assert.match(again, /^10\.77\.0\.1 lladdr 02:00:0a:4d:00:aa .*\bPERMANENT$/m);
  assert.equal(again.match(/^10\.77\.0\.1 /gm)?.length, 1);

  // A device the guest does not have, or no interface to default to, is refused by name.
  await assert.rejects(
    probe.pod.agent.configureNetwork({ interfaces: [], routes: [], neighbors: [{ ip: '10.77.0.3', mac: '02:00:0a:4d:00:03', device: 'nosuch0' }] }),
    (e: unknown) => e instanceof AgentCallError && e.errnum === 19 && /add neighbour 10\.77\.0\.3/.test(e.message),
  );
  await assert.rejects(
    probe.pod.agent.configureNetwork({ interfaces: [], routes: [], neighbors: [{ ip: '10.77.0.4', mac: '02:00:0a:4d:00:04' }] }),
    (e: unknown) => e instanceof AgentCallError && e.errnum === 19 && /add neighbour 10\.77\.0\.4/.test(e.message),
  );
  assert.doesNotMatch(await probe.sh('cat /proc/net/arp'), /10\.77\.0\.[34]\s/);
});

test('a NIC found by MAC is renamed, gets its MTU and addresses, is up, and routes use the new name', async (t) => {
  const tap = tapName();
  const probe = await startProbe(t, { tap });
  const mac = '02:00:0a:4e:00:02';
  const old = await plugNic(probe, tap, mac);
  assert.notEqual(old, 'eth7');
  assert.deepEqual(linkFlags(await probe.sh(`ip link show dev ${old}`)).filter((f) => f === 'UP'), [], 'a new NIC is down until configured');

  const request = {
    interfaces: [{ mac: mac.toUpperCase(), name: 'eth7', mtu: 1380, addresses: ['10.78.0.2/24', 'fd78::2/64'] }],
    routes: [{ dst: '10.79.0.0/16', gateway: '10.78.0.1', device: 'eth7' }],
  };
  await probe.pod.agent.configureNetwork(request);

  const links = await guestLinks(probe);
  assert.equal(links.get('eth7'), mac, 'eth7 is the NIC with that MAC');
  assert.equal(links.has(old), false, `the old name ${old} is gone`);
  assert.equal(await probe.sh('cat /sys/class/net/eth7/mtu'), '1380\n');
  const link = await probe.sh('ip link show dev eth7');
  assert.match(link, /^\d+: eth7: <.*> mtu 1380 /m);
  assert.ok(linkFlags(link).includes('UP'), `eth7 is up: ${link}`);
  const addrs = await probe.sh('ip addr show dev eth7');
  assert.match(addrs, /inet 10\.78\.0\.2\/24 .*eth7/);
  assert.match(addrs, /inet6 fd78::2\/64/);
  assert.match(await probe.sh('ip route'), /^10\.79\.0\.0\/16 via 10\.78\.0\.1 dev eth7/m);

  // The same request again (a retry after a reconnect) changes nothing and succeeds.
  await probe.pod.agent.configureNetwork(request);
  assert.equal((await guestLinks(probe)).get('eth7'), mac);
  assert.equal((await probe.sh('ip addr show dev eth7')).match(/inet 10\.78\.0\.2\//g)?.length, 1);

  // A NIC that is already up is renamed too (the kernel renames only links
  // that are down); it comes back up with the addresses and routes asked for.
  await probe.pod.agent.configureNetwork({
    interfaces: [{ ...request.interfaces[0]!, name: 'eth8' }],
    routes: [{ ...request.routes[0]!, device: 'eth8' }],
  });
  const renamed = await guestLinks(probe);
  assert.equal(renamed.get('eth8'), mac);
  assert.equal(renamed.has('eth7'), false);
  assert.ok(linkFlags(await probe.sh('ip link show dev eth8')).includes('UP'), 'eth8 is up');
  const addrs8 = await probe.sh('ip addr show dev eth8');
  assert.match(addrs8, /inet 10\.78\.0\.2\/24 /);
  assert.match(addrs8, /inet6 fd78::2\/64/);
  assert.match(await probe.sh('ip route'), /^10\.79\.0\.0\/16 via 10\.78\.0\.1 dev eth8/m);
});

test('a hot-plugged DIMM is onlined by the agent and the guest memory grows by its size', async (t) => {
  const dimmMiB = 256;
  // memhp_default_state=offline: the guest kernel is built to online
  // hot-plugged memory itself (MEMORY_HOTPLUG_DEFAULT_ONLINE); here it must
  // not, so that only the agent's onlining can make the memory usable.
  const probe = await startProbe(t, { memoryMiB: 512, maxMemoryMiB: 512 + dimmMiB, kernelArgs: ['memhp_default_state=offline'] });
  const { agent } = probe.pod;
  const blockBytes = parseInt(await probe.sh('cat /sys/devices/system/memory/block_size_bytes'), 16);
  assert.ok(blockBytes > 0 && (dimmMiB * MiB) % blockBytes === 0, `memory block size ${blockBytes}`);
  const blocks = async () => {
    const out = await probe.sh('cd /sys/devices/system/memory && for b in memory*; do echo "$b $(cat $b/state)"; done');
    return new Map(out.trim().split('\n').map((l) => l.split(' ') as [string, string]));
  };
  const bootBlocks = await blocks();
  const before = await agent.guestStats();
  assert.deepEqual(await agent.onlineHotplugged(), { cpus: 0, memoryBytes: 0 }, 'nothing to online before the plug');

  await hotplugMemory(probe.pod.vm.qmp, 'dimm0', dimmMiB, true);
  assert.deepEqual(await listMemoryDevices(probe.pod.vm.qmp), [{ id: 'dimm0', sizeMiB: dimmMiB }]);

  // The guest adds the DIMM's memory blocks (offline) when it handles the ACPI event.
  const deadline = Date.now() + MEMORY_APPEAR_TIMEOUT_MS;
  let added: [string, string][] = [];
  while (added.length * blockBytes < dimmMiB * MiB) {
    assert.ok(Date.now() < deadline, `the guest added ${added.length} memory blocks within ${MEMORY_APPEAR_TIMEOUT_MS} ms`);
    await sleep(200);
    added = [...(await blocks())].filter(([b]) => !bootBlocks.has(b));
  }
  assert.equal(added.length * blockBytes, dimmMiB * MiB);
  assert.deepEqual(added.map(([, s]) => s), added.map(() => 'offline'), 'the new blocks wait offline');
  assert.equal((await agent.guestStats()).memTotalBytes, before.memTotalBytes, 'offline memory does not count yet');

  assert.deepEqual(await agent.onlineHotplugged(), { cpus: 0, memoryBytes: dimmMiB * MiB });
  const now = await blocks();
  assert.deepEqual(added.map(([b]) => now.get(b)), added.map(() => 'online'));
  const after = await agent.guestStats();
  // MemTotal counts every page of an onlined block: the DIMM's struct pages
  // come from boot memory (memmap_on_memory is off by default), so it grows
  // by exactly the DIMM size.
  assert.equal(after.memTotalBytes - before.memTotalBytes, dimmMiB * MiB);
  // The new pages are free, so nearly all of them are available (the kernel
  // raises its watermarks a little with the zone size).
  assert.ok(after.memAvailableBytes - before.memAvailableBytes > (dimmMiB * MiB * 3) / 4, `MemAvailable ${before.memAvailableBytes} -> ${after.memAvailableBytes}`);
  assert.deepEqual(await agent.onlineHotplugged(), { cpus: 0, memoryBytes: 0 }, 'nothing left to online');
});
