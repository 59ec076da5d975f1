// A seccomp profile in the OCI / Docker JSON format, validated and compiled
// into a classic BPF program for x86-64, which the guest agent installs in a
// container's processes just before they run the user's code. The host
// compiles (the guest is untrusted and small); the guest only installs.
//
// The program: refuse other architectures and the x32 ABI, then one test
// per rule in order (syscall number, then its argument conditions, all of
// which must hold), then the default action.
import { X86_64_SYSCALLS } from './syscalls-x86_64.js';

/** Bounds: the kernel takes at most 4096 instructions; a profile file this big is plenty. */
export const MAX_PROFILE_BYTES = 1024 * 1024;
const MAX_INSNS = 4096;

// BPF opcodes (linux/filter.h) and seccomp_data offsets (linux/seccomp.h).
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JGT_K = 0x25;
const JGE_K = 0x35;
const JSET_K = 0x45;
const RET_K = 0x06;
const ALU_AND_K = 0x54;
const OFF_NR = 0;
const OFF_ARCH = 4;
const offArgLo = (i: number) => 16 + i * 8;
const offArgHi = (i: number) => 20 + i * 8;
const AUDIT_ARCH_X86_64 = 0xc000003e;
const X32_SYSCALL_BIT = 0x40000000;
const EPERM = 1;

const RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0x00000000,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
} as const;

export class SeccompProfileError extends Error {}

export interface SeccompArg {
  index: number;
  value: number | bigint;
  valueTwo?: number | bigint;
  op: string;
}
export interface SeccompRule {
  names?: string[];
  name?: string;
  action: string;
  errnoRet?: number;
  args?: SeccompArg[] | null;
}
export interface SeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[] | null;
  syscalls?: SeccompRule[] | null;
}

interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

const bad = (m: string) => new SeccompProfileError(m);

function actionValue(action: string, errnoRet: number | undefined, where: string): number {
  const errno = errnoRet ?? EPERM;
  if (!Number.isInteger(errno) || errno < 0 || errno > 0xffff) throw bad(`${where}: errnoRet ${String(errnoRet)} is not 0-65535`);
  switch (action) {
    case 'SCMP_ACT_ALLOW':
      return RET.ALLOW;
    case 'SCMP_ACT_ERRNO':
      return (RET.ERRNO | errno) >>> 0;
    case 'SCMP_ACT_KILL':
    case 'SCMP_ACT_KILL_THREAD':
      return RET.KILL_THREAD;
    case 'SCMP_ACT_KILL_PROCESS':
      return RET.KILL_PROCESS;
    case 'SCMP_ACT_TRAP':
      return RET.TRAP;
    case 'SCMP_ACT_LOG':
      return RET.LOG;
    case 'SCMP_ACT_TRACE':
      return (RET.TRACE | errno) >>> 0;
    default:
      throw bad(`${where}: action ${JSON.stringify(action)} is not one of SCMP_ACT_ALLOW, ERRNO, KILL, KILL_THREAD, KILL_PROCESS, TRAP, LOG, TRACE`);
  }
}

const u64 = (v: number | bigint, where: string): bigint => {
  const b = typeof v === 'bigint' ? v : Number.isInteger(v) && v >= 0 ? BigInt(v) : NaN;
  if (typeof b !== 'bigint' || b < 0n || b > 0xffffffffffffffffn) throw bad(`${where}: ${String(v)} is not an unsigned 64-bit value`);
  return b;
};
const hi = (b: bigint) => Number(b >> 32n);
const lo = (b: bigint) => Number(b & 0xffffffffn);

/**
 * The instructions of one argument condition. A condition that holds falls
 * through to the instruction after its last; a jump offset of -1 means
 * "the condition failed: leave the rule", patched once the rule is laid out.
 */
function argCheck(a: SeccompArg, where: string): Insn[] {
  if (!Number.isInteger(a.index) || a.index < 0 || a.index > 5) throw bad(`${where}: argument index ${String(a.index)} is not 0-5`);
  const v = u64(a.value, `${where} value`);
  const ld = (off: number): Insn => ({ code: LD_W_ABS, jt: 0, jf: 0, k: off });
  // F marks "leave the rule": patched once the rule's length is known.
  const F = -1;
  switch (a.op) {
    case 'SCMP_CMP_EQ':
      return [ld(offArgHi(a.index)), { code: JEQ_K, jt: 0, jf: F, k: hi(v) }, ld(offArgLo(a.index)), { code: JEQ_K, jt: 0, jf: F, k: lo(v) }];
    case 'SCMP_CMP_NE':
      // Holds unless both halves are equal.
      return [ld(offArgHi(a.index)), { code: JEQ_K, jt: 0, jf: 2, k: hi(v) }, ld(offArgLo(a.index)), { code: JEQ_K, jt: F, jf: 0, k: lo(v) }];
    case 'SCMP_CMP_MASKED_EQ': {
      const want = u64(a.valueTwo ?? 0, `${where} valueTwo`);
      return [
        ld(offArgHi(a.index)), { code: ALU_AND_K, jt: 0, jf: 0, k: hi(v) }, { code: JEQ_K, jt: 0, jf: F, k: hi(want) },
        ld(offArgLo(a.index)), { code: ALU_AND_K, jt: 0, jf: 0, k: lo(v) }, { code: JEQ_K, jt: 0, jf: F, k: lo(want) },
      ];
    }
    case 'SCMP_CMP_GT':
    case 'SCMP_CMP_GE':
    case 'SCMP_CMP_LT':
    case 'SCMP_CMP_LE': {
      // Unsigned 64-bit compare: the high halves decide unless equal, then the low ones.
      const greater = a.op === 'SCMP_CMP_GT' || a.op === 'SCMP_CMP_GE';
      const loOp = a.op === 'SCMP_CMP_GT' || a.op === 'SCMP_CMP_LE' ? JGT_K : JGE_K;
      // hi > v.hi: GT/GE hold (skip the rest), LT/LE fail; hi == v.hi: look at lo; hi < v.hi: GT/GE fail, LT/LE hold.
      return [
        ld(offArgHi(a.index)),
        { code: JGT_K, jt: greater ? 3 : F, jf: 0, k: hi(v) },
        { code: JEQ_K, jt: 0, jf: greater ? F : 2, k: hi(v) },
        ld(offArgLo(a.index)),
        // GT/GE: lo (>|>=) v.lo holds; LT: !(lo >= v.lo); LE: !(lo > v.lo).
        greater ? { code: loOp, jt: 0, jf: F, k: lo(v) } : { code: loOp, jt: F, jf: 0, k: lo(v) },
      ];
    }
    default:
      throw bad(`${where}: op ${JSON.stringify(a.op)} is not one of SCMP_CMP_EQ, NE, LT, LE, GT, GE, MASKED_EQ`);
  }
}

