// Many calls at once, as a busy kubelet (or a test suite) sends them:
// RunPodSandbox and RemovePodSandbox together, some with one name; an
// ExecSync storm on one pod; and the daemon's health over pod lifecycles
// (its RSS and open file descriptors after many against after a few).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { busyboxFixture } from '../helpers/busybox-fixture.js';
import type { RunningDaemon } from '../helpers/cri-client.js';
import { daemonLeavingNothing } from '../helpers/e2e-daemon.js';
import { auditLeaks, nodeBaseline } from './leak-audit.js';
import { faultSchedule } from './schedule.js';

let dir: string;
let image: string;

busyboxFixture('frakti-conc-', (f) => {
  ({ dir, image } = f);
});

function podConfig(d: RunningDaemon, name: string) {
  return {
    metadata: { name, uid: `uid-${name}`, namespace: 'conc', attempt: 0 },
    hostname: name,
    log_directory: join(d.dir, 'logs', name),
    linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
  };
}

const codeOf = (err: unknown) => (err as { code?: number }).code;

test('RunPodSandbox and RemovePodSandbox at once, some with one name: one pod per name, the others ALREADY_EXISTS; all removed, nothing left, names free again', { timeout: 20 * 60_000 }, async (t) => {
  const s = faultSchedule('concurrent-pods');
  const unique = s.count(8, 16);
  const doubled = Math.max(2, Math.floor(unique / 4));
  const base = await nodeBaseline();
  const d = await daemonLeavingNothing(t, dir, 'pods');
  const rt = d.client.runtime;
  await d.client.image.PullImage!({ image: { image } }, { timeoutMs: 120_000 });
  const names = [...Array.from({ length: unique }, (_, i) => `p${i}`), ...Array.from({ length: doubled }, (_, i) => `p${i}`)];
  // Shuffled by the schedule: which of two same-named calls comes first is the race.
  for (let i = names.length - 1; i > 0; i--) {
    const j = s.int(i + 1);
    [names[i], names[j]] = [names[j]!, names[i]!];
  }
  const removals: Promise<unknown>[] = [];
  const t0 = Date.now();
  const runs = await Promise.all(
    names.map((name) =>
      rt.RunPodSandbox!({ config: podConfig(d, name) }, { timeoutMs: 300_000 }).then(
        (r: { pod_sandbox_id: string }) => {
          // Half the pods are removed the moment they run, while the others still start.
          if (s.random() < 0.5) removals.push(rt.RemovePodSandbox!({ pod_sandbox_id: r.pod_sandbox_id }, { timeoutMs: 300_000 }));
          return { name, id: r.pod_sandbox_id };
        },
        (err: unknown) => ({ name, err }),
      ),
    ),
  );
  await Promise.all(removals);
  t.diagnostic(`${names.length} RunPodSandbox at once (${doubled} names twice): ${Date.now() - t0} ms`);
  for (let i = 0; i < unique; i++) {
    const mine = runs.filter((r) => r.name === `p${i}`);
    const ok = mine.filter((r) => 'id' in r);
    assert.equal(ok.length, 1, `p${i}: ${ok.length} pods run for one name`);
    for (const r of mine) if ('err' in r) assert.equal(codeOf(r.err), status.ALREADY_EXISTS, `p${i}: ${String(r.err)}`);
  }
  const left = (await rt.ListPodSandbox!({})).items as { id: string; state: string }[];
  assert.equal(left.length, unique - removals.length);
  for (const p of left) assert.equal(p.state, 'SANDBOX_READY');
  await Promise.all(left.map((p) => rt.RemovePodSandbox!({ pod_sandbox_id: p.id }, { timeoutMs: 300_000 })));
  assert.deepEqual(await auditLeaks(d, base), [], 'leaked');
  // Every name is free again.
  const again = await rt.RunPodSandbox!({ config: podConfig(d, 'p0') }, { timeoutMs: 120_000 });
  await rt.RemovePodSandbox!({ pod_sandbox_id: again.pod_sandbox_id }, { timeoutMs: 120_000 });
});

async function fdCount(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

async function rssKiB(pid: number): Promise<number> {
  const st = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(st)?.[1] ?? NaN);
}

