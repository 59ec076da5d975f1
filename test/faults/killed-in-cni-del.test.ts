// frakti SIGKILLed while the bridge plugin tears a pod's network down. The
// plugin deletes the pod's veth first and learns from it which NAT rules to
// delete, so a DEL cut between the two leaves rules no retry can find (a
// random kill in kill-points.test.ts once landed there). The plugin must be
// let finish after frakti is gone, and the restarted frakti's own DEL must
// wait for it. Here the kill lands there every time: an `iptables` in front
// of the real one holds the plugin's first NAT deletion for 2 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { access, chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { natRulesNaming } from '../helpers/cni-leftovers.js';
import { startDaemon, waitFor, type RunningDaemon } from '../helpers/cri-client.js';
import { fraktiNetns } from '../helpers/e2e-daemon.js';
import { killLeftovers, mountsUnder } from '../helpers/vmm-leaks.js';
import { auditLeaks, idsInLogs, nodeBaseline } from './leak-audit.js';

test('frakti killed while the bridge plugin deletes a pod\'s NAT rules: the plugin finishes, the restarted frakti\'s replay leaves nothing', { timeout: 10 * 60_000 }, async (t) => {
  const base = await nodeBaseline();
  const dir = await mkdtemp(join(tmpdir(), 'frakti-cni-del-'));
  const daemons: RunningDaemon[] = [];
  t.after(async () => {
    for (const d of [...daemons].reverse()) {
      const pods = (await d.client.runtime.ListPodSandbox!({}, { timeoutMs: 10_000 }).catch(() => ({ items: [] }))).items as { id: string }[];
      for (const p of pods) await d.client.runtime.RemovePodSandbox!({ pod_sandbox_id: p.id }, { timeoutMs: 60_000 }).catch(() => {});
    }
    // The last cleanup takes the test network away and fails on NAT rules left.
    let err: unknown;
    for (const d of daemons) await d.cleanup().catch((e: unknown) => (err ??= e));
    await killLeftovers(dir);
    for (const m of (await mountsUnder(dir)).reverse()) await execa('umount', ['-l', m], { reject: false });
    const own = new Set(daemons.flatMap((d) => [...idsInLogs(d.stderr())].map((id) => `frakti-${id.slice(0, 16)}`)));
    for (const n of await fraktiNetns()) if (!base.netns.has(n) && own.has(n)) await execa('ip', ['netns', 'delete', n], { reject: false });
    await rm(dir, { recursive: true, force: true });
    if (err) throw err;
  });

  const bin = join(dir, 'bin');
  const held = join(dir, 'nat-deletion-held');
  await mkdir(bin);
  const realIptables = (await execa('sh', ['-c', 'command -v iptables'])).stdout.trim();
  await writeFile(join(bin, 'iptables'), [
    '#!/bin/sh',
    'if [ -n "$FRAKTI_TEST_HOLD_NAT_DEL" ]; then',
    '  case " $* " in *" -D POSTROUTING "*) : > "$FRAKTI_TEST_HOLD_NAT_DEL"; sleep 2 ;; esac',
    'fi',
    `exec ${realIptables} "$@"`,
    '',
  ].join('\n'));
  await chmod(join(bin, 'iptables'), 0o755);
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` } as Record<string, string>;

  const first = await startDaemon({ dir, env: { ...env, FRAKTI_TEST_HOLD_NAT_DEL: held } });
  daemons.push(first);
  const network = (JSON.parse(await readFile(join(dir, 'cni', '10-test.conflist'), 'utf8')) as { name: string }).name;
  const config = {
    metadata: { name: 'cut', uid: 'uid-cut', namespace: 'faults', attempt: 0 },
    hostname: 'cut',
    log_directory: join(dir, 'logs'),
    linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
  };
  const { pod_sandbox_id: pod } = await first.client.runtime.RunPodSandbox!({ config }, { timeoutMs: 120_000 });
  assert.ok((await natRulesNaming(network)).length > 0, 'the pod has NAT rules (ipMasq)');

  // StopPodSandbox, and frakti killed while the plugin's NAT deletion is held.
  const stopping = first.client.runtime.StopPodSandbox!({ pod_sandbox_id: pod }, { timeoutMs: 120_000 }).then(() => 'done', (e: Error) => e.message);
  await waitFor('the bridge plugin to delete the pod\'s NAT rules', () => access(held).then(() => true), 60_000);
  first.kill('SIGKILL');
  assert.match(await stopping, /UNAVAILABLE/, 'the call was cut by the kill');
  await first.stop();

  // kubelet after the restart: the pod is not ready; it is stopped and removed.
  const second = await startDaemon({ dir, env });
  daemons.push(second);
  const rt = second.client.runtime;
  const pods = (await rt.ListPodSandbox!({})).items as { id: string; state: string }[];
  assert.deepEqual(pods.map((p) => [p.id, p.state]), [[pod, 'SANDBOX_NOTREADY']]);
  await rt.StopPodSandbox!({ pod_sandbox_id: pod }, { timeoutMs: 120_000 });
  await rt.RemovePodSandbox!({ pod_sandbox_id: pod }, { timeoutMs: 120_000 });

  assert.deepEqual(await natRulesNaming(network), [], 'no NAT rule of the pod is left');
  const ids = new Set([...idsInLogs(first.stderr()), ...idsInLogs(second.stderr())]);
  assert.deepEqual(await auditLeaks(second, base, ids), [], 'nothing else of the pod is left');
});