/** Validates a parsed profile and compiles it; the program as 8-byte sock_filter entries. */
export function compileSeccomp(profile: SeccompProfile): Buffer {
  if (typeof profile !== 'object' || profile === null) throw bad('a seccomp profile is a JSON object');
  const defaultAction = actionValue(profile.defaultAction, profile.defaultErrnoRet, 'defaultAction');
  const archs = profile.architectures ?? [];
  if (!Array.isArray(archs) || archs.some((a) => typeof a !== 'string')) throw bad('architectures must be a list of names');
  if (archs.length > 0 && !archs.includes('SCMP_ARCH_X86_64')) throw bad(`the profile's architectures (${archs.join(', ')}) do not include SCMP_ARCH_X86_64, the guest's`);
  const rules = profile.syscalls ?? [];
  if (!Array.isArray(rules)) throw bad('syscalls must be a list');
  const prog: Insn[] = [
    { code: LD_W_ABS, jt: 0, jf: 0, k: OFF_ARCH },
    { code: JEQ_K, jt: 1, jf: 0, k: AUDIT_ARCH_X86_64 },
    { code: RET_K, jt: 0, jf: 0, k: RET.KILL_PROCESS },
    { code: LD_W_ABS, jt: 0, jf: 0, k: OFF_NR },
    // The x32 ABI reuses these numbers with a flag: it gets the default action.
    { code: JSET_K, jt: 0, jf: 1, k: X32_SYSCALL_BIT },
    { code: RET_K, jt: 0, jf: 0, k: defaultAction },
  ];
  rules.forEach((r, i) => {
    const where = `syscalls[${i}]`;
    if (typeof r !== 'object' || r === null) throw bad(`${where}: not an object`);
    const listed = r.names ?? [];
    if (!Array.isArray(listed) || listed.some((n) => typeof n !== 'string')) throw bad(`${where}: names must be a list of strings`);
    if (r.name !== undefined && typeof r.name !== 'string') throw bad(`${where}: name must be a string`);
    const names = [...listed, ...(r.name ? [r.name] : [])];
    if (names.length === 0) throw bad(`${where}: no syscall names`);
    const ret = actionValue(r.action, r.errnoRet, where);
    const args = r.args ?? [];
    if (!Array.isArray(args) || args.some((a) => typeof a !== 'object' || a === null)) throw bad(`${where}: args must be a list of objects`);
    for (const name of names) {
      const nr = X86_64_SYSCALLS[name];
      // Names of other architectures or newer kernels are skipped, as libseccomp skips them.
      if (nr === undefined) continue;
      const checks = args.flatMap((a, j) => argCheck(a, `${where}.args[${j}]`));
      // [JEQ nr] [checks...] [RET action]; a failed test jumps past the RET.
      const body = [...checks, { code: RET_K, jt: 0, jf: 0, k: ret }];
      const head: Insn = { code: JEQ_K, jt: 0, jf: body.length, k: nr };
      body.forEach((insn, at) => {
        const toEnd = body.length - at - 1; // jumping this far lands just past the RET
        if (insn.jt === -1) insn.jt = toEnd;
        if (insn.jf === -1) insn.jf = toEnd;
        if (insn.jt > 255 || insn.jf > 255 || head.jf > 255) throw bad(`${where}: too many argument conditions`);
      });
      // Conditions end with the syscall number reloaded by the next rule's test.
      if (checks.length > 0) body.push({ code: LD_W_ABS, jt: 0, jf: 0, k: OFF_NR });
      if (checks.length > 0) head.jf += 1;
      // The reload must run on both paths: a failed condition lands on it (past the RET).
      prog.push(head, ...body);
    }
  });
  prog.push({ code: RET_K, jt: 0, jf: 0, k: defaultAction });
  if (prog.length > MAX_INSNS) throw bad(`the profile compiles to ${prog.length} instructions, over the kernel's ${MAX_INSNS}`);
  const out = Buffer.alloc(prog.length * 8);
  prog.forEach((p, i) => {
    out.writeUInt16LE(p.code, i * 8);
    out.writeUInt8(p.jt, i * 8 + 2);
    out.writeUInt8(p.jf, i * 8 + 3);
    out.writeUInt32LE(p.k >>> 0, i * 8 + 4);
  });
  return out;
}

/** A profile file's text: JSON, bounded, compiled. */
export function compileSeccompText(text: string): Buffer {
  if (Buffer.byteLength(text) > MAX_PROFILE_BYTES) throw bad(`the profile is larger than ${MAX_PROFILE_BYTES} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw bad(`not JSON: ${(err as Error).message}`);
  }
  return compileSeccomp(parsed as SeccompProfile);
}
