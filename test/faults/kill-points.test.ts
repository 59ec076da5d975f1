// frakti killed (SIGKILL) in the middle of RunPodSandbox, CreateContainer,
// StartContainer, StopPodSandbox, RemovePodSandbox, PullImage and
// RemoveImage, at a fail point (FRAKTI_FAIL_POINT: after a resource is
// acquired, a record written, a teardown step done) or after a random time
// into the call. A new frakti then gets what kubelet does after a restart:
// it lists pods and containers, removes what is not ready, starts what was
// created, and retries the call it lost. Every pod must end fully running or
// fully removed, a container's log must keep every line (a replay after a
// kill may repeat a few), an image must be
// listed only when it runs; once everything is removed nothing may be left.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { busyboxFixture } from '../helpers/busybox-fixture.js';
import { startDaemon, type RunningDaemon } from '../helpers/cri-client.js';
import { fraktiNetns } from '../helpers/e2e-daemon.js';
import { killLeftovers, mountsUnder } from '../helpers/vmm-leaks.js';
import { auditLeaks, idsInLogs, nodeBaseline, type NodeBaseline } from './leak-audit.js';
import { faultSchedule } from './schedule.js';

const OPS = ['RunPodSandbox', 'CreateContainer', 'StartContainer', 'StopPodSandbox', 'RemovePodSandbox', 'PullImage', 'RemoveImage'] as const;
type Op = (typeof OPS)[number];

/** About how long each call takes here (TCG): a timed kill lands within it. */
const CALL_MS: Record<Op, number> = { RunPodSandbox: 2500, CreateContainer: 700, StartContainer: 300, StopPodSandbox: 2500, RemovePodSandbox: 2500, PullImage: 600, RemoveImage: 100 };
/** Fail points one call passes (FRAKTI_FAIL_POINT_TRACE=1 prints them); the image calls are killed by time. */
const POINTS: Record<Op, number> = { RunPodSandbox: 15, CreateContainer: 9, StartContainer: 2, StopPodSandbox: 4, RemovePodSandbox: 7, PullImage: 0, RemoveImage: 0 };

const LOGGER = ['sh', '-c', 'i=0; while true; do echo "line $i"; i=$((i+1)); sleep 0.05; done'];

let dir: string;
let image: string;
let base: NodeBaseline;

busyboxFixture('frakti-faults-', (f) => {
  ({ dir, image } = f);
});

before(async () => {
  base = await nodeBaseline();
});

interface Tally {
  lifecycles: number;
  kills: Map<string, number>;
  callsFinishedFirst: number;
  repeatedLines: number;
}

function podConfig(name: string, logDir: string) {
  return {
    metadata: { name, uid: `uid-${name}`, namespace: 'faults', attempt: 0 },
    hostname: name,
    log_directory: logDir,
    linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
  };
}

const loggerConfig = () => ({ metadata: { name: 'logger', attempt: 0 }, image: { image }, command: LOGGER, log_path: 'logger/0.log' });

