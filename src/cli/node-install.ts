// What `frakti install` writes on a node: the systemd unit, the config file
// with every key documented and commented out at its default, and crictl's
// endpoint file. Texts only; the command writes them.
import type { DaemonConfig } from '../cri/index.js';

export interface InstallPaths {
  /** The installed executable (ExecStart). */
  executable: string;
  /** The config file the unit passes to `frakti daemon --config`. */
  configFile: string;
}

/**
 * The unit. KillMode=process: a pod VM (QEMU, virtiofsd) is started by the
 * daemon in a session of its own but stays in this unit's cgroup; with the
 * default KillMode=control-group a `systemctl restart frakti` (an upgrade, a
 * crash) would kill every pod. With KillMode=process systemd signals only
 * the daemon, and the next daemon re-attaches to the VMs it finds under
 * --state, as it does after any restart. A slice of their own would need
 * frakti to move each QEMU into a systemd scope over D-Bus at launch, tying
 * the daemon to systemd; containerd's unit makes the same choice for its shims.
 */
export function unitText(p: InstallPaths): string {
  return `# frakti: Kubernetes CRI runtime that runs every pod in its own QEMU VM.
# Written by \`frakti install\`.
[Unit]
Description=frakti container runtime (one VM per pod)
After=network-online.target local-fs.target
Wants=network-online.target
Before=kubelet.service

[Service]
Type=exec
ExecStart=${p.executable} daemon --config ${p.configFile}
# Pod VMs are the daemon's detached children in this unit's cgroup: on stop
# and restart signal only the daemon, so the VMs keep running and the next
# daemon re-attaches to them. \`systemctl kill frakti\` ends them all.
KillMode=process
Restart=always
RestartSec=5
# The daemon finishes in-flight calls within grpc.shutdown_timeout_ms (10 s).
TimeoutStopSec=30
# Each pod holds a few descriptors (QMP, agent channel, logs, virtiofsd).
LimitNOFILE=1048576
TasksMax=infinity
# No OOMScoreAdjust: QEMU and virtiofsd inherit the daemon's, and a pod VM
# must stay a fair choice for the kernel's OOM killer, not a protected one.

[Install]
WantedBy=multi-user.target
`;
}

const toml = (v: unknown): string => JSON.stringify(v);

/** The config file: every key the daemon reads, explained, commented out at its default. */
export function configText(d: DaemonConfig): string {
  const key = (name: string, value: unknown, ...doc: string[]) => [...doc.map((l) => `# ${l}`), `# ${name} = ${toml(value)}`, ''];
  return [
    '# frakti daemon configuration (`frakti daemon --config FILE`), in the manner',
    "# of containerd's config.toml. Every key is shown commented out at its",
    '# default: uncomment a line to change it. A flag of `frakti daemon` wins over',
    '# the file; unknown keys are refused.',
    '',
    ...key('version', 1, 'Format of this file; 1 is the only one.'),
    ...key('root', d.root, 'Persistent state: images, pod records, the extracted guest files (assets/). Flag --root.'),
    ...key('state', d.state, 'Volatile state: VM sockets and pid files. Flag --state.'),
    '[grpc]',
    ...key('address', d.listen, "The CRI socket (kubelet's --container-runtime-endpoint=unix://...). Flag --listen."),
    ...key('max_message_bytes', d.maxMessageBytes, 'Largest CRI message in either direction.'),
    ...key('shutdown_timeout_ms', d.shutdownTimeoutMs, 'At SIGTERM, how long in-flight calls may take to finish. Flag --shutdown-timeout-ms.'),
    '[debug]',
    ...key('level', d.logLevel, 'Log level: error, warn, info or debug. Flag --log-level.'),
    '[stream]',
    ...key('address', d.streamAddress, 'IP:PORT of the exec/attach/port-forward server; port 0 takes any free port. Flag --stream-address.'),
    ...key('idle_timeout_ms', d.streamIdleTimeoutMs, 'A streaming connection without traffic this long is closed. Flag --stream-idle-timeout-ms.'),
    '[metrics]',
    ...key('address', d.metricsAddress, 'HOST:PORT (or a bare PORT: loopback) of the Prometheus endpoint /metrics; empty: not served. Flag --metrics-address.'),
    '[pod]',
    ...key('default_cpus', d.defaultCpus, 'vCPUs of a pod VM whose pod gives no resources. Flag --default-cpus.'),
    ...key('default_memory_mb', d.defaultMemoryMb, 'Memory (MiB) of a pod VM whose pod gives no resources. Flag --default-memory-mb.'),
    ...key('max_memory_mb', d.maxMemoryMb, "How far a pod VM's memory grows in an in-place resize; 0: the host's memory. Flag --max-memory-mb."),
    ...key('tcg_cache_mb', d.tcgCacheMb, "Only without KVM: each pod VM's translation cache (MiB), memory against speed. Flag --tcg-cache-mb."),
    ...key('vm_pool', d.vmPool, 'Pod VMs kept booted ahead at the default size, each for one pod and never shared; 0: none. Flag --vm-pool.'),
    '[image]',
    ...key('max_concurrent_downloads', d.image.maxConcurrentDownloads, 'Layer downloads at once per pull.'),
    ...key('insecure_registries', d.image.insecureRegistries, 'Registries spoken to over plain HTTP, as "host:port" (loopback always is). Flag --insecure-registry.'),
    '# Mirrors tried first, in order, for a registry host:',
    '# [image.registry.mirrors."docker.io"]',
    '# endpoint = ["https://mirror.example.com"]',
    '',
  ].join('\n');
}

/** crictl's config (/etc/crictl.yaml): both endpoints on frakti's socket. */
export function crictlText(socket: string): string {
  return `runtime-endpoint: unix://${socket}\nimage-endpoint: unix://${socket}\ntimeout: 10\n`;
}
