// make bench-pod: pod start (RunPodSandbox + CreateContainer + StartContainer
// until the container runs) through the real daemon, cold and from the pool
// of VMs booted ahead (--vm-pool), each against the bare boot of the same
// kernel with the same QEMU command line, alternated in one run; a burst of
// pods with the default pool; and the host memory (PSS) of idle busybox pods
// (QEMU and virtiofsd together) at 1 and at 10 pods, and of an idle pool VM.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chooseAccel, guestAssets } from '../src/vmm/index.js';
import { bareBootRunsMs } from './bare-boot.js';
import { waitFor } from '../test/helpers/cri-client.js';
import { daemonWithBusybox } from './daemon-setup.js';
import type { RunningDaemon } from '../test/helpers/cri-client.js';
import { DEFAULT_VM_POOL } from '../src/pod/index.js';
import { processesMentioning } from '../test/helpers/vmm-leaks.js';
import { median, report, round, timeMs } from './runner.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const BURST = 5;
const MANY_PODS = 10;
const IDLE_SETTLE_MS = 2_000;
const IDLE_CPU_WINDOW_MS = 10_000;
/**
 * Before each timed boot or pod start, the daemon and its VMs must be quiet:
 * a pool VM just booted still runs its tail (the agent's spare, free page
 * reporting 2 s after pages are freed), and on 2 cores whatever is timed next
 * would share them. Quiet: QUIET_WINDOWS windows in a row under QUIET_PERCENT.
 */
const QUIET_WINDOW_MS = 500;
const QUIET_WINDOWS = 5;
const QUIET_PERCENT = 5;
const QUIET_MAX_MS = 20_000;
/** USER_HZ: the unit of utime and stime in /proc/PID/stat. */
const CLOCK_TICKS_PER_S = 100;

/** CPU time (user + system) a process has used so far, in seconds. */
async function cpuSeconds(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
}

async function pssKiB(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  return Number(/^Pss:\s+(\d+) kB/m.exec(text)?.[1] ?? NaN);
}

type PssKinds = { guest_ram: number; files: number; private: number };

/**
 * PSS by what it is: guest RAM (the memfd QEMU and virtiofsd share), mapped
 * files (QEMU, its libraries, the kernel image: page cache that further pods
 * share), and the rest (heaps, TCG's translation cache).
 */
async function pssKindsKiB(pid: number): Promise<PssKinds> {
  const out: PssKinds = { guest_ram: 0, files: 0, private: 0 };
  let kind: keyof PssKinds = 'private';
  for (const line of (await readFile(`/proc/${pid}/smaps`, 'utf8')).split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const name = head[1] ?? '';
      kind = name.startsWith('/memfd:') ? 'guest_ram' : name.startsWith('/') ? 'files' : 'private';
      continue;
    }
    const pss = /^Pss:\s+(\d+) kB/.exec(line);
    if (pss) out[kind] += Number(pss[1]);
  }
  return out;
}

/** The namespaces kubelet asks for a pod without shareProcessNamespace: each container its own PID namespace. */
const kubeletLinux = { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } };

/** One pod start as kubelet makes it: RunPodSandbox, CreateContainer, StartContainer until it runs. */
async function startPod(d: RunningDaemon, image: string, dir: string, name: string): Promise<{ ms: number; pod: string; phases: { run: number; create: number; start: number } }> {
  const rt = d.client.runtime;
  const config = { metadata: { name, uid: `u-${name}`, namespace: 'bench', attempt: 0 }, log_directory: join(dir, 'logs', name), linux: kubeletLinux };
  let pod = '';
  let ctr = '';
  const phases = { run: 0, create: 0, start: 0 };
  const ms = await timeMs(async () => {
    phases.run = await timeMs(async () => {
      pod = (await rt.RunPodSandbox!({ config }, { timeoutMs: 300_000 })).pod_sandbox_id;
    });
    phases.create = await timeMs(async () => {
      ctr = (await rt.CreateContainer!({ pod_sandbox_id: pod, config: { metadata: { name: 'idle', attempt: 0 }, image: { image }, command: ['sleep', '100000'], log_path: 'idle.log', linux: kubeletLinux }, sandbox_config: config }, { timeoutMs: 300_000 })).container_id;
    });
    phases.start = await timeMs(async () => {
      await rt.StartContainer!({ container_id: ctr });
      await waitFor('running', async () => (await rt.ContainerStatus!({ container_id: ctr })).status.state === 'CONTAINER_RUNNING', 60_000, 5);
    });
  });
  return { ms, pod, phases };
}

