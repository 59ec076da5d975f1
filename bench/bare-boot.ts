// The floor every VM benchmark compares against: the launcher's own QEMU
// command line, in the foreground and unpaused, booting the bundled kernel
// with a trivial init that powers the VM off at once.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { guestAssets, qemuArgs, validateVmSpec, vmPaths, type Accel } from '../src/vmm/index.js';
import { timeMs } from './runner.js';

export async function bareBootRunsMs(dir: string, accel: Accel, memoryMiB: number, runs: number): Promise<number[]> {
  const g = guestAssets();
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const s = validateVmSpec({ id: `bare-${i}`, dir: join(dir, `bare-${i}`), cpus: 1, memoryMiB, kernel: g.kernel, initrd: g.bareInitrd, accel, channel: { kind: 'serial' } });
    await mkdir(s.dir, { recursive: true });
    const args = qemuArgs(s, vmPaths(s.dir)).filter((a, j, all) => a !== '-pidfile' && all[j - 1] !== '-pidfile');
    out.push(await timeMs(() => execa(s.qemu, args, { timeout: 60_000, stdin: 'ignore' })));
    await rm(s.dir, { recursive: true, force: true });
  }
  return out;
}
