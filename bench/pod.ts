// make bench-pod: pod start (RunPodSandbox + CreateContainer + StartContainer
// until the container runs) through the real daemon, against the bare boot of
// the same kernel with the same QEMU command line, alternated in one run; and
// the host memory (PSS) of an idle busybox pod: QEMU and virtiofsd together.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chooseAccel, guestAssets } from '../src/vmm/index.js';
import { bareBootRunsMs } from './bare-boot.js';
import { waitFor } from '../test/helpers/cri-client.js';
import { daemonWithBusybox } from './daemon-setup.js';
import { processesMentioning } from '../test/helpers/vmm-leaks.js';
import { median, report, round, timeMs } from './runner.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const IDLE_SETTLE_MS = 2_000;
const IDLE_CPU_WINDOW_MS = 10_000;
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
      const config = { metadata: { name: `bench-${i}`, uid: `u${i}`, namespace: 'bench', attempt: 0 }, log_directory: join(dir, 'logs', String(i)) };
      let pod = '';
      let ctr = '';
      // Bare boots alternate with pod starts: a shared machine's speed drifts
      // over a run, and the ratio should compare like with like.
      bare.push(...(await bareBootRunsMs(dir, accel.accel, 256, 1)));
      starts.push(await timeMs(async () => {
        phases.run.push(await timeMs(async () => {
          pod = (await rt.RunPodSandbox!({ config }, { timeoutMs: 120_000 })).pod_sandbox_id;
        }));
        phases.create.push(await timeMs(async () => {
          ctr = (await rt.CreateContainer!({ pod_sandbox_id: pod, config: { metadata: { name: 'idle', attempt: 0 }, image: { image }, command: ['sleep', '100000'], log_path: 'idle.log' }, sandbox_config: config })).container_id;
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
    });
  } finally {
    await cleanup();
  }
}

await main();