async function poolReady(d: RunningDaemon): Promise<number> {
  const info = (await d.client.runtime.Status!({ verbose: true })).info.vm_pool;
  return info ? (JSON.parse(info) as { ready: number }).ready : 0;
}

/** PSS of the QEMU and virtiofsd processes whose command line names `needle`, in all and by kind. */
async function vmPss(needle: string): Promise<{ total: number; kinds: PssKinds; pids: number[] }> {
  const procs = (await processesMentioning(needle)).filter((p) => /(qemu-system-x86_64|\/virtiofsd)$/.test(p.cmd.split(' ')[0] ?? ''));
  const kinds: PssKinds = { guest_ram: 0, files: 0, private: 0 };
  for (const p of procs) {
    const k = await pssKindsKiB(p.pid);
    for (const key of Object.keys(kinds) as (keyof PssKinds)[]) kinds[key] += k[key];
  }
  return { total: kinds.guest_ram + kinds.files + kinds.private, kinds, pids: procs.map((p) => p.pid) };
}

/** Host CPU (percent of one core) the processes take over a window. */
async function cpuPercent(pids: number[], windowMs: number): Promise<number> {
  const cpu = async () => (await Promise.all(pids.map((p) => cpuSeconds(p).catch(() => 0)))).reduce((a, b) => a + b, 0);
  const c0 = await cpu();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, windowMs));
  return ((await cpu()) - c0) / ((performance.now() - t0) / 1000) * 100;
}

/** Waits (bounded) until the daemon and the processes naming its state folder have been quiet for QUIET_WINDOWS windows. */
async function settle(d: RunningDaemon): Promise<void> {
  const end = Date.now() + QUIET_MAX_MS;
  let quiet = 0;
  while (quiet < QUIET_WINDOWS && Date.now() < end) {
    const pids = [d.child.pid!, ...(await processesMentioning(d.state)).map((p) => p.pid)];
    quiet = (await cpuPercent(pids, QUIET_WINDOW_MS)) < QUIET_PERCENT ? quiet + 1 : 0;
  }
}

