// RuntimeService/ListMetricDescriptors and ListPodSandboxMetrics: the
// cAdvisor-named metrics kubelet serves on /metrics/cadvisor when it takes
// pod and container stats from the runtime (PodAndContainerStatsFromCRI).
// CPU and memory come from the guest's cgroups through the agent; network
// from the host's count at the pod's tap, which all of the VM's traffic
// crosses. Label keys are cAdvisor's, so dashboards built on it still work.
import type { PodManager } from '../pod/index.js';
import type { PodDeps } from './pod-manager-holder.js';
import { nanos } from './pod-mapping.js';

const CONTAINER_LABELS = ['container', 'id', 'image', 'name', 'namespace', 'pod'];
const NETWORK_LABELS = [...CONTAINER_LABELS, 'interface'];

type Kind = 'COUNTER' | 'GAUGE';
/** name -> [help, label keys, type] */
const DESCRIPTORS: Record<string, [string, string[], Kind]> = {
  container_cpu_usage_seconds_total: ['Cumulative cpu time consumed in seconds.', CONTAINER_LABELS, 'COUNTER'],
  container_memory_usage_bytes: ['Current memory usage in bytes, including all memory regardless of when it was accessed.', CONTAINER_LABELS, 'GAUGE'],
  container_memory_working_set_bytes: ['Current working set in bytes.', CONTAINER_LABELS, 'GAUGE'],
  container_start_time_seconds: ['Start time of the container since unix epoch in seconds.', CONTAINER_LABELS, 'GAUGE'],
  container_fs_usage_bytes: ['Number of bytes that are consumed by the container on this filesystem.', [...CONTAINER_LABELS, 'device'], 'GAUGE'],
  container_fs_inodes_total: ['Number of inodes the container uses on this filesystem.', [...CONTAINER_LABELS, 'device'], 'GAUGE'],
  container_network_receive_bytes_total: ['Cumulative count of bytes received.', NETWORK_LABELS, 'COUNTER'],
  container_network_receive_packets_total: ['Cumulative count of packets received.', NETWORK_LABELS, 'COUNTER'],
  container_network_transmit_bytes_total: ['Cumulative count of bytes transmitted.', NETWORK_LABELS, 'COUNTER'],
  container_network_transmit_packets_total: ['Cumulative count of packets transmitted.', NETWORK_LABELS, 'COUNTER'],
};

export function makeListMetricDescriptors() {
  return async () => ({ descriptors: Object.entries(DESCRIPTORS).map(([name, [help, label_keys]]) => ({ name, help, label_keys })) });
}

function metric(name: keyof typeof DESCRIPTORS, labels: string[], value: number | bigint, at: number) {
  return { name, timestamp: nanos(at), metric_type: DESCRIPTORS[name]![2], label_values: labels, value: { value: BigInt(Math.max(0, Math.floor(Number(value)))).toString() } };
}

async function podMetrics(pods: PodManager, podId: string) {
  const pod = pods.pod(podId);
  const m = pod.meta.spec.metadata;
  const at = Date.now();
  // The pod-level series belong to cAdvisor's "POD" container, as for runc pods.
  const podLabels = ['POD', pod.meta.id, '', m.name, m.namespace, m.name];
  const net = await pods.podNetwork(podId).catch(() => undefined);
  const netLabels = [...podLabels, 'eth0'];
  const metrics = net
    ? [
        metric('container_network_receive_bytes_total', netLabels, net.rxBytes, at),
        metric('container_network_receive_packets_total', netLabels, net.rxPackets, at),
        metric('container_network_transmit_bytes_total', netLabels, net.txBytes, at),
        metric('container_network_transmit_packets_total', netLabels, net.txPackets, at),
      ]
    : [];
  const containers = pods.containers().filter((c) => c.meta.podId === podId && c.status.state === 'RUNNING');
  // The writable layer, on the host's disk: what the container wrote into its root filesystem.
  const rw = new Map<string, ReturnType<typeof metric>[]>();
  for (const c of containers) {
    const u = await pods.writableLayer(c.meta.id).catch(() => undefined);
    if (!u) continue;
    const labels = [c.meta.spec.name, c.meta.id, c.meta.spec.imageRef, c.meta.spec.name, m.namespace, m.name, u.dir];
    rw.set(c.meta.id, [metric('container_fs_usage_bytes', labels, u.bytes, at), metric('container_fs_inodes_total', labels, u.inodes, at)]);
  }
  const container_metrics = await Promise.all(
    containers.map(async (c) => {
      const labels = [c.meta.spec.name, c.meta.id, c.meta.spec.imageRef, c.meta.spec.name, m.namespace, m.name];
      const s = await pods.containerStats(c.meta.id).catch(() => undefined);
      const t = s?.timestamp.getTime() ?? at;
      return {
        container_id: c.meta.id,
        metrics: [
          ...(s
            ? [
                // Whole seconds: the CRI carries integers.
                metric('container_cpu_usage_seconds_total', labels, s.cpuUsageNs / 1_000_000_000n, t),
                metric('container_memory_usage_bytes', labels, s.memoryUsageBytes, t),
                metric('container_memory_working_set_bytes', labels, s.memoryWorkingSetBytes, t),
              ]
            : []),
          ...(c.status.startedAt ? [metric('container_start_time_seconds', labels, c.status.startedAt / 1000, at)] : []),
          ...(rw.get(c.meta.id) ?? []),
        ],
      };
    }),
  );
  return { pod_sandbox_id: pod.meta.id, metrics, container_metrics };
}

export function makeListPodSandboxMetrics(d: PodDeps) {
  return async () => {
    const pods = d.pods();
    const ready = pods.pods().filter((p) => p.status.state === 'READY');
    return { pod_metrics: await Promise.all(ready.map((p) => podMetrics(pods, p.meta.id))) };
  };
}
