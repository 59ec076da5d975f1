// Where a VM keeps its files inside its directory. One place, so the
// launcher, the attach path and the CLI agree.
import { join } from 'node:path';

export interface VmPaths {
  dir: string;
  qmpSocket: string;
  /** A second QMP monitor for operators (`frakti qmp`), so a debug shell never contends with the daemon's connection. */
  debugQmpSocket: string;
  agentSocket: string;
  pidFile: string;
  virtiofsdSocket: string;
  virtiofsdPidFile: string;
  /** QEMU's own stderr (not the guest console, which is a ring buffer). */
  qemuLog: string;
  virtiofsdLog: string;
  /** The spec the VM was started from, for attaching after a restart. */
  specFile: string;
}

export function vmPaths(dir: string): VmPaths {
  return {
    dir,
    qmpSocket: join(dir, 'qmp.sock'),
    debugQmpSocket: join(dir, 'qmp-debug.sock'),
    agentSocket: join(dir, 'agent.sock'),
    pidFile: join(dir, 'qemu.pid'),
    virtiofsdSocket: join(dir, 'virtiofsd.sock'),
    virtiofsdPidFile: join(dir, 'virtiofsd.pid'),
    qemuLog: join(dir, 'qemu.log'),
    virtiofsdLog: join(dir, 'virtiofsd.log'),
    specFile: join(dir, 'vm.json'),
  };
}
