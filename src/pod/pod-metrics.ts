// Gauges read from the pod room when Prometheus scrapes: pods and
// containers by state, pod VMs running and each one's QEMU RSS (the host
// memory a pod costs, which its containers' cgroups inside cannot show).
import { readFile } from 'node:fs/promises';
import { Gauge, type Registry } from 'prom-client';
import type { PodManager } from './pod-manager.js';
import { POD_TAP } from './pod-network.js';

/** QEMU's resident memory in bytes, from /proc; undefined when the process is gone. */
export async function processRssBytes(pid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  return m ? Number(m[1]) * 1024 : undefined;
}

/** The pod's traffic as the guest sees it on eth0, counted on the host at the tap QEMU serves it through. */
export interface PodNetworkCounters {
  rxBytes: number;
  rxPackets: number;
  rxErrors: number;
  txBytes: number;
  txPackets: number;
  txErrors: number;
}


/**
 * Reads the counters of the pod's tap from /proc/PID/net/dev of its QEMU,
 * which runs inside the pod's network namespace. What the host sends into
 * the tap the guest receives, and the reverse.
 */
export async function podNetworkCounters(vmPid: number): Promise<PodNetworkCounters | undefined> {
  const text = await readFile(`/proc/${vmPid}/net/dev`, 'utf8').catch(() => '');
  const line = text.split('\n').find((l) => l.trim().startsWith(POD_TAP + ':'));
  if (!line) return undefined;
  const f = line.split(':')[1]!.trim().split(/\s+/).map(Number);
  // Receive: bytes packets errs drop fifo frame compressed multicast; then transmit: bytes packets ...
  return { rxBytes: f[8]!, rxPackets: f[9]!, rxErrors: f[10]!, txBytes: f[0]!, txPackets: f[1]!, txErrors: f[2]! };
}

/** Entries one usage walk reads at most: a writable layer with millions of files is counted in part. */
export const MAX_USAGE_ENTRIES = 200_000;

export function registerPodGauges(registry: Registry, pods: () => PodManager | undefined): void {
  new Gauge({
    name: 'frakti_pods',
    help: 'Pods by state (READY, NOTREADY).',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of pods()?.pods() ?? []) this.inc({ state: p.status.state });
    },
  });
  new Gauge({
    name: 'frakti_containers',
    help: 'Containers by state (CREATED, RUNNING, EXITED, UNKNOWN).',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const c of pods()?.containers() ?? []) this.inc({ state: c.status.state });
    },
  });
  new Gauge({
    name: 'frakti_vms_running',
    help: 'Pod VMs whose QEMU runs.',
    registers: [registry],
    collect() {
      this.set((pods()?.pods() ?? []).filter((p) => p.status.state === 'READY' && p.status.vmPid).length);
    },
  });
  new Gauge({
    name: 'frakti_vm_qemu_rss_bytes',
    help: "Resident memory of each pod VM's QEMU, by pod id.",
    labelNames: ['pod'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const p of pods()?.pods() ?? []) {
        if (p.status.state !== 'READY' || !p.status.vmPid) continue;
        const rss = await processRssBytes(p.status.vmPid);
        if (rss !== undefined) this.set({ pod: p.meta.id }, rss);
      }
    },
  });
}
