// `make bench-pull`: pull + unpack of a ~100 MiB multi-layer image (random,
// incompressible content) from a local registry, frakti against `skopeo copy`
// + `umoci unpack` of the same image in the same run. Runs alternate; the
// figures are medians. ratio = frakti / baseline (goal <= 1.0). frakti also
// runs without fsync of the unpacked layers (syncLayers: false): sync_cost =
// frakti / that. FRAKTI_BENCH_PULL_FILES sets the files per layer (default
// 8; many small files are where per-file fsync costs most). Each run starts
// with the file system synced, so none pays for the one before.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ImageStore } from '../src/image/index.js';
import { buildRandomImage, pushImage, startRegistry } from '../test/helpers/image-registry.js';
import { median, report, round, timeMs } from './runner.js';

const run = promisify(execFile);
const IMAGE_BYTES = Number(process.env.FRAKTI_BENCH_PULL_BYTES ?? 100 * 1024 * 1024);
const LAYERS = 5;
const FILES_PER_LAYER = Number(process.env.FRAKTI_BENCH_PULL_FILES ?? 8);
const RUNS = Number(process.env.FRAKTI_BENCH_RUNS ?? 3);
const TOOL_TIMEOUT_MS = 600_000;

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'frakti-bench-pull-'));
  const reg = await startRegistry();
  try {
    const img = await buildRandomImage(work, IMAGE_BYTES, LAYERS, FILES_PER_LAYER);
    const ref = `${reg.host}/bench/random:latest`;
    await pushImage(img.layout, ref);
    const fraktiMs: number[] = [];
    const noSyncMs: number[] = [];
    const baselineMs: number[] = [];
    const settle = () => run('sync', ['-f', work]);
    for (let i = 0; i < RUNS; i++) {
      const cases = [[true, fraktiMs], [false, noSyncMs]] as const;
      for (const [syncLayers, times] of i % 2 ? [...cases].reverse() : cases) {
        const root = join(work, `frakti-${i}-${syncLayers}`);
        await settle();
        times.push(
          await timeMs(async () => {
            const store = await ImageStore.open({ root, syncLayers });
            await store.pull(ref);
            await store.close();
          }),
        );
        await rm(root, { recursive: true, force: true });
      }
      await settle();
      const layout = join(work, `oci-${i}`);
      const bundle = join(work, `bundle-${i}`);
      baselineMs.push(
        await timeMs(async () => {
          await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${layout}:latest`], { timeout: TOOL_TIMEOUT_MS });
          await run('umoci', ['unpack', '--image', `${layout}:latest`, bundle], { timeout: TOOL_TIMEOUT_MS });
        }),
      );
      await rm(layout, { recursive: true, force: true });
      await rm(bundle, { recursive: true, force: true });
    }
    const f = median(fraktiMs);
    const n = median(noSyncMs);
    const b = median(baselineMs);
    report('pull', {
      image_mib: round(IMAGE_BYTES / 1024 / 1024, 1),
      layers: LAYERS,
      files_per_layer: FILES_PER_LAYER,
      runs: RUNS,
      frakti_ms: round(f, 0),
      frakti_nosync_ms: round(n, 0),
      sync_cost: round(f / n, 3),
      baseline_ms: round(b, 0),
      frakti_runs_ms: fraktiMs.map((x) => round(x, 0)),
      frakti_nosync_runs_ms: noSyncMs.map((x) => round(x, 0)),
      baseline_runs_ms: baselineMs.map((x) => round(x, 0)),
      ratio: round(f / b, 3),
    });
  } finally {
    await reg.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
