// make bench-volumes: what a pod's volumes cost against the host, in one run.
// - A block device (a loop device over a file) hot-plugged into the pod's VM
//   as virtio-blk: sequential write and read (dd, 1 MiB blocks, O_DIRECT)
//   and 4 KiB random reads (bench/tools/randread.c, O_DIRECT) in the
//   container, against the same commands on the host's loop device.
// - A host folder through the pod's virtio-fs share: a file written (fsync)
//   and read back, in the container against the host.
// The container image is busybox plus randread, built here.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { busyboxLayers, pushImage, startRegistry, writeImage, writeLayoutIndex } from '../test/helpers/image-registry.js';
import { startDaemon, type RunningDaemon } from '../test/helpers/cri-client.js';
import { report, round } from './runner.js';

const MIB = Number(process.env.BENCH_MIB ?? 256);
const RANDOM_SECONDS = Number(process.env.BENCH_RANDOM_SECONDS ?? 3);
const LONG = { timeoutMs: 300_000 };

/** MB/s of `busybox time -p busybox dd ...` (Debian's busybox dd prints no rate): the bytes over "real". */
function ddRate(output: string, bytes: number): number {
  const m = /^real ([\d.]+)$/m.exec(output);
  if (!m || !/records out/.test(output)) throw new Error(`no dd timing in: ${output.slice(-300)}`);
  return bytes / 1e6 / Math.max(Number(m[1]), 0.01);
}

function iops(stdout: string): number {
  const m = /IOPS (\d+)/.exec(stdout);
  if (!m) throw new Error(`no IOPS in: ${stdout.slice(-300)}`);
  return Number(m[1]);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-bench-vol-'));
  const randread = join(dir, 'randread');
  await execa('musl-gcc', ['-O2', '-static', '-o', randread, fileURLToPath(new URL('../../bench/tools/randread.c', import.meta.url))]);
  const reg = await startRegistry();
  const image = `${reg.host}/bench-volumes:latest`;
  const layout = join(dir, 'layout');
  const layers = await busyboxLayers();
  layers.push([
    { name: 'bin/', type: 'directory' },
    { name: 'bin/dd', type: 'symlink', linkname: 'busybox' },
    { name: 'bin/randread', content: await readFile(randread), mode: 0o755 },
  ]);
  const m = await writeImage(layout, { layers, config: { Cmd: ['sh'], WorkingDir: '/' } });
  await writeLayoutIndex(layout, m, 'latest');
  await pushImage(layout, image);

  const file = join(dir, 'disk.img');
  await execa('truncate', ['-s', `${MIB * 2}M`, file]);
  const loop = (await execa('losetup', ['-f', '--show', file])).stdout.trim();
  const shared = join(dir, 'shared');
  await execa('mkdir', ['-p', shared]);
  let d: RunningDaemon | undefined;
  try {
    d = await startDaemon({ dir: join(dir, 'frakti'), args: ['--log-level', 'warn'] });
    const rt = d.client.runtime;
    await d.client.image.PullImage!({ image: { image } }, LONG);
    const config = { metadata: { name: 'vol', uid: 'uid-vol', namespace: 'bench', attempt: 0 }, hostname: 'vol', log_directory: join(dir, 'logs'), linux: {} };
    const { pod_sandbox_id: pod } = await rt.RunPodSandbox!({ config }, LONG);
    const { container_id: c } = await rt.CreateContainer!({
      pod_sandbox_id: pod,
      config: {
        metadata: { name: 'vol', attempt: 0 },
        image: { image },
        command: ['sleep', '100000'],
        devices: [{ container_path: '/dev/xvda', host_path: loop, permissions: 'rw' }],
        mounts: [{ container_path: '/shared', host_path: shared, readonly: false }],
      },
      sandbox_config: config,
    }, LONG);
    await rt.StartContainer!({ container_id: c });
    const removePod = async () => {
      await rt.StopPodSandbox!({ pod_sandbox_id: pod }, LONG);
      await rt.RemovePodSandbox!({ pod_sandbox_id: pod }, LONG);
    };
    const inPod = async (script: string) => {
      const r = await rt.ExecSync!({ container_id: c, cmd: ['sh', '-c', script], timeout: '600' }, LONG);
      if (r.exit_code !== 0) throw new Error(`${script}: exit ${r.exit_code}: ${Buffer.from(r.stderr).toString()}`);
      return { out: Buffer.from(r.stdout).toString(), err: Buffer.from(r.stderr).toString() };
    };
    const onHost = async (script: string) => {
      const r = await execa('sh', ['-c', script]);
      return { out: r.stdout, err: r.stderr };
    };
    const figures: Record<string, number> = {};
    try {
      for (const [where, run, dev, folder, rr] of [
        ['vm', inPod, '/dev/xvda', '/shared', '/bin/randread'],
        ['host', onHost, loop, shared, randread],
      ] as const) {
        const dd = async (args: string) => ddRate((await run(`busybox time -p busybox dd ${args} 2>&1 >/dev/null`)).out, MIB * 1024 * 1024);
        figures[`blk_seq_write_mb_s_${where}`] = round(await dd(`if=/dev/zero of=${dev} bs=1M count=${MIB} oflag=direct`), 1);
        figures[`blk_seq_read_mb_s_${where}`] = round(await dd(`if=${dev} of=/dev/null bs=1M count=${MIB} iflag=direct`), 1);
        figures[`blk_rand_read_4k_iops_${where}`] = iops((await run(`${rr} ${dev} ${RANDOM_SECONDS}`)).out);
        figures[`fs_write_mb_s_${where}`] = round(await dd(`if=/dev/zero of=${folder}/f bs=1M count=${MIB} conv=fsync`), 1);
        figures[`fs_read_mb_s_${where}`] = round(await dd(`if=${folder}/f of=/dev/null bs=1M`), 1);
        await run(`rm -f ${folder}/f`);
      }
      for (const k of ['blk_seq_write_mb_s', 'blk_seq_read_mb_s', 'blk_rand_read_4k_iops', 'fs_write_mb_s', 'fs_read_mb_s']) {
        figures[`${k}_ratio`] = round(figures[`${k}_vm`]! / figures[`${k}_host`]!, 3);
      }
    } finally {
      await removePod();
    }
    report('volumes', { mib: MIB, ...figures });
  } finally {
    // Cleanup never hides the error that ended the run.
    await d?.cleanup().catch((e: unknown) => console.error('cleanup:', e));
    await execa('losetup', ['-d', loop], { reject: false });
    await reg.stop();
    await rm(dir, { recursive: true, force: true }).catch((e: unknown) => console.error('cleanup:', e));
  }
}

await main();
