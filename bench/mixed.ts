// make bench-mixed: what frakti's routing costs a pod that runs in the
// OS-container runtime. In one run, alternating: RunPodSandbox +
// CreateContainer + StartContainer of a hostNetwork busybox pod through
// frakti's socket against the same calls straight to containerd's; then
// ListContainers with BENCH_PODS host pods and BENCH_PODS VM pods, through
// frakti (both runtimes' containers, merged) against containerd alone (its
// own). Real containerd + runc, real VMs.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBusyboxImage, pushImage, startRegistry } from '../test/helpers/image-registry.js';
import { startDaemon, type CriClient } from '../test/helpers/cri-client.js';
import { startContainerd } from '../test/helpers/containerd.js';
import { median, percentile, report, round, timeMs } from './runner.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
const PODS = Number(process.env.BENCH_PODS ?? 20);
const LIST_CALLS = Number(process.env.BENCH_LIST_CALLS ?? 200);
const LONG = { timeoutMs: 180_000 };

/* eslint-disable @typescript-eslint/no-explicit-any */
function podConfig(name: string, logDir: string, host: boolean) {
  return {
    metadata: { name, uid: `uid-${name}`, namespace: 'bench', attempt: 0 },
    hostname: host ? '' : name,
    log_directory: logDir,
    linux: { security_context: { namespace_options: { network: host ? 'NODE' : 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
  };
}

async function startPod(c: CriClient, name: string, logDir: string, image: string, host: boolean): Promise<string> {
  const config = podConfig(name, logDir, host);
  const { pod_sandbox_id: pod } = await c.runtime.RunPodSandbox!({ config }, LONG);
  const { container_id: ctr } = await c.runtime.CreateContainer!({ pod_sandbox_id: pod, config: { metadata: { name, attempt: 0 }, image: { image }, command: ['sleep', '100000'], log_path: `${name}.log` }, sandbox_config: config }, LONG);
  await c.runtime.StartContainer!({ container_id: ctr }, LONG);
  return pod;
}

async function removePod(c: CriClient, pod: string): Promise<void> {
  await c.runtime.StopPodSandbox!({ pod_sandbox_id: pod }, LONG);
  await c.runtime.RemovePodSandbox!({ pod_sandbox_id: pod }, LONG);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-bench-mixed-'));
  const reg = await startRegistry();
  const image = `${reg.host}/busybox:latest`;
  const pause = `${reg.host}/pause:latest`;
  await pushImage((await buildBusyboxImage(join(dir, 'busybox'))).layout, image);
  await pushImage((await buildBusyboxImage(join(dir, 'pause'), { Cmd: ['sleep', '2147483647'] })).layout, pause);
  const ctrdDir = join(dir, 'containerd');
  const d = await startDaemon({ dir: join(dir, 'frakti'), args: ['--os-runtime-endpoint', `unix://${join(ctrdDir, 'containerd.sock')}`, '--log-level', 'warn'] });
  const ctrd = await startContainerd(ctrdDir, { registries: [reg.host], sandboxImage: pause, cniConfDir: join(d.dir, 'cni') });
  const logDir = join(dir, 'logs');
  const pods: string[] = [];
  try {
    await d.client.image.PullImage!({ image: { image } }, LONG);
    // One of each first: containerd's first pod pays for its snapshots.
    await removePod(d.client, await startPod(d.client, 'warm', logDir, image, true));
    const viaFrakti: number[] = [];
    const direct: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      for (const [c, out, tag] of [[d.client, viaFrakti, 'f'], [ctrd.client, direct, 'c']] as const) {
        let pod = '';
        out.push(await timeMs(async () => (pod = await startPod(c, `start-${tag}${i}`, logDir, image, true))));
        await removePod(c, pod);
      }
    }

    // VM pods first: frakti's list with containerd holding none shows what
    // frakti's own part costs; then the host pods, and the merged list.
    for (let i = 0; i < PODS; i++) pods.push(await startPod(d.client, `vm-${i}`, logDir, image, false));
    const vmOnly: number[] = [];
    for (let i = 0; i < LIST_CALLS; i++) vmOnly.push(await timeMs(() => d.client.runtime.ListContainers!({})));
    for (let i = 0; i < PODS; i++) pods.push(await startPod(d.client, `host-${i}`, logDir, image, true));
    const merged = (await d.client.runtime.ListContainers!({})).containers.length;
    const listFrakti: number[] = [];
    const listDirect: number[] = [];
    for (let i = 0; i < LIST_CALLS; i++) {
      listFrakti.push(await timeMs(() => d.client.runtime.ListContainers!({})));
      listDirect.push(await timeMs(() => ctrd.client.runtime.ListContainers!({})));
    }
    report('mixed', {
      host_pod_start_via_frakti_ms_median: round(median(viaFrakti), 1),
      host_pod_start_direct_ms_median: round(median(direct), 1),
      host_pod_start_ratio: round(median(viaFrakti) / median(direct)),
      host_pod_start_via_frakti_ms: viaFrakti.map((x) => round(x, 0)),
      host_pod_start_direct_ms: direct.map((x) => round(x, 0)),
      list_containers_pods_each_kind: PODS,
      list_containers_via_frakti_items: merged,
      list_containers_via_frakti_ms_median: round(median(listFrakti)),
      list_containers_direct_ms_median: round(median(listDirect)),
      list_containers_ratio: round(median(listFrakti) / median(listDirect)),
      list_containers_vm_pods_only_via_frakti_ms_median: round(median(vmOnly)),
      list_containers_via_frakti_ms_p99: round(percentile(listFrakti, 99)),
      list_containers_direct_ms_p99: round(percentile(listDirect, 99)),
    });
  } finally {
    for (const p of pods) await removePod(d.client, p).catch(() => {});
    await ctrd.stop();
    await d.cleanup();
    await reg.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
