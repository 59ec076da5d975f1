// The fault suite's schedule: a seeded random source, so a failing run can
// be replayed (`FRAKTI_FAULT_SEED=<seed printed by the run>`), and the size
// of the run: short in CI (`make test`), long with `make test-faults`
// (FRAKTI_FAULTS=long), or any count set by FRAKTI_FAULT_LIFECYCLES.

/** mulberry32: small, fast, good enough to pick fault points; not for secrets. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Schedule {
  seed: number;
  long: boolean;
  random: () => number;
  /** An integer in [0, n). */
  int(n: number): number;
  pick<T>(items: readonly T[]): T;
  /** `short` in CI, `long` under `make test-faults`; FRAKTI_FAULT_LIFECYCLES overrides both. */
  count(short: number, long: number): number;
}

export function faultSchedule(name: string): Schedule {
  const fromEnv = Number(process.env.FRAKTI_FAULT_SEED);
  const seed = Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : (Date.now() % 1_000_000_007) + 1;
  const long = process.env.FRAKTI_FAULTS === 'long';
  const random = seededRandom(seed);
  process.stderr.write(`fault schedule ${name}: seed ${seed} (${long ? 'long' : 'short'}; replay with FRAKTI_FAULT_SEED=${seed})\n`);
  return {
    seed,
    long,
    random,
    int: (n) => Math.floor(random() * n),
    pick: (items) => items[Math.floor(random() * items.length)]!,
    count(short, longCount) {
      const n = Number(process.env.FRAKTI_FAULT_LIFECYCLES);
      if (Number.isInteger(n) && n > 0) return n;
      return long ? longCount : short;
    },
  };
}
