// A real containerd (Debian's, with runc) for mixed-runtime tests: a root,
// state, socket and config of its own under the test's folder; nothing of a
// containerd the host may run is touched. stop() removes its pods through
// the CRI, kills what is left (shims, containers), unmounts and deletes.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { criClient, waitFor, type CriClient } from './cri-client.js';
import { mountsUnder, processesMentioning } from './vmm-leaks.js';

export const CONTAINERD_BIN = '/usr/bin/containerd';

export interface Containerd {
  dir: string;
  socket: string;
  endpoint: string;
  client: CriClient;
  /** Everything it logged so far (bounded). */
  log(): string;
  /** SIGKILL or SIGTERM it, keeping its folders (a restart test starts it again with start()). */
  kill(sig?: NodeJS.Signals): Promise<void>;
  start(): Promise<void>;
  /** Removes its pods, stops it, kills and unmounts what is left, deletes its folder. */
  stop(): Promise<void>;
}

export interface ContainerdOptions {
  /** host:port of plain-HTTP registries on loopback. */
  registries: string[];
  /** The sandbox (pause) image, on that registry. */
  sandboxImage: string;
  cniConfDir: string;
}

export async function startContainerd(dir: string, opts: ContainerdOptions): Promise<Containerd> {
  await mkdir(dir, { recursive: true });
  const socket = join(dir, 'containerd.sock');
  const config = join(dir, 'config.toml');
  // restrict_oom_score_adj: these machines give no CAP_SYS_RESOURCE for the OOM score.
  await writeFile(
    config,
    `version = 2
root = "${join(dir, 'root')}"
state = "${join(dir, 'state')}"
[grpc]
  address = "${socket}"
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  sandbox_image = "${opts.sandboxImage}"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    Root = "${join(dir, 'runc')}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${opts.cniConfDir}"
${opts.registries.map((r) => `  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."${r}"]\n    endpoint = ["http://${r}"]\n`).join('')}`,
  );
  let out = '';
  let child: ResultPromise | undefined;
  const client = criClient(socket);
  const start = async () => {
    child = execa(CONTAINERD_BIN, ['--config', config], { reject: false, stdin: 'ignore', buffer: false, all: true });
    child.all?.on('data', (b: Buffer) => (out = (out + b.toString()).slice(-256 * 1024)));
    await waitFor('containerd to answer Version', async () => {
      await client.runtime.Version!({}, { timeoutMs: 1000 });
      return true;
    }, 30_000, 100);
  };
  const kill = async (sig: NodeJS.Signals = 'SIGTERM') => {
    if (!child) return;
    const c = child;
    child = undefined;
    c.kill(sig);
    const timer = setTimeout(() => c.kill('SIGKILL'), 10_000);
    await c;
    clearTimeout(timer);
  };
  const c: Containerd = {
    dir,
    socket,
    endpoint: `unix://${socket}`,
    client,
    log: () => out,
    kill,
    start,
    async stop() {
      try {
        if (child) {
          const pods = (await client.runtime.ListPodSandbox!({}, { timeoutMs: 10_000 }).catch(() => ({ items: [] }))).items as { id: string }[];
          for (const p of pods) {
            await client.runtime.StopPodSandbox!({ pod_sandbox_id: p.id }, { timeoutMs: 30_000 }).catch(() => {});
            await client.runtime.RemovePodSandbox!({ pod_sandbox_id: p.id }, { timeoutMs: 30_000 }).catch(() => {});
          }
        }
      } finally {
        client.close();
        await kill();
        // Shims outlive containerd by design; theirs name its socket (so does
        // a frakti pointed at it, which is not ours to kill).
        for (const p of await processesMentioning(socket)) {
          if (!/containerd-shim/.test(p.cmd)) continue;
          try {
            process.kill(p.pid, 'SIGKILL');
          } catch {
            /* gone meanwhile */
          }
        }
        for (const m of (await mountsUnder(dir)).reverse()) await execa('umount', ['-l', m], { reject: false });
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
  try {
    await start();
  } catch (err) {
    await c.stop();
    throw new Error(`containerd did not start: ${String(err)}\n${out.slice(-4000)}`);
  }
  return c;
}
