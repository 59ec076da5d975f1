// make bench-stream: exec through the streaming URL (Exec RPC, HTTP upgrade
// to SPDY, streams, status) as kubectl exec does it, against ExecSync of the
// same command in the same pod, alternated in one run: the round trip of
// `true`, and the throughput of 12 MiB of stdout.
import { join } from 'node:path';
import { daemonWithBusybox } from './daemon-setup.js';
import { readAll, spdyConnect } from '../test/helpers/spdy-client.js';
import { median, report, round, timeMs } from './runner.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const OUTPUT_MIB = 12;

async function main(): Promise<void> {
  const { dir, d, image, cleanup } = await daemonWithBusybox('frakti-bench-stream-');
  const rt = d.client.runtime;
  let pod = '';
  try {
    const config = { metadata: { name: 'bench-stream', uid: 'u', namespace: 'bench', attempt: 0 }, log_directory: join(dir, 'logs') };
    pod = (await rt.RunPodSandbox!({ config }, { timeoutMs: 120_000 })).pod_sandbox_id;
    const ctr = (await rt.CreateContainer!({ pod_sandbox_id: pod, config: { metadata: { name: 'idle', attempt: 0 }, image: { image }, command: ['sleep', '100000'], log_path: 'idle.log' }, sandbox_config: config })).container_id;
    await rt.StartContainer!({ container_id: ctr });

    const streamed = async (cmd: string[]): Promise<number> => {
      const { url } = await rt.Exec!({ container_id: ctr, cmd, stdout: true, stderr: true });
      const { client } = await spdyConnect(url, ['v4.channel.k8s.io']);
      const [error, stdout, stderr] = await Promise.all(['error', 'stdout', 'stderr'].map((t) => client.open({ streamType: t })));
      const [out, , status] = await Promise.all([readAll(stdout!), readAll(stderr!), readAll(error!)]);
      client.close();
      if (JSON.parse(status).status !== 'Success') throw new Error(`exec failed: ${status}`);
      return out.length;
    };
    const sync = async (cmd: string[]): Promise<number> => {
      const r = await rt.ExecSync!({ container_id: ctr, cmd, timeout: '60' });
      if (r.exit_code !== 0) throw new Error(`ExecSync failed: ${r.exit_code}`);
      return r.stdout.length;
    };
    const big = ['sh', '-c', `dd if=/dev/zero bs=1048576 count=${OUTPUT_MIB} 2>/dev/null`];
    const rt_stream: number[] = [];
    const rt_sync: number[] = [];
    const tp_stream: number[] = [];
    const tp_sync: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      rt_sync.push(await timeMs(() => sync(['true'])));
      rt_stream.push(await timeMs(() => streamed(['true'])));
      let n = 0;
      const ms1 = await timeMs(async () => (n = await sync(big)));
      if (n !== OUTPUT_MIB * 1024 * 1024) throw new Error(`ExecSync gave ${n} bytes`);
      tp_sync.push(OUTPUT_MIB / (ms1 / 1000));
      const ms2 = await timeMs(async () => (n = await streamed(big)));
      if (n !== OUTPUT_MIB * 1024 * 1024) throw new Error(`streamed exec gave ${n} bytes`);
      tp_stream.push(OUTPUT_MIB / (ms2 / 1000));
    }
    report('stream', {
      runs: RUNS,
      exec_true_ms: round(median(rt_stream), 1),
      execsync_true_ms: round(median(rt_sync), 1),
      exec_round_trip_ratio: round(median(rt_stream) / median(rt_sync)),
      exec_stdout_mib_s: round(median(tp_stream), 1),
      execsync_stdout_mib_s: round(median(tp_sync), 1),
      exec_throughput_ratio: round(median(tp_stream) / median(tp_sync)),
      exec_true_runs_ms: rt_stream.map((x) => round(x, 0)),
      execsync_true_runs_ms: rt_sync.map((x) => round(x, 0)),
    });
  } finally {
    if (pod) await rt.RemovePodSandbox!({ pod_sandbox_id: pod }, { timeoutMs: 60_000 }).catch((e: unknown) => console.error('remove pod:', e));
    await cleanup();
  }
}

await main();