/** The pool side of the run: pod starts from the pool (alternating with bare boots), the idle pool VM, a burst. */
async function poolRuns(accel: 'kvm' | 'tcg'): Promise<Record<string, unknown>> {
  const { dir, d, image, cleanup } = await daemonWithBusybox('frakti-bench-pool-', ['--vm-pool', String(DEFAULT_VM_POOL)]);
  try {
    const rt = d.client.runtime;
    const starts: number[] = [];
    const runs: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      await waitFor('a ready pool VM', async () => (await poolReady(d)) >= 1, 300_000, 50);
      await settle(d);
      bare.push(...(await bareBootRunsMs(dir, accel, 256, 1)));
      await settle(d);
      const s = await startPod(d, image, dir, `pool-${i}`);
      starts.push(s.ms);
      runs.push(s.phases.run);
      await rt.RemovePodSandbox!({ pod_sandbox_id: s.pod }, { timeoutMs: 60_000 });
    }
    // The idle pool VM: what keeping one booted costs.
    await waitFor('a ready pool VM', async () => (await poolReady(d)) >= 1, 300_000, 50);
    await new Promise((r) => setTimeout(r, IDLE_SETTLE_MS));
    const idle = await vmPss(join(d.state, 'vm'));
    const idleCpu = await cpuPercent(idle.pids, IDLE_CPU_WINDOW_MS);
    // A burst with the default pool: the first pods take the pool, the rest boot cold meanwhile.
    // Settled each: a failed pod is reported, and the others are not left starting under the cleanup.
    const settled = await Promise.allSettled(Array.from({ length: BURST }, (_, i) => startPod(d, image, dir, `burst-${i}`)));
    const failed = settled.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length > 0) throw new Error(`${failed.length} of ${BURST} pods of the burst failed: ${String(failed[0]!.reason)}`);
    const burst = settled.map((r) => (r as PromiseFulfilledResult<Awaited<ReturnType<typeof startPod>>>).value);
    for (const b of burst) await rt.RemovePodSandbox!({ pod_sandbox_id: b.pod }, { timeoutMs: 60_000 });
    const startMs = median(starts);
    const bareMs = median(bare);
    return {
      pool_size: DEFAULT_VM_POOL,
      pool_pod_start_ms: round(startMs, 1),
      pool_run_pod_ms: round(median(runs), 1),
      pool_bare_boot_ms: round(bareMs, 1),
      pool_ratio: round(startMs / bareMs),
      pool_pod_start_runs_ms: starts.map((x) => round(x, 0)),
      pool_bare_boot_runs_ms: bare.map((x) => round(x, 0)),
      idle_pool_vm_pss_mib: round(idle.total / 1024, 1),
      idle_pool_vm_cpu_percent: round(idleCpu, 2),
      burst_pod_start_ms: burst.map((b) => round(b.ms, 0)).sort((a, b) => a - b),
    };
  } finally {
    await cleanup();
  }
}

/** PSS per idle pod with MANY_PODS running at once (cold boots: no pool VM in the sum). */
async function manyPods(): Promise<Record<string, unknown>> {
  const { dir, d, image, cleanup } = await daemonWithBusybox('frakti-bench-many-');
  try {
    const pods: string[] = [];
    for (let i = 0; i < MANY_PODS; i++) pods.push((await startPod(d, image, dir, `many-${i}`)).pod);
    await new Promise((r) => setTimeout(r, IDLE_SETTLE_MS));
    const all = await vmPss(d.state);
    for (const p of pods) await d.client.runtime.RemovePodSandbox!({ pod_sandbox_id: p }, { timeoutMs: 60_000 });
    return {
      pods: MANY_PODS,
      per_pod_pss_mib: round(all.total / 1024 / MANY_PODS, 1),
      per_pod_guest_ram_mib: round(all.kinds.guest_ram / 1024 / MANY_PODS, 1),
      per_pod_mapped_files_mib: round(all.kinds.files / 1024 / MANY_PODS, 1),
      per_pod_private_mib: round(all.kinds.private / 1024 / MANY_PODS, 1),
    };
  } finally {
    await cleanup();
  }
}

