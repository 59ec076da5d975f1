// make bench-net: TCP from the host to a pod (through the CNI bridge, the
// veth, the tc redirect, the tap and the VM's virtio-net), against the host
// to a plain veth network namespace in the same run. The server on both ends
// is busybox httpd; measured: round trip of a small GET (median) and the
// throughput of a 32 MiB GET.
import { mkdir, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa, type ResultPromise } from 'execa';
import { waitFor } from '../test/helpers/cri-client.js';
import { daemonWithBusybox } from './daemon-setup.js';
import { median, report, round, timeMs } from './runner.js';

const RTT_RUNS = Number(process.env.BENCH_RUNS ?? 200);
const BIG_MIB = 32;
const PORT = 8080;

function get(host: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port: PORT, path, agent: false, timeout: 30_000 }, (res) => {
      let n = 0;
      res.on('data', (b: Buffer) => (n += b.length));
      res.on('end', () => resolve(n));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${host}${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

async function measure(host: string): Promise<{ rttMs: number; mbps: number }> {
  for (let i = 0; i < 10; i++) await get(host, '/small'); // warm up
  const rtts: number[] = [];
  for (let i = 0; i < RTT_RUNS; i++) rtts.push(await timeMs(() => get(host, '/small')));
  const bytes: number[] = [];
  const times: number[] = [];
  for (let i = 0; i < 3; i++) times.push(await timeMs(async () => bytes.push(await get(host, '/big'))));
  const ms = median(times);
  if (bytes.some((b) => b !== BIG_MIB * 1024 * 1024)) throw new Error(`short read from ${host}: ${bytes.join(',')}`);
  return { rttMs: median(rtts), mbps: (BIG_MIB * 1024 * 1024) / 1e6 / (ms / 1000) };
}

/** The baseline: busybox httpd in a namespace on a veth pair, no VM. */
async function vethBaseline(dir: string): Promise<{ rttMs: number; mbps: number }> {
  const ns = `frakti-bench-${randomBytes(3).toString('hex')}`;
  const [a, b] = [`fbh${ns.slice(-6)}`, `fbn${ns.slice(-6)}`];
  const www = join(dir, 'www');
  await mkdir(www, { recursive: true });
  await writeFile(join(www, 'small'), 'ok\n');
  await execa('dd', ['if=/dev/zero', `of=${join(www, 'big')}`, 'bs=1M', `count=${BIG_MIB}`]);
  let server: ResultPromise | undefined;
  try {
    await execa('ip', ['netns', 'add', ns]);
    await execa('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b, 'netns', ns]);
    await execa('ip', ['addr', 'add', '10.253.77.1/30', 'dev', a]);
    await execa('ip', ['link', 'set', a, 'up']);
    await execa('ip', ['-n', ns, 'addr', 'add', '10.253.77.2/30', 'dev', b]);
    await execa('ip', ['-n', ns, 'link', 'set', b, 'up']);
    await execa('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    server = execa('ip', ['netns', 'exec', ns, 'busybox', 'httpd', '-f', '-p', String(PORT), '-h', www], { reject: false });
    await waitFor('baseline httpd', async () => (await get('10.253.77.2', '/small')) > 0, 10_000, 50);
    return await measure('10.253.77.2');
  } finally {
    server?.kill('SIGKILL');
    await execa('ip', ['link', 'del', a], { reject: false });
    await execa('ip', ['netns', 'del', ns], { reject: false });
  }
}

async function main(): Promise<void> {
  const { dir, d, image, cleanup } = await daemonWithBusybox('frakti-bench-net-');
  try {
    const rt = d.client.runtime;
    const config = { metadata: { name: 'net', uid: 'u', namespace: 'bench', attempt: 0 }, log_directory: join(dir, 'logs') };
    const pod = (await rt.RunPodSandbox!({ config, }, { timeoutMs: 120_000 })).pod_sandbox_id;
    const script = `mkdir -p /tmp/www && echo ok > /tmp/www/small && dd if=/dev/zero of=/tmp/www/big bs=1048576 count=${BIG_MIB} 2>/dev/null && exec busybox httpd -f -p ${PORT} -h /tmp/www`;
    const ctr = (await rt.CreateContainer!({ pod_sandbox_id: pod, config: { metadata: { name: 'httpd', attempt: 0 }, image: { image }, command: ['sh', '-c', script], log_path: 'httpd.log' }, sandbox_config: config })).container_id;
    await rt.StartContainer!({ container_id: ctr });
    const ip = (await rt.PodSandboxStatus!({ pod_sandbox_id: pod })).status.network.ip as string;
    await waitFor('pod httpd', async () => (await get(ip, '/small')) > 0, 60_000, 200);
    const vm = await measure(ip);
    await rt.RemovePodSandbox!({ pod_sandbox_id: pod }, { timeoutMs: 60_000 });
    const base = await vethBaseline(dir);
    report('net', {
      pod_rtt_ms: round(vm.rttMs, 3),
      veth_rtt_ms: round(base.rttMs, 3),
      pod_throughput_mbps: round(vm.mbps, 1),
      veth_throughput_mbps: round(base.mbps, 1),
      rtt_ratio: round(vm.rttMs / base.rttMs, 2),
      ratio: round(vm.mbps / base.mbps, 3),
    });
  } finally {
    await cleanup();
  }
}

await main();
