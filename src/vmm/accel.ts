// Accelerator choice. A /dev/kvm that exists is not proof that KVM works: on
// a nested or paravirtualised host a stock guest kernel hangs under it. So
// KVM is chosen only after a real guest boots under it: our kernel with a
// trivial init that powers off at once must make QEMU exit within the bound.
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { execa } from 'execa';
import { errorMessage } from '../lib/errors.js';
import { BASE_KERNEL_ARGS } from './qemu-args.js';
import type { Accel } from './vm-spec.js';

/** A working KVM boots the trivial guest in well under a second. */
export const KVM_PROBE_TIMEOUT_MS = 5_000;

export type AccelChoice = 'auto' | Accel;

export interface AccelDecision {
  accel: Accel;
  /** Whether KVM booted a guest here (undefined when not probed: --accel forced). */
  kvmUsable?: boolean;
  /** One line: why this accelerator. */
  reason: string;
}

export interface ProbeInputs {
  qemu?: string;
  kernel: string;
  /** An initrd whose init powers the VM off at once. */
  bareInitrd: string;
  firmware?: string;
  timeoutMs?: number;
  kvmDevice?: string;
}

/** Boots the trivial guest under KVM; resolves with why it does or does not work. */
export async function probeKvm(p: ProbeInputs): Promise<{ usable: boolean; reason: string }> {
  const dev = p.kvmDevice ?? '/dev/kvm';
  try {
    await access(dev, constants.R_OK | constants.W_OK);
  } catch (err) {
    return { usable: false, reason: `${dev} is not usable: ${errorMessage(err)}` };
  }
  const timeoutMs = p.timeoutMs ?? KVM_PROBE_TIMEOUT_MS;
  const started = Date.now();
  const res = await execa(
    p.qemu ?? 'qemu-system-x86_64',
    [
      '-machine', 'q35,accel=kvm', '-cpu', 'host', '-m', '128', '-smp', '1',
      '-nodefaults', '-no-user-config', '-nographic', '-no-reboot', '-display', 'none',
      '-bios', p.firmware ?? '/usr/share/qemu/qboot.rom',
      '-kernel', p.kernel, '-initrd', p.bareInitrd, '-append', BASE_KERNEL_ARGS.join(' '),
    ],
    { reject: false, timeout: timeoutMs, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe', maxBuffer: 64 * 1024, killSignal: 'SIGKILL' },
  );
  const ms = Date.now() - started;
  if (res.timedOut) {
    return {
      usable: false,
      reason: `${dev} exists but a guest did not boot under KVM within ${timeoutMs} ms (nested or paravirtualised host?)`,
    };
  }
  if (res.exitCode !== 0) {
    const line = res.stderr.trim().split('\n').pop() ?? '';
    const how = res.signal ? `killed by ${res.signal}` : `exit ${res.exitCode}`;
    return { usable: false, reason: `QEMU with KVM failed (${how}): ${line}` };
  }
  return { usable: true, reason: `a guest booted and powered off under KVM in ${ms} ms` };
}

/** Picks the accelerator; `auto` probes, `kvm`/`tcg` force (the operator's --accel). */
export async function chooseAccel(choice: AccelChoice, p: ProbeInputs): Promise<AccelDecision> {
  if (choice === 'tcg') return { accel: 'tcg', reason: 'forced by --accel tcg' };
  if (choice === 'kvm') return { accel: 'kvm', reason: 'forced by --accel kvm' };
  const probe = await probeKvm(p);
  if (probe.usable) return { accel: 'kvm', kvmUsable: true, reason: probe.reason };
  // The caller reports it (the daemon logs it, the CLI prints it).
  return { accel: 'tcg', kvmUsable: false, reason: `KVM not usable: ${probe.reason}; using TCG (software emulation, much slower)` };
}

export function parseAccelChoice(v: string): AccelChoice {
  if (v === 'auto' || v === 'kvm' || v === 'tcg') return v;
  throw new Error(`--accel must be auto, kvm or tcg, got '${v}'`);
}
