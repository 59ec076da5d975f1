// make bench-stream: exec through the streaming URL (Exec RPC, HTTP upgrade,
// channels, status) as kubectl exec does it, over SPDY and over WebSocket
// (@kubernetes/client-node's Exec, v5.channel.k8s.io), against ExecSync of
// the same command in the same pod, alternated in one run: the round trip
// of `true`, and the throughput of 12 MiB of stdout.
import { join } from 'node:path';
import { daemonWithBusybox } from './daemon-setup.js';
import { exitCodeOf, k8sExec } from '../test/helpers/k8s-websocket.js';
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

    const spdy = async (cmd: string[]): Promise<number> => {
      const { url } = await rt.Exec!({ container_id: ctr, cmd, stdout: true, stderr: true });
      const { client } = await spdyConnect(url, ['v4.channel.k8s.io']);
      const [error, stdout, stderr] = await Promise.all(['error', 'stdout', 'stderr'].map((t) => client.open({ streamType: t })));
      const [out, , status] = await Promise.all([readAll(stdout!), readAll(stderr!), readAll(error!)]);
      client.close();
      if (JSON.parse(status).status !== 'Success') throw new Error(`exec failed: ${status}`);
      return out.length;
    };
    const websocket = async (cmd: string[]): Promise<number> => {
      const { url } = await rt.Exec!({ container_id: ctr, cmd, stdout: true, stderr: true });
      const r = await k8sExec(url, cmd);
      if (exitCodeOf(r.status) !== 0) throw new Error(`exec failed: ${JSON.stringify(r.status)}`);
      return r.stdout.length;
    };
    const sync = async (cmd: string[]): Promise<number> => {
      const r = await rt.ExecSync!({ container_id: ctr, cmd, timeout: '60' });
      if (r.exit_code !== 0) throw new Error(`ExecSync failed: ${r.exit_code}`);
      return r.stdout.length;
    };
    const big = ['sh', '-c', `dd if=/dev/zero bs=1048576 count=${OUTPUT_MIB} 2>/dev/null`];
    const ways = { spdy, websocket, execsync: sync };
    const roundTrip: Record<string, number[]> = { spdy: [], websocket: [], execsync: [] };
    const throughput: Record<string, number[]> = { spdy: [], websocket: [], execsync: [] };
    for (let i = 0; i < RUNS; i++) {
      for (const [name, run] of Object.entries(ways)) {
        roundTrip[name]!.push(await timeMs(() => run(['true'])));
        let n = 0;
        const ms = await timeMs(async () => (n = await run(big)));
        if (n !== OUTPUT_MIB * 1024 * 1024) throw new Error(`${name} gave ${n} bytes`);
        throughput[name]!.push(OUTPUT_MIB / (ms / 1000));
      }
    }
    const rtMs = (name: string) => median(roundTrip[name]!);
    const mibS = (name: string) => median(throughput[name]!);
    report('stream', {
      runs: RUNS,
      exec_true_ms: round(rtMs('spdy'), 1),
      ws_exec_true_ms: round(rtMs('websocket'), 1),
      execsync_true_ms: round(rtMs('execsync'), 1),
      exec_round_trip_ratio: round(rtMs('spdy') / rtMs('execsync')),
      ws_exec_round_trip_ratio: round(rtMs('websocket') / rtMs('execsync')),
      exec_stdout_mib_s: round(mibS('spdy'), 1),
      ws_exec_stdout_mib_s: round(mibS('websocket'), 1),
      execsync_stdout_mib_s: round(mibS('execsync'), 1),
      exec_throughput_ratio: round(mibS('spdy') / mibS('execsync')),
      ws_exec_throughput_ratio: round(mibS('websocket') / mibS('execsync')),
      exec_true_runs_ms: roundTrip.spdy!.map((x) => round(x, 0)),
      ws_exec_true_runs_ms: roundTrip.websocket!.map((x) => round(x, 0)),
      execsync_true_runs_ms: roundTrip.execsync!.map((x) => round(x, 0)),
    });
  } finally {
    if (pod) await rt.RemovePodSandbox!({ pod_sandbox_id: pod }, { timeoutMs: 60_000 }).catch((e: unknown) => console.error('remove pod:', e));
    await cleanup();
  }
}

await main();