async function main(): Promise<void> {
  const { dir, d, image, cleanup } = await daemonWithBusybox('frakti-bench-pod-');
  try {
    const g = guestAssets();
    const accel = await chooseAccel('auto', { kernel: g.kernel, bareInitrd: g.bareInitrd });
    const rt = d.client.runtime;
    const starts: number[] = [];
    const bare: number[] = [];
    // Where a pod start goes: RunPodSandbox, CreateContainer, StartContainer (with the status poll).
    const phases = { run: [] as number[], create: [] as number[], start: [] as number[] };
    let pss = { qemu: NaN, virtiofsd: NaN };
    let idleCpuPercent = NaN;
    const kinds: PssKinds = { guest_ram: 0, files: 0, private: 0 };
    for (let i = 0; i < RUNS; i++) {
      const config = { metadata: { name: `bench-${i}`, uid: `u${i}`, namespace: 'bench', attempt: 0 }, log_directory: join(dir, 'logs', String(i)), linux: kubeletLinux };
      let pod = '';
      let ctr = '';
      // Bare boots alternate with pod starts: a shared machine's speed drifts
      // over a run, and the ratio should compare like with like.
      await settle(d);
      bare.push(...(await bareBootRunsMs(dir, accel.accel, 256, 1)));
      await settle(d);
      starts.push(await timeMs(async () => {
        phases.run.push(await timeMs(async () => {
          pod = (await rt.RunPodSandbox!({ config }, { timeoutMs: 120_000 })).pod_sandbox_id;
        }));
        phases.create.push(await timeMs(async () => {
          ctr = (await rt.CreateContainer!({ pod_sandbox_id: pod, config: { metadata: { name: 'idle', attempt: 0 }, image: { image }, command: ['sleep', '100000'], log_path: 'idle.log', linux: kubeletLinux }, sandbox_config: config })).container_id;
        }));
        phases.start.push(await timeMs(async () => {
          await rt.StartContainer!({ container_id: ctr });
          await waitFor('running', async () => (await rt.ContainerStatus!({ container_id: ctr })).status.state === 'CONTAINER_RUNNING', 30_000, 5);
        }));
      }));
      if (i === RUNS - 1) {
        await new Promise((r) => setTimeout(r, IDLE_SETTLE_MS));
        // Every process of the pod: virtiofsd runs as a parent and its sandboxed child.
        const procs = await processesMentioning(d.state);
        const sum = async (program: string) => {
          const ps = procs.filter((p) => (p.cmd.split(' ')[0] ?? '').endsWith(program));
          return ps.length === 0 ? NaN : (await Promise.all(ps.map((p) => pssKiB(p.pid)))).reduce((a, b) => a + b, 0);
        };
        pss = { qemu: await sum('qemu-system-x86_64'), virtiofsd: await sum('/virtiofsd') };
        const podProcs = procs.filter((p) => /(qemu-system-x86_64|\/virtiofsd)$/.test(p.cmd.split(' ')[0] ?? ''));
        for (const p of podProcs) {
          const k = await pssKindsKiB(p.pid);
          for (const key of Object.keys(kinds) as (keyof PssKinds)[]) kinds[key] += k[key];
        }
        // Host CPU the idle pod takes: what a node pays for each pod that does nothing.
        const cpu = async () => (await Promise.all(podProcs.map((p) => cpuSeconds(p.pid)))).reduce((a, b) => a + b, 0);
        const c0 = await cpu();
        const t0 = performance.now();
        await new Promise((r) => setTimeout(r, IDLE_CPU_WINDOW_MS));
        idleCpuPercent = ((await cpu()) - c0) / ((performance.now() - t0) / 1000) * 100;
      }
      await rt.RemovePodSandbox!({ pod_sandbox_id: pod }, { timeoutMs: 60_000 });
    }
    const startMs = median(starts);
    const bareMs = median(bare);
    report('pod', {
      accel: accel.accel,
      runs: RUNS,
      pod_start_ms: round(startMs, 1),
      bare_boot_ms: round(bareMs, 1),
      run_pod_ms: round(median(phases.run), 1),
      create_container_ms: round(median(phases.create), 1),
      start_container_ms: round(median(phases.start), 1),
      ratio: round(startMs / bareMs),
      pod_start_runs_ms: starts.map((x) => round(x, 0)),
      bare_boot_runs_ms: bare.map((x) => round(x, 0)),
      idle_pod_pss_mib: round((pss.qemu + pss.virtiofsd) / 1024, 1),
      qemu_pss_mib: round(pss.qemu / 1024, 1),
      virtiofsd_pss_mib: round(pss.virtiofsd / 1024, 1),
      idle_pod_cpu_percent: round(idleCpuPercent, 2),
      pss_guest_ram_mib: round(kinds.guest_ram / 1024, 1),
      pss_mapped_files_mib: round(kinds.files / 1024, 1),
      pss_private_mib: round(kinds.private / 1024, 1),
      ...(await poolRuns(accel.accel)),
      at_10_pods: await manyPods(),
    });
  } finally {
    await cleanup();
  }
}

await main();
