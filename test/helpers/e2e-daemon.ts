// The daemon of an end-to-end test: folders of its own under the test's
// dir, and after the test nothing of it left. Pods a failed test left are
// removed through the CRI, as an operator would; then no QEMU or virtiofsd
// may run under its folder, nothing may stay mounted there, and no network
// namespace may be left that was not there before it started (another
// frakti on the node may have its own).
import assert from 'node:assert/strict';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { startDaemon, type RunningDaemon } from './cri-client.js';
import { killLeftovers, mountsUnder } from './vmm-leaks.js';

export async function fraktiNetns(): Promise<string[]> {
  return (await execa('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith('frakti-'));
}

export async function daemonLeavingNothing(t: { after(fn: () => unknown): void }, dir: string, name: string, args: string[] = []): Promise<RunningDaemon> {
  const ddir = join(dir, name);
  await mkdir(ddir, { recursive: true });
  const nsBefore = new Set(await fraktiNetns());
  const d = await startDaemon({ dir: ddir, args });
  // The pod and VM ids it logs: a namespace another daemon on the node made meanwhile is not its leak.
  const ids = new Set<string>();
  let tail = '';
  d.child.stderr?.on('data', (b: Buffer) => {
    const text = tail + b.toString();
    for (const id of text.match(/\b[0-9a-f]{64}\b/g) ?? []) ids.add(id.slice(0, 16));
    tail = text.slice(-64);
  });
  t.after(async () => {
    // Each step runs whatever the one before did (a hung or failed removal
    // must not leave QEMU running); what leaked is removed, then reported.
    const rt = d.client.runtime;
    // The daemon's own cleanup fails on NAT rules a pod's CNI DEL left: reported after the rest is cleaned.
    let cleanupError: unknown;
    try {
      const pods = (await rt.ListPodSandbox!({}, { timeoutMs: 10_000 }).catch(() => ({ items: [] }))).items;
      for (const p of pods) await rt.RemovePodSandbox!({ pod_sandbox_id: p.id }, { timeoutMs: 60_000 }).catch(() => {});
    } finally {
      await d.cleanup().catch((err: unknown) => {
        cleanupError = err;
      });
    }
    const left = (await killLeftovers(ddir)).filter((l) => /qemu-system|virtiofsd/.test(l));
    for (const m of (await mountsUnder(ddir)).reverse()) await execa('umount', ['-l', m], { reject: false });
    const ns = (await fraktiNetns()).filter((n) => !nsBefore.has(n) && ids.has(n.slice('frakti-'.length)));
    for (const n of ns) await execa('ip', ['netns', 'delete', n], { reject: false });
    await rm(ddir, { recursive: true, force: true });
    assert.deepEqual(left, [], 'QEMU or virtiofsd left running');
    assert.deepEqual(ns, [], 'network namespaces left');
    if (cleanupError) throw cleanupError;
  });
  return d;
}

/** A pod as kubelet runs one (each container its own PID namespace) with one started container sleeping in it. */
export async function podWithContainer(d: RunningDaemon, image: string, name: string, namespace: string): Promise<{ pod: string; ctr: string }> {
  const config = {
    metadata: { name, uid: `uid-${name}`, namespace, attempt: 0 },
    hostname: name,
    log_directory: join(d.dir, 'logs', name),
    linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
  };
  const rt = d.client.runtime;
  const { pod_sandbox_id: pod } = await rt.RunPodSandbox!({ config }, { timeoutMs: 120_000 });
  const { container_id: ctr } = await rt.CreateContainer!({
    pod_sandbox_id: pod,
    config: { metadata: { name: 'main', attempt: 0 }, image: { image }, command: ['sleep', '100000'], log_path: 'main.log' },
    sandbox_config: config,
  }, { timeoutMs: 120_000 });
  await rt.StartContainer!({ container_id: ctr });
  return { pod, ctr };
}
