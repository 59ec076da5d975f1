// A container's seccomp filter from its profile choice: nothing for
// Unconfined, frakti's RuntimeDefault for its capabilities, or a profile
// file on the host read (bounded) and compiled. Refusals name the problem.
import { readFile, stat } from 'node:fs/promises';
import { errorMessage } from '../../lib/errors.js';
import { PodError } from '../errors.js';
import type { ContainerSpec } from '../types.js';
import { compileSeccomp, compileSeccompText, MAX_PROFILE_BYTES, SeccompProfileError } from './compile.js';
import { runtimeDefaultProfile } from './runtime-default.js';

export { compileSeccomp, compileSeccompText, SeccompProfileError } from './compile.js';
export { runtimeDefaultProfile } from './runtime-default.js';

/** RuntimeDefault programs by capability set: a node runs few distinct sets. */
const compiled = new Map<string, Buffer>();
const CACHE_MAX = 64;

export async function seccompFilter(spec: ContainerSpec['seccomp'], capabilities: readonly string[]): Promise<Buffer | undefined> {
  if (!spec || spec.type === 'unconfined') return undefined;
  if (spec.type === 'runtime-default') {
    const key = [...capabilities].sort().join(',');
    let prog = compiled.get(key);
    if (!prog) {
      prog = compileSeccomp(runtimeDefaultProfile(capabilities));
      if (compiled.size >= CACHE_MAX) compiled.delete(compiled.keys().next().value!);
      compiled.set(key, prog);
    }
    return prog;
  }
  const where = `seccomp profile ${spec.path}`;
  const st = await stat(spec.path).catch((err: unknown) => {
    throw new PodError('INVALID_ARGUMENT', `${where}: cannot be read: ${errorMessage(err)}`);
  });
  if (!st.isFile()) throw new PodError('INVALID_ARGUMENT', `${where}: not a file`);
  if (st.size > MAX_PROFILE_BYTES) throw new PodError('INVALID_ARGUMENT', `${where}: larger than ${MAX_PROFILE_BYTES} bytes`);
  try {
    return compileSeccompText(await readFile(spec.path, 'utf8'));
  } catch (err) {
    if (err instanceof SeccompProfileError) throw new PodError('INVALID_ARGUMENT', `${where}: ${err.message}`);
    throw new PodError('INVALID_ARGUMENT', `${where}: cannot be read: ${errorMessage(err)}`);
  }
}
