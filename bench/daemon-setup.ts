// What the daemon benchmarks start from: a registry on 127.0.0.1, a frakti
// daemon with folders of its own, and the busybox test image pulled into it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, buildBusyboxImage, pushImage } from '../test/helpers/image-registry.js';
import { startDaemon, type RunningDaemon } from '../test/helpers/cri-client.js';

export interface BenchDaemon {
  dir: string;
  d: RunningDaemon;
  image: string;
  /** Stops the daemon and the registry and removes the folder. */
  cleanup(): Promise<void>;
}

export async function daemonWithBusybox(prefix: string, args: string[] = []): Promise<BenchDaemon> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const reg = await startRegistry();
  let d: RunningDaemon | undefined;
  const cleanup = async () => {
    // Pods a failed run left: their VMs outlive the daemon, and their mounts would keep the folder.
    const left = d ? await d.client.runtime.ListPodSandbox!({}).then((r) => r.items as { id: string }[], () => []) : [];
    for (const p of left) await d!.client.runtime.RemovePodSandbox!({ pod_sandbox_id: p.id }, { timeoutMs: 60_000 }).catch(() => {});
    await d?.cleanup();
    await reg.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    d = await startDaemon({ dir: join(dir, 'd'), args });
    const built = await buildBusyboxImage(dir);
    const image = `${reg.host}/busybox:latest`;
    await pushImage(built.layout, image);
    await d.client.image.PullImage!({ image: { image } });
    return { dir, d, image, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
