// Fail points for the fault suite (test/faults): FRAKTI_FAIL_POINT=<k> kills
// this process with SIGKILL at the k-th point it passes; <regex>#<k> counts
// only the points whose name matches. A point is a step after which a crash
// leaves something half done: a resource acquired (every undo step), a
// record written, a teardown step finished. Unset (always, in production),
// a point is one comparison.
import { writeSync } from 'node:fs';

interface Armed {
  match?: RegExp;
  at: number;
}

function parse(v: string | undefined): Armed | undefined {
  const m = /^(?:(.*)#)?([1-9][0-9]*)$/.exec(v ?? '');
  if (!m) return undefined;
  return { ...(m[1] ? { match: new RegExp(m[1]) } : {}), at: Number(m[2]) };
}

const armed = parse(process.env.FRAKTI_FAIL_POINT);
let passed = 0;

export function failPoint(name: string): void {
  if (!armed || (armed.match && !armed.match.test(name))) return;
  passed++;
  if (process.env.FRAKTI_FAIL_POINT_TRACE) writeSync(2, `frakti: fail point #${passed}: ${name}\n`);
  if (passed !== armed.at) return;
  // Synchronous: the line must be out before the kill.
  writeSync(2, `frakti: fail point #${passed} "${name}": killed by FRAKTI_FAIL_POINT\n`);
  process.kill(process.pid, 'SIGKILL');
}
