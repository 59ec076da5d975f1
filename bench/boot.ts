// make bench-boot: launch to agent ready, against the bare boot of the same
// kernel with the same QEMU command line and a trivial init that powers off
// at once (the floor under this accelerator), the two alternated.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Vm, chooseAccel, guestAssets, type VmSpec } from '../src/vmm/index.js';
import { bareBootRunsMs } from './bare-boot.js';
import { waitForAgent } from '../src/agent-protocol/index.js';
import { median, report, round, rssKiB, timeMs } from './runner.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const IDLE_SETTLE_MS = 1_000;

async function main(): Promise<void> {
  const assets = guestAssets();
  const accel = await chooseAccel((process.env.FRAKTI_ACCEL as 'auto') ?? 'auto', { kernel: assets.kernel, bareInitrd: assets.bareInitrd });
  const root = await mkdtemp(join(tmpdir(), 'frakti-bench-boot-'));
  const spec = (i: number, initrd: string): VmSpec => ({
    id: `bench-${i}`, dir: join(root, `vm-${i}`), cpus: 1, memoryMiB: 256,
    kernel: assets.kernel, initrd, accel: accel.accel, channel: { kind: 'serial' },
  });
  try {
    const bare: number[] = [];
    const ready: number[] = [];
    let rss = NaN;
    for (let i = 0; i < RUNS; i++) {
      let vm: Vm | undefined;
      // Alternated with the launches: the machine's speed drifts over a run.
      bare.push(...(await bareBootRunsMs(root, accel.accel, 256, 1)));
      const ms = await timeMs(async () => {
        vm = await Vm.launch(spec(100 + i, assets.initrd));
        const agent = await waitForAgent(vm.agentEndpoint(), { timeoutMs: 60_000 });
        await agent.version();
        agent.close();
      });
      ready.push(ms);
      if (i === RUNS - 1) {
        await new Promise((r) => setTimeout(r, IDLE_SETTLE_MS));
        rss = await rssKiB(vm!.pid);
      }
      await vm!.stop({ timeoutMs: 5_000 });
    }
    const bareMs = median(bare);
    const readyMs = median(ready);
    report('boot', {
      accel: accel.accel,
      runs: RUNS,
      bare_boot_ms: round(bareMs, 1),
      launch_to_ready_ms: round(readyMs, 1),
      ratio: round(readyMs / bareMs),
      bare_boot_runs_ms: bare.map((x) => round(x, 0)),
      launch_to_ready_runs_ms: ready.map((x) => round(x, 0)),
      qemu_idle_rss_mib: round(rss / 1024, 1),
      initrd_bytes: (await stat(assets.initrd)).size,
    });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

await main();
