// The seccomp compiler against a small classic-BPF interpreter (the kernel's
// semantics for the opcodes it emits); the real kernel runs the programs in
// test/integration/e2e/security-context.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileSeccomp, runtimeDefaultProfile, SeccompProfileError } from '../../../src/pod/seccomp/index.js';
import { X86_64_SYSCALLS } from '../../../src/pod/seccomp/syscalls-x86_64.js';

const AUDIT_ARCH_X86_64 = 0xc000003e;
const ALLOW = 0x7fff0000;
const EPERM = 0x00050001;

/** Runs a program on seccomp_data {nr, arch, args}; returns what it returns. */
function run(prog: Buffer, nr: number, args: bigint[] = [], arch = AUDIT_ARCH_X86_64): number {
  const data = Buffer.alloc(64);
  data.writeInt32LE(nr, 0);
  data.writeUInt32LE(arch, 4);
  args.forEach((a, i) => data.writeBigUInt64LE(a, 16 + i * 8));
  let A = 0;
  for (let pc = 0, steps = 0; pc < prog.length / 8 && steps < 10_000; steps++) {
    const code = prog.readUInt16LE(pc * 8), jt = prog[pc * 8 + 2]!, jf = prog[pc * 8 + 3]!, k = prog.readUInt32LE(pc * 8 + 4);
    pc++;
    switch (code) {
      case 0x20: A = data.readUInt32LE(k); break;
      case 0x54: A = (A & k) >>> 0; break;
      case 0x06: return k;
      case 0x15: pc += A === k ? jt : jf; break;
      case 0x25: pc += A > k ? jt : jf; break;
      case 0x35: pc += A >= k ? jt : jf; break;
      case 0x45: pc += (A & k) !== 0 ? jt : jf; break;
      default: throw new Error(`opcode ${code}`);
    }
  }
  throw new Error('ran off the program');
}

test('RuntimeDefault: ordinary calls pass, blocked ones get EPERM, conditions on arguments hold, capabilities widen it', () => {
  const prog = compileSeccomp(runtimeDefaultProfile(['CAP_CHOWN', 'CAP_KILL']));
  assert.ok(prog.length / 8 < 4096);
  assert.equal(run(prog, X86_64_SYSCALLS.read!), ALLOW);
  assert.equal(run(prog, X86_64_SYSCALLS.execve!), ALLOW);
  assert.equal(run(prog, X86_64_SYSCALLS.mount!), EPERM);
  assert.equal(run(prog, X86_64_SYSCALLS.keyctl!), EPERM);
  assert.equal(run(prog, X86_64_SYSCALLS.io_uring_setup!), EPERM);
  assert.equal(run(prog, X86_64_SYSCALLS.personality!, [0n]), ALLOW);
  assert.equal(run(prog, X86_64_SYSCALLS.personality!, [3n]), EPERM);
  assert.equal(run(prog, X86_64_SYSCALLS.socket!, [2n]), ALLOW);
  assert.equal(run(prog, X86_64_SYSCALLS.socket!, [40n]), EPERM, 'AF_VSOCK');
  assert.equal(run(prog, X86_64_SYSCALLS.clone!, [0x11n]), ALLOW, 'a fork-like clone');
  assert.equal(run(prog, X86_64_SYSCALLS.clone!, [0x20000000n]), EPERM, 'CLONE_NEWUTS');
  assert.equal(run(prog, X86_64_SYSCALLS.clone3!), 0x00050026, 'clone3: ENOSYS, so libc falls back to clone');
  assert.equal(run(prog, X86_64_SYSCALLS.read!, [], 0x40000003), 0x80000000, 'another architecture is killed');
  assert.equal(run(prog, X86_64_SYSCALLS.read! | 0x40000000), EPERM, 'the x32 ABI gets the default');
  const admin = compileSeccomp(runtimeDefaultProfile(['CAP_SYS_ADMIN']));
  assert.equal(run(admin, X86_64_SYSCALLS.mount!), ALLOW);
  assert.equal(run(admin, X86_64_SYSCALLS.clone!, [0x20000000n]), ALLOW);
});

