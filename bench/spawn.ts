// A short command run from a process the daemon's size: through
// frakti-spawner (lib/command.ts) against Node forking itself (execa, what
// frakti used before), alternating, for `true` and for `ip -j link show` (one
// of the commands a pod start runs). Node's fork copies its page tables, so
// its cost grows with the process: the process is first grown to
// BENCH_RSS_MIB (default 90, the daemon's resident size with one pod VM).
import { execa } from 'execa';
import { runCommand } from '../src/lib/command.js';
import { median, report, round, rssKiB, timeMs } from './runner.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 40);
const TARGET_RSS_MIB = Number(process.env.BENCH_RSS_MIB ?? 90);

const ballast: Buffer[] = [];
while ((await rssKiB(process.pid)) / 1024 < TARGET_RSS_MIB) ballast.push(Buffer.alloc(4 << 20, 1));

const figures: Record<string, unknown> = { rss_mib: round((await rssKiB(process.pid)) / 1024, 1), runs: RUNS };
for (const [name, file, args] of [['true', 'true', []], ['ip_link', 'ip', ['-j', 'link', 'show']]] as const) {
  const viaSpawner: number[] = [];
  const viaFork: number[] = [];
  await runCommand(file, [...args]); // the helper starts once, outside the figures
  for (let i = 0; i < RUNS; i++) {
    viaSpawner.push(await timeMs(() => runCommand(file, [...args])));
    viaFork.push(await timeMs(() => execa(file, [...args], { reject: false })));
  }
  figures[`${name}_spawner_ms`] = round(median(viaSpawner), 2);
  figures[`${name}_fork_ms`] = round(median(viaFork), 2);
  figures[`${name}_ratio`] = round(median(viaSpawner) / median(viaFork), 3);
}
figures.ratio = figures.ip_link_ratio;
report('spawn', figures);
ballast.length = 0;
