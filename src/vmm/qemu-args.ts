// Builds QEMU's command line from a validated spec. A pure function, so the
// whole command line is unit-tested without starting anything.
import type { ValidVmSpec } from './vm-spec.js';
import type { VmPaths } from './vm-paths.js';

/** Name of the virtio-serial port the guest agent looks for. */
export const AGENT_SERIAL_PORT_NAME = 'org.frakti.agent.0';
/** The guest console is kept in QEMU memory, bounded, readable over QMP (ringbuf-read). */
export const CONSOLE_CHARDEV_ID = 'console';
export const CONSOLE_RING_BYTES = 1024 * 1024;
export const MEMORY_HOTPLUG_SLOTS = 8;

/** What frakti always puts on the guest kernel command line. */
export const BASE_KERNEL_ARGS = [
  'console=ttyS0',
  'quiet',
  // A guest panic (e.g. the agent died as PID 1) ends QEMU at once, with -no-reboot.
  'panic=-1',
  'reboot=k',
  // Probing legacy hardware that q35 does not have costs time under TCG.
  '8250.nr_uarts=1',
  'i8042.noaux',
  'i8042.nokbd',
  'tsc=reliable',
  'no_timer_check',
];

export function qemuArgs(spec: ValidVmSpec, paths: VmPaths): string[] {
  const a: string[] = [];
  a.push('-name', `frakti-${spec.id},debug-threads=on`);
  a.push('-nodefaults', '-no-user-config', '-nographic', '-no-reboot');
  // No -S: the guest boots while frakti connects QMP. Every device is on the
  // command line, so there is nothing to add before the guest runs, and
  // waiting for the handshake cost each pod ~40 ms of its start.
  // No -daemonize: the seccomp filter denies fork, so frakti starts QEMU in a session of its own instead.
  a.push('-pidfile', paths.pidFile);
  a.push('-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny');

  a.push('-machine', 'q35,usb=off,vmport=off,smbus=off,sata=off');
  // TCG's translation cache, bounded (see DEFAULT_TCG_CACHE_MIB for the trade).
  a.push('-accel', spec.accel === 'tcg' ? `tcg,tb-size=${spec.tcgCacheMiB}` : 'kvm');
  // -cpu host aborts under TCG; max is the richest model TCG emulates.
  a.push('-cpu', spec.accel === 'kvm' ? 'host' : 'max');
  a.push('-bios', spec.firmware);
  a.push('-smp', `${spec.cpus},maxcpus=${spec.maxCpus}`);

  const mem = `${spec.memoryMiB}M`;
  if (spec.maxMemoryMiB > spec.memoryMiB) {
    a.push('-m', `${mem},slots=${MEMORY_HOTPLUG_SLOTS},maxmem=${spec.maxMemoryMiB}M`);
  } else {
    a.push('-m', mem);
  }
  // virtio-fs (vhost-user) needs guest RAM the virtiofsd process can map.
  if (spec.share) {
    a.push('-object', `memory-backend-memfd,id=mem0,size=${mem},share=on`);
    a.push('-numa', 'node,memdev=mem0');
  }

  a.push('-kernel', spec.kernel, '-initrd', spec.initrd);
  a.push('-append', [...BASE_KERNEL_ARGS, ...spec.kernelArgs].join(' '));

  a.push('-qmp', `unix:${paths.qmpSocket},server=on,wait=off`);
  a.push('-qmp', `unix:${paths.debugQmpSocket},server=on,wait=off`);
  a.push('-chardev', `ringbuf,id=${CONSOLE_CHARDEV_ID},size=${CONSOLE_RING_BYTES}`);
  a.push('-serial', `chardev:${CONSOLE_CHARDEV_ID}`);

  a.push('-object', 'rng-random,id=rng0,filename=/dev/urandom');
  a.push('-device', 'virtio-rng-pci,rng=rng0,disable-legacy=on');
  // Free page reporting: the guest hands back the RAM it has freed (the boot's
  // init sections, a container's memory once it exits), so host memory follows
  // what the pod uses now, not the most it ever touched. No balloon is ever
  // inflated: the guest keeps all its memory.
  a.push('-device', 'virtio-balloon-pci,id=balloon0,free-page-reporting=on,disable-legacy=on');

  if (spec.channel.kind === 'serial') {
    a.push('-device', 'virtio-serial-pci,id=vser0,disable-legacy=on,max_ports=2');
    a.push('-chardev', `socket,id=agent,path=${paths.agentSocket},server=on,wait=off`);
    a.push('-device', `virtserialport,bus=vser0.0,chardev=agent,name=${AGENT_SERIAL_PORT_NAME}`);
  } else {
    a.push('-device', `vhost-vsock-pci,id=vsock0,guest-cid=${spec.channel.cid},disable-legacy=on`);
  }

  if (spec.share) {
    a.push('-chardev', `socket,id=vfs0,path=${paths.virtiofsdSocket}`);
    a.push('-device', `vhost-user-fs-pci,chardev=vfs0,tag=${spec.share.tag},queue-size=1024`);
  }

  spec.nics.forEach((nic, i) => {
    // vhost=off: vhost-net needs /dev/vhost-net, which a node may not have; TCG gains nothing from it.
    a.push('-netdev', `tap,id=net${i},ifname=${nic.tap},script=no,downscript=no,vhost=off`);
    // romfile=: qboot loads no option ROMs; iPXE's would only take memory.
    a.push('-device', `virtio-net-pci,netdev=net${i},mac=${nic.mac.toLowerCase()},disable-legacy=on,romfile=`);
  });

  for (let i = 0; i < spec.pcieRootPorts; i++) {
    a.push('-device', `pcie-root-port,id=rp${i},bus=pcie.0,chassis=${i + 1},slot=${i + 1}`);
  }
  return a;
}
