// Shared pieces of the benchmarks: timing, medians, and the one-JSON-line
// report that ends every benchmark's output.
import { performance } from 'node:perf_hooks';

export async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export function median(xs: number[]): number {
  if (xs.length === 0) throw new Error('median of nothing');
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The nearest-rank percentile (p in 0..100): the smallest value with p% of them at or below it. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) throw new Error('percentile of nothing');
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length))) - 1]!;
}

export function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Prints a human line per figure, then the figures as one JSON object (the last line). */
export function report(name: string, figures: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(figures)) process.stdout.write(`${name}: ${k} = ${Array.isArray(v) ? v.join(', ') : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}\n`);
  process.stdout.write(JSON.stringify({ bench: name, ...figures }) + '\n');
}

export async function rssKiB(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}
