// make bench-agent: the agent in a real VM (TCG). Round trip of exec `true`
// (exec, output streams closed, exit event) against a ping round trip on the
// same channel (the floor: one request, one answer); output throughput of a
// container process against raw channel throughput (large pings); the
// agent's memory in the guest; the initrd's size. And exec `true` in a
// container under frakti's RuntimeDefault seccomp filter against the same in
// an unconfined one (the filter's cost), alternating.
import { stat } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { guestAssets } from '../src/vmm/index.js';
import { execProc, proc, readAll, startAgentVm } from '../test/helpers/agent-vm.js';
import { compileSeccomp, runtimeDefaultProfile } from '../src/pod/seccomp/index.js';
import { median, report, round, timeMs } from './runner.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 30);
const OUTPUT_BYTES = 64 * 1024 * 1024;
const PING_BYTES = 512 * 1024;

async function main(): Promise<void> {
  const pod = await startAgentVm({ cpus: 1, memoryMiB: 512 });
  try {
    const root = await pod.rootfs('bench');
    await pod.agent.createContainer({
      id: 'bench', rootfs: root, readonlyRootfs: false, hostname: 'bench', process: proc(['sleep', '100000']),
      mounts: [{ kind: 'bind', source: '/proc', destination: '/guestproc', readonly: true }],
      capabilities: [], noNewPrivileges: true, pidNamespace: 'container', resources: {},
    });
    const init = await pod.agent.startContainer('bench');
    init.stdout.resume();
    init.stderr.resume();
    const filtered = await pod.rootfs('filtered');
    await pod.agent.createContainer({
      id: 'filtered', rootfs: filtered, readonlyRootfs: false, hostname: 'filtered', process: proc(['sleep', '100000']),
      mounts: [], capabilities: [], noNewPrivileges: true, pidNamespace: 'container', resources: {},
      seccompFilter: compileSeccomp(runtimeDefaultProfile([])),
    });
    const finit = await pod.agent.startContainer('filtered');
    finit.stdout.resume();
    finit.stderr.resume();

    const ping: number[] = [];
    for (let i = 0; i < RUNS; i++) ping.push(await timeMs(() => pod.agent.ping()));
    const execTrue: number[] = [];
    const execFiltered: number[] = [];
    const execIn = (cid: string, id: string) => timeMs(async () => {
      const p = await pod.agent.exec(cid, id, execProc(['true']));
      await Promise.all([readAll(p.stdout), readAll(p.stderr), pod.agent.wait(cid, id)]);
    });
    for (let i = 0; i < RUNS; i++) {
      execTrue.push(await execIn('bench', `t${i}`));
      execFiltered.push(await execIn('filtered', `f${i}`));
    }

    // Raw channel: echo pings of PING_BYTES, bytes counted one way (the answer).
    const pingData = Buffer.alloc(PING_BYTES, 7);
    const rawRounds = 32;
    const rawMs = await timeMs(async () => {
      for (let i = 0; i < rawRounds; i++) await pod.agent.echo(pingData, { timeoutMs: 60_000 });
    });
    const rawMBps = (2 * rawRounds * PING_BYTES) / 1e6 / (rawMs / 1000);

    const t0 = performance.now();
    const big = await pod.agent.exec('bench', 'big', execProc(['dd', 'if=/dev/zero', 'bs=65536', `count=${OUTPUT_BYTES / 65536}`]));
    big.stderr.resume();
    let got = 0;
    for await (const c of big.stdout) got += (c as Buffer).length;
    await pod.agent.wait('bench', 'big');
    const outMBps = got / 1e6 / ((performance.now() - t0) / 1000);
    if (got !== OUTPUT_BYTES) throw new Error(`output: ${got} of ${OUTPUT_BYTES} bytes`);

    const status = await pod.agent.exec('bench', 'status', execProc(['cat', '/guestproc/1/status']));
    const text = (await readAll(status.stdout)).toString();
    status.stderr.resume();
    const kib = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(text)?.[1]);
    const initrd = (await stat(guestAssets().initrd)).size;

    const execMs = median(execTrue);
    const pingMs = median(ping);
    report('agent', {
      exec_true_median_ms: round(execMs, 2),
      ping_median_ms: round(pingMs, 2),
      output_MBps: round(outMBps, 1),
      raw_channel_MBps: round(rawMBps, 1),
      agent_rss_kib: kib('VmRSS'),
      agent_hwm_kib: kib('VmHWM'),
      initrd_bytes: initrd,
      runs: RUNS,
      accel: 'tcg',
      ratio: round(execMs / pingMs, 2),
      throughput_ratio: round(outMBps / rawMBps, 2),
      exec_true_runtime_default_seccomp_median_ms: round(median(execFiltered), 2),
      seccomp_ratio: round(median(execFiltered) / execMs, 3),
    });
  } finally {
    await pod.stop();
  }
}

main().catch((err) => {
  process.stderr.write(`bench-agent: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
