// The single executable (build/release/frakti) against the checkout
// (bin/frakti): the file's size, `frakti --version` and `frakti check` (median
// of BENCH_RUNS, default 5, each a fresh process), and the first run's cost of
// writing the assets out (`check` on an empty root minus `check` on a warm one).
// The ratios are executable / checkout.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { median, report, round, timeMs } from './runner.js';

const TOP = fileURLToPath(new URL('../../', import.meta.url));
const RELEASE = join(TOP, 'build/release/frakti');
const CHECKOUT = join(TOP, 'bin/frakti');
const RUNS = Number(process.env.BENCH_RUNS ?? 5);

async function timed(cmd: string, args: string[]): Promise<number> {
  return timeMs(() => execa(cmd, args, { timeout: 120_000 }));
}

async function medianOf(cmd: string, args: string[]): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < RUNS; i++) xs.push(await timed(cmd, args));
  return median(xs);
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'frakti-bench-release-'));
  try {
    const root = join(work, 'root');
    // First run: the assets are written out (and the accelerator probed, as in every check).
    const firstCheck = await timed(RELEASE, ['check', '--root', root]);
    const versionRelease = await medianOf(RELEASE, ['--version']);
    const versionCheckout = await medianOf(CHECKOUT, ['--version']);
    const checkRelease = await medianOf(RELEASE, ['check', '--root', root]);
    const checkCheckout = await medianOf(CHECKOUT, ['check', '--root', root]);
    report('release', {
      size_mib: round((await stat(RELEASE)).size / 1048576, 1),
      version_ms_release: round(versionRelease, 0),
      version_ms_checkout: round(versionCheckout, 0),
      check_ms_release: round(checkRelease, 0),
      check_ms_checkout: round(checkCheckout, 0),
      first_check_ms_release: round(firstCheck, 0),
      extraction_ms: round(Math.max(0, firstCheck - checkRelease), 0),
      ratio: round(versionRelease / versionCheckout, 2),
      check_ratio: round(checkRelease / checkCheckout, 2),
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main();