test('argument comparisons are unsigned 64-bit, both halves', () => {
  const rule = (op: string, value: bigint, valueTwo?: bigint) =>
    compileSeccomp({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['write'], action: 'SCMP_ACT_ALLOW', args: [{ index: 1, value, ...(valueTwo === undefined ? {} : { valueTwo }), op }] }] });
  const w = X86_64_SYSCALLS.write!;
  const at = (prog: Buffer, v: bigint) => run(prog, w, [0n, v]) === ALLOW;
  const big = 0x1_0000_0005n;
  for (const [op, cases] of [
    ['SCMP_CMP_EQ', [[big, true], [5n, false], [0x2_0000_0005n, false]]],
    ['SCMP_CMP_NE', [[big, false], [5n, true], [0x2_0000_0005n, true]]],
    ['SCMP_CMP_GT', [[big, false], [big + 1n, true], [0x2_0000_0000n, true], [5n, false], [0x1_0000_0004n, false]]],
    ['SCMP_CMP_GE', [[big, true], [big + 1n, true], [0x1_0000_0004n, false], [0xffff_ffffn, false]]],
    ['SCMP_CMP_LT', [[big, false], [0x1_0000_0004n, true], [5n, true], [0x2_0000_0000n, false]]],
    ['SCMP_CMP_LE', [[big, true], [0x1_0000_0004n, true], [big + 1n, false], [0x2_0000_0000n, false]]],
  ] as const) {
    const prog = rule(op, big);
    for (const [v, want] of cases) assert.equal(at(prog, v), want, `${op} ${v.toString(16)}`);
  }
  const masked = rule('SCMP_CMP_MASKED_EQ', 0xff00_0000_00ffn, 0x1200_0000_0034n);
  assert.equal(at(masked, 0x12ab_cdef_9934n), true);
  assert.equal(at(masked, 0x13ab_cdef_9934n), false);
  // Several conditions: all must hold; a failed rule reloads the number for the next.
  const two = compileSeccomp({
    defaultAction: 'SCMP_ACT_ERRNO',
    syscalls: [
      { names: ['write'], action: 'SCMP_ACT_KILL', args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }, { index: 2, value: 10, op: 'SCMP_CMP_GT' }] },
      { names: ['write', 'read'], action: 'SCMP_ACT_ALLOW' },
    ],
  });
  assert.equal(run(two, w, [1n, 0n, 11n]), 0);
  assert.equal(run(two, w, [1n, 0n, 10n]), ALLOW);
  assert.equal(run(two, w, [2n, 0n, 11n]), ALLOW);
  assert.equal(run(two, X86_64_SYSCALLS.read!), ALLOW);
  assert.equal(run(two, X86_64_SYSCALLS.open!), EPERM);
});

test('bad profiles are refused naming the problem', () => {
  const bad = (p: unknown, msg: RegExp) => assert.throws(() => compileSeccomp(p as never), (e: unknown) => e instanceof SeccompProfileError && msg.test(e.message));
  bad({ defaultAction: 'SCMP_ACT_NOPE' }, /defaultAction: action "SCMP_ACT_NOPE" is not one of/);
  bad({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_AARCH64'] }, /do not include SCMP_ARCH_X86_64/);
  bad({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ action: 'SCMP_ACT_ERRNO' }] }, /syscalls\[0\]: no syscall names/);
  bad({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 6, value: 0, op: 'SCMP_CMP_EQ' }] }] }, /argument index 6 is not 0-5/);
  bad({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 0, op: 'SCMP_CMP_ODD' }] }] }, /op "SCMP_CMP_ODD"/);
  bad({ defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 70000 }, /errnoRet 70000/);
  bad({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [null] }, /syscalls\[0\]: not an object/);
  bad({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: 'chmod', action: 'SCMP_ACT_ERRNO' }] }, /syscalls\[0\]: names must be a list of strings/);
  bad({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['chmod'], action: 'SCMP_ACT_ERRNO', args: { index: 0 } }] }, /syscalls\[0\]: args must be a list of objects/);
  bad({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: -1, op: 'SCMP_CMP_EQ' }] }] }, /is not an unsigned 64-bit value/);
});