/** The numbers the logger wrote, in the order its CRI log file holds them. */
async function loggedNumbers(logDir: string): Promise<number[]> {
  const text = await readFile(join(logDir, 'logger/0.log'), 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map((l) => Number(/ line (\d+)$/.exec(l)?.[1] ?? NaN));
}

/**
 * Every line the logger wrote is in the log, in order. Delivery is at least
 * once: a frakti killed between writing output to the log and telling the
 * agent so gets that output again after its restart, so a replay may repeat
 * the lines just before the kill. Returns how many lines were repeated.
 */
function assertNoLostLine(nums: number[], what: string): number {
  assert.ok(nums.length > 0, `${what}: the log is empty`);
  let next = 0;
  let repeated = 0;
  for (const [i, n] of nums.entries()) {
    assert.ok(Number.isInteger(n), `${what}: line ${i} of the log is not the logger's`);
    if (n === next) next++;
    else if (n < next) repeated++;
    else assert.fail(`${what}: line ${i} of the log is "line ${n}", "line ${next}" is missing`);
  }
  return repeated;
}

test('frakti killed at fail points and random times of each call: kubelet\'s replay converges, no line lost, nothing leaked', { timeout: 60 * 60_000 }, async (t) => {
  const s = faultSchedule('kill-points');
  const total = s.count(10, 120);
  const caseDir = join(dir, 'node');
  await mkdir(caseDir, { recursive: true });
  let d: RunningDaemon | undefined;
  // Every id a daemon of this case logged: whatever else is on the node is another test's.
  const ownIds = new Set<string>();
  const start = async (env: Record<string, string> = {}) => {
    if (d) for (const id of idsInLogs(d.stderr())) ownIds.add(id);
    d = await startDaemon({ dir: caseDir, env: { ...process.env, ...env } as Record<string, string> });
    return d;
  };
  t.after(async () => {
    // The last daemon's cleanup takes the test network away (its bridge, and
    // any NAT rule a cut CNI DEL left: the lifecycles' own audits report them).
    await d?.cleanup().catch(() => {});
    await killLeftovers(caseDir);
    for (const m of (await mountsUnder(caseDir)).reverse()) await execa('umount', ['-l', m], { reject: false });
    if (d) for (const id of idsInLogs(d.stderr())) ownIds.add(id);
    const own = new Set([...ownIds].map((id) => `frakti-${id.slice(0, 16)}`));
    for (const n of await fraktiNetns()) if (!base.netns.has(n) && own.has(n)) await execa('ip', ['netns', 'delete', n], { reject: false });
  });
  const tally: Tally = { lifecycles: 0, kills: new Map(), callsFinishedFirst: 0, repeatedLines: 0 };

  for (let i = 0; i < total; i++) {
    const op = s.pick(OPS);
    const byPoint = s.random() < 0.6 && POINTS[op] > 0;
    const point = 1 + s.int(Math.max(1, POINTS[op]));
    const delay = Math.floor(s.random() * CALL_MS[op]);
    const where = `lifecycle ${i} (seed ${s.seed}): ${op}, ${byPoint ? `fail point #${point}` : `kill after ${delay} ms`}`;
    const name = `p${i}`;
    const logDir = join(caseDir, 'logs', name);
    const config = podConfig(name, logDir);

    // What the call needs, made by a frakti without faults, which then stops (SIGTERM keeps pods running).
    let c = await start();
    const images = async () => (await c.client.image.ListImages!({})).images as { id: string; repo_tags: string[] }[];
    const hasImage = async () => (await images()).some((im) => im.repo_tags.includes(image));
    if (op === 'PullImage') {
      if (await hasImage()) await c.client.image.RemoveImage!({ image: { image } });
    } else if (!(await hasImage())) await c.client.image.PullImage!({ image: { image } }, { timeoutMs: 120_000 });
    let pod = '';
    let ctr = '';
    if (['CreateContainer', 'StartContainer', 'StopPodSandbox', 'RemovePodSandbox'].includes(op)) {
      pod = (await c.client.runtime.RunPodSandbox!({ config }, { timeoutMs: 120_000 })).pod_sandbox_id;
    }
    if (['StartContainer', 'StopPodSandbox', 'RemovePodSandbox'].includes(op)) {
      ctr = (await c.client.runtime.CreateContainer!({ pod_sandbox_id: pod, config: loggerConfig(), sandbox_config: config }, { timeoutMs: 120_000 })).container_id;
    }
    if (['StopPodSandbox', 'RemovePodSandbox'].includes(op)) {
      await c.client.runtime.StartContainer!({ container_id: ctr });
      await new Promise((r) => setTimeout(r, 300));
    }

    // The call, and frakti killed in it.
    if (byPoint) {
      await c.stop();
      c = await start({ FRAKTI_FAIL_POINT: String(point) });
    }
    const rt = c.client.runtime;
    const call: Record<Op, () => Promise<unknown>> = {
      RunPodSandbox: () => rt.RunPodSandbox!({ config }, { timeoutMs: 120_000 }),
      CreateContainer: () => rt.CreateContainer!({ pod_sandbox_id: pod, config: loggerConfig(), sandbox_config: config }, { timeoutMs: 120_000 }),
      StartContainer: () => rt.StartContainer!({ container_id: ctr }),
      StopPodSandbox: () => rt.StopPodSandbox!({ pod_sandbox_id: pod }, { timeoutMs: 120_000 }),
      RemovePodSandbox: () => rt.RemovePodSandbox!({ pod_sandbox_id: pod }, { timeoutMs: 120_000 }),
      PullImage: () => c.client.image.PullImage!({ image: { image } }, { timeoutMs: 120_000 }),
      RemoveImage: () => c.client.image.RemoveImage!({ image: { image } }),
    };
    const timer = byPoint ? undefined : setTimeout(() => c.kill('SIGKILL'), delay);
    const outcome = await call[op]().then(
      () => 'done',
      (err: Error) => err.message,
    );
    clearTimeout(timer);
    const killedAt = /fail point #\d+ "(.*)": killed/.exec(c.stderr())?.[1];
    await new Promise((r) => setTimeout(r, 100));
    const killedInCall = outcome !== 'done';
    if (killedInCall) tally.kills.set(`${op} @ ${killedAt ?? 'timed'}`, (tally.kills.get(`${op} @ ${killedAt ?? 'timed'}`) ?? 0) + 1);
    else tally.callsFinishedFirst++;
    c.kill('SIGKILL');
    await c.stop();

    // kubelet after the restart.
    c = await start();
    const r = c.client.runtime;
    const ctx = `${where}; the call ${killedInCall ? `was killed${killedAt ? ` at "${killedAt}"` : ''}: ${outcome.slice(0, 200)}` : 'finished first'}`;
    for (const p of (await r.ListPodSandbox!({})).items as { id: string; state: string }[]) {
      if (p.state !== 'SANDBOX_READY') {
        await r.StopPodSandbox!({ pod_sandbox_id: p.id }, { timeoutMs: 120_000 });
        await r.RemovePodSandbox!({ pod_sandbox_id: p.id }, { timeoutMs: 120_000 });
        continue;
      }
      for (const k of (await r.ListContainers!({ filter: { pod_sandbox_id: p.id } })).containers as { id: string; state: string }[]) {
        if (k.state === 'CONTAINER_CREATED') await r.StartContainer!({ container_id: k.id });
        else if (k.state === 'CONTAINER_EXITED') await r.RemoveContainer!({ container_id: k.id }, { timeoutMs: 120_000 });
      }
    }
    // Every pod left is fully running: its VM answers, its containers run.
    const ready = (await r.ListPodSandbox!({})).items as { id: string }[];
    for (const p of ready) {
      for (const k of (await r.ListContainers!({ filter: { pod_sandbox_id: p.id } })).containers as { id: string; state: string }[]) {
        assert.equal(k.state, 'CONTAINER_RUNNING', `${ctx}: container ${k.id} after the replay`);
        const e = await r.ExecSync!({ container_id: k.id, cmd: ['true'], timeout: '30' });
        assert.equal(e.exit_code, 0, `${ctx}: exec in a running container`);
      }
    }
    // The call that was lost, retried as kubelet would.
    const livePod = ready[0]?.id;
    assert.ok(ready.length <= 1, `${ctx}: ${ready.length} pods ready, at most one was asked for`);
    if (op === 'RunPodSandbox' && !livePod) await r.RunPodSandbox!({ config }, { timeoutMs: 120_000 });
    if (op === 'CreateContainer' || op === 'StartContainer') {
      const podNow = livePod ?? (await r.RunPodSandbox!({ config }, { timeoutMs: 120_000 })).pod_sandbox_id;
      const ctrs = (await r.ListContainers!({ filter: { pod_sandbox_id: podNow } })).containers as unknown[];
      if (ctrs.length === 0) {
        const { container_id: again } = await r.CreateContainer!({ pod_sandbox_id: podNow, config: loggerConfig(), sandbox_config: config }, { timeoutMs: 120_000 });
        await r.StartContainer!({ container_id: again });
      }
    }
    if (op === 'StopPodSandbox' || op === 'RemovePodSandbox') {
      if (livePod) {
        await r.StopPodSandbox!({ pod_sandbox_id: livePod }, { timeoutMs: 120_000 });
      }
      // The logger ran through the kill, the restart and the stop: no line lost.
      tally.repeatedLines += assertNoLostLine(await loggedNumbers(logDir), ctx);
    }
    if (op === 'PullImage' || op === 'RemoveImage') {
      if (await hasImage()) {
        // Listed means runnable.
        const p = (await r.RunPodSandbox!({ config }, { timeoutMs: 120_000 })).pod_sandbox_id;
        const { container_id: k } = await r.CreateContainer!({ pod_sandbox_id: p, config: loggerConfig(), sandbox_config: config }, { timeoutMs: 120_000 });
        await r.StartContainer!({ container_id: k });
        const e = await r.ExecSync!({ container_id: k, cmd: ['true'], timeout: '30' });
        assert.equal(e.exit_code, 0, `${ctx}: a listed image runs`);
        if (op === 'RemoveImage') {
          await r.RemovePodSandbox!({ pod_sandbox_id: p }, { timeoutMs: 120_000 });
          await c.client.image.RemoveImage!({ image: { image } });
        }
      } else if (op === 'PullImage') await c.client.image.PullImage!({ image: { image } }, { timeoutMs: 120_000 });
      assert.equal(await hasImage(), op === 'PullImage', `${ctx}: the retried call took effect`);
    }

    // Everything removed: nothing may be left.
    for (const p of (await r.ListPodSandbox!({})).items as { id: string }[]) await r.RemovePodSandbox!({ pod_sandbox_id: p.id }, { timeoutMs: 120_000 });
    assert.deepEqual((await r.ListContainers!({})).containers, [], `${ctx}: containers left after every pod was removed`);
    for (const id of idsInLogs(c.stderr())) ownIds.add(id);
    assert.deepEqual(await auditLeaks(c, base, ownIds), [], `${ctx}: leaked`);
    await c.stop();
    await rm(logDir, { recursive: true, force: true });
    tally.lifecycles++;
  }
  t.diagnostic(`lifecycles ${tally.lifecycles}; calls that finished before the kill ${tally.callsFinishedFirst}; log lines lost 0, repeated by a replay ${tally.repeatedLines}`);
  for (const [k, n] of [...tally.kills].sort()) t.diagnostic(`killed in ${k}: ${n}`);
});
