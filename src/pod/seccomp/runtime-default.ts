// frakti's RuntimeDefault seccomp profile: every x86-64 system call is
// allowed but those that reach kernel facilities a container has no business
// with, which fail with EPERM. The blocked set is the one Docker documents
// for its default profile (docs.docker.com, "Seccomp security profiles for
// Docker": the significant syscalls it blocks and why), with its exceptions
// for capabilities the container holds, plus the io_uring calls (which
// newer defaults block too: io_uring has been a steady source of kernel
// exploits, and the guest kernel is shared by the pod's containers).
import type { SeccompProfile, SeccompRule } from './compile.js';
import { X86_64_SYSCALLS } from './syscalls-x86_64.js';

/** Blocked unless the container holds the capability named. */
const NEEDS_CAPABILITY: Record<string, string[]> = {
  CAP_SYS_ADMIN: [
    'mount', 'umount2', 'unshare', 'setns', 'pivot_root', 'move_mount', 'open_tree', 'fsopen', 'fsconfig', 'fsmount', 'fspick',
    'mount_setattr', 'quotactl', 'quotactl_fd', 'lookup_dcookie', 'fanotify_init', 'name_to_handle_at', 'bpf', 'perf_event_open',
    'clone3',
  ],
  CAP_SYS_PTRACE: ['ptrace', 'process_vm_readv', 'process_vm_writev', 'kcmp', 'pidfd_getfd'],
  CAP_SYS_BOOT: ['reboot'],
  CAP_SYS_MODULE: ['init_module', 'finit_module', 'delete_module'],
  CAP_SYS_RAWIO: ['iopl', 'ioperm'],
  CAP_SYS_TIME: ['settimeofday', 'clock_settime', 'clock_adjtime'],
  CAP_SYS_PACCT: ['acct'],
  CAP_SYS_NICE: ['mbind', 'set_mempolicy', 'get_mempolicy', 'move_pages', 'set_mempolicy_home_node'],
  CAP_SYSLOG: ['syslog'],
  CAP_DAC_READ_SEARCH: ['open_by_handle_at'],
};

/** Blocked whatever the capabilities. */
const ALWAYS_BLOCKED = [
  'add_key', 'request_key', 'keyctl', 'kexec_load', 'kexec_file_load', 'swapon', 'swapoff', 'userfaultfd', 'uselib', 'ustat',
  'sysfs', '_sysctl', 'create_module', 'get_kernel_syms', 'query_module', 'nfsservctl', 'vm86', 'vm86old', 'afs_syscall',
  'tuxcall', 'security', 'putpmsg', 'getpmsg', 'vserver', 'io_uring_setup', 'io_uring_enter', 'io_uring_register',
];

/** clone() flags that make namespaces: without CAP_SYS_ADMIN, clone must not carry them. */
const CLONE_NAMESPACE_FLAGS = 0x7e020000;
/** personality() values a program may ask for (Linux, 32-bit addresses, unlimited stack, their query). */
const PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];
const AF_VSOCK = 40;
const ENOSYS = 38;

export function runtimeDefaultProfile(capabilities: readonly string[]): SeccompProfile {
  const held = new Set(capabilities.map((c) => (c.startsWith('CAP_') ? c : `CAP_${c}`)));
  const blocked = new Set(ALWAYS_BLOCKED);
  for (const [cap, calls] of Object.entries(NEEDS_CAPABILITY)) if (!held.has(cap)) for (const c of calls) blocked.add(c);
  const special = new Set(['clone', 'clone3', 'personality', 'socket']);
  const allowed = Object.keys(X86_64_SYSCALLS).filter((n) => !blocked.has(n) && !special.has(n));
  const rules: SeccompRule[] = [{ names: allowed, action: 'SCMP_ACT_ALLOW' }];
  for (const p of PERSONALITIES) rules.push({ names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: p, op: 'SCMP_CMP_EQ' }] });
  // The guest's vsock is the agent's channel to the host: no container speaks it.
  rules.push({ names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: AF_VSOCK, op: 'SCMP_CMP_NE' }] });
  if (held.has('CAP_SYS_ADMIN')) {
    rules.push({ names: ['clone', 'clone3'], action: 'SCMP_ACT_ALLOW' });
  } else {
    rules.push({ names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] });
    // clone3 hides its flags in memory the filter cannot read: ENOSYS makes libc fall back to clone.
    rules.push({ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS });
  }
  return { defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 1, architectures: ['SCMP_ARCH_X86_64'], syscalls: rules };
}