test('an ExecSync storm on one pod: every call answers with its own output; no file descriptor is left', { timeout: 10 * 60_000 }, async (t) => {
  const s = faultSchedule('exec-storm');
  const n = s.count(40, 200);
  const d = await daemonLeavingNothing(t, dir, 'storm');
  const rt = d.client.runtime;
  await d.client.image.PullImage!({ image: { image } }, { timeoutMs: 120_000 });
  const config = podConfig(d, 'storm');
  const { pod_sandbox_id: pod } = await rt.RunPodSandbox!({ config }, { timeoutMs: 120_000 });
  const { container_id: ctr } = await rt.CreateContainer!({
    pod_sandbox_id: pod,
    config: { metadata: { name: 'main', attempt: 0 }, image: { image }, command: ['sleep', '100000'] },
    sandbox_config: config,
  }, { timeoutMs: 120_000 });
  await rt.StartContainer!({ container_id: ctr });
  const pid = d.child.pid!;
  await rt.ExecSync!({ container_id: ctr, cmd: ['true'], timeout: '30' });
  const fdsBefore = await fdCount(pid);
  const t0 = Date.now();
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      rt.ExecSync!({ container_id: ctr, cmd: ['sh', '-c', `echo out-${i}; echo err-${i} >&2; exit ${i % 7}`], timeout: '120' }, { timeoutMs: 180_000 }),
    ),
  );
  t.diagnostic(`${n} ExecSync at once on one container: ${Date.now() - t0} ms`);
  results.forEach((r: { stdout: Buffer; stderr: Buffer; exit_code: number }, i) => {
    assert.equal(Buffer.from(r.stdout).toString(), `out-${i}\n`);
    assert.equal(Buffer.from(r.stderr).toString(), `err-${i}\n`);
    assert.equal(r.exit_code, i % 7);
  });
  await new Promise((r) => setTimeout(r, 500));
  const fdsAfter = await fdCount(pid);
  t.diagnostic(`daemon fds: ${fdsBefore} before, ${fdsAfter} after`);
  assert.ok(fdsAfter <= fdsBefore + 2, `file descriptors grew from ${fdsBefore} to ${fdsAfter}`);
});

test('daemon health over pod lifecycles: RSS and open file descriptors after many lifecycles against after a few', { timeout: 60 * 60_000 }, async (t) => {
  const s = faultSchedule('lifecycles');
  const many = s.count(16, 200);
  const few = Math.max(4, Math.floor(many / 10));
  const d = await daemonLeavingNothing(t, dir, 'health');
  const rt = d.client.runtime;
  await d.client.image.PullImage!({ image: { image } }, { timeoutMs: 120_000 });
  const pid = d.child.pid!;
  const lifecycle = async (i: number) => {
    const config = podConfig(d, `l${i}`);
    const { pod_sandbox_id: pod } = await rt.RunPodSandbox!({ config }, { timeoutMs: 120_000 });
    const { container_id: ctr } = await rt.CreateContainer!({
      pod_sandbox_id: pod,
      config: { metadata: { name: 'main', attempt: 0 }, image: { image }, command: ['sh', '-c', 'echo hello; sleep 100000'], log_path: 'main.log' },
      sandbox_config: config,
    }, { timeoutMs: 120_000 });
    await rt.StartContainer!({ container_id: ctr });
    await rt.ExecSync!({ container_id: ctr, cmd: ['true'], timeout: '30' });
    await rt.StopPodSandbox!({ pod_sandbox_id: pod }, { timeoutMs: 120_000 });
    await rt.RemovePodSandbox!({ pod_sandbox_id: pod }, { timeoutMs: 120_000 });
  };
  const sample = async () => {
    // Let timers and sockets of the last pod settle, and the heap be collected as it would be.
    await new Promise((r) => setTimeout(r, 1_000));
    return { rss: await rssKiB(pid), fds: await fdCount(pid) };
  };
  for (let i = 0; i < few; i++) await lifecycle(i);
  const atFew = await sample();
  // Samples on the way, in the diagnostics: a leak grows with the count, a heap settles.
  const every = Math.max(1, Math.floor((many - few) / 5));
  for (let i = few; i < many; i++) {
    await lifecycle(i);
    if ((i + 1 - few) % every === 0 && i + 1 < many) {
      const at = await sample();
      t.diagnostic(`after ${i + 1} lifecycles: RSS ${(at.rss / 1024).toFixed(1)} MiB, ${at.fds} fds`);
    }
  }
  const atMany = await sample();
  t.diagnostic(`after ${few} lifecycles: RSS ${(atFew.rss / 1024).toFixed(1)} MiB, ${atFew.fds} fds; after ${many}: RSS ${(atMany.rss / 1024).toFixed(1)} MiB, ${atMany.fds} fds`);
  assert.ok(atMany.fds <= atFew.fds + 4, `open file descriptors grew from ${atFew.fds} to ${atMany.fds}`);
  // A bound, not a leak detector's zero: V8 grows its heap in steps.
  assert.ok(atMany.rss <= atFew.rss + 40 * 1024, `RSS grew by ${((atMany.rss - atFew.rss) / 1024).toFixed(1)} MiB`);
});
