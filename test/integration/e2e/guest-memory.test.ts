// Guest RAM a pod frees goes back to the host (free page reporting): host
// memory follows what the pod uses now, not the most it ever touched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { busyboxFixture } from '../../helpers/busybox-fixture.js';
import { waitFor } from '../../helpers/cri-client.js';
import { daemonLeavingNothing, podWithContainer } from '../../helpers/e2e-daemon.js';
import { vmProcessesUnder } from '../../helpers/vmm-leaks.js';

let dir: string;
let image: string;

busyboxFixture('frakti-guestmem-', (f) => {
  ({ dir, image } = f);
});

const MiB = 1024 * 1024;

/** Host memory holding the guest's RAM: the resident part of QEMU's memfd mapping. */
async function guestRamResident(pid: number): Promise<number> {
  let inRam = false;
  let kib = 0;
  for (const line of (await readFile(`/proc/${pid}/smaps`, 'utf8')).split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inRam = line.includes('/memfd:memory-backend-memfd');
    else if (inRam && line.startsWith('Rss:')) kib += Number(/(\d+)/.exec(line)![1]);
  }
  return kib * 1024;
}

test('guest RAM a container fills and frees goes back to the host', { timeout: 5 * 60_000 }, async (t) => {
  const d = await daemonLeavingNothing(t, dir, 'guestmem', ['--vm-pool', '0']);
  const rt = d.client.runtime;
  await d.client.image.PullImage!({ image: { image } }, { timeoutMs: 120_000 });
  const { ctr: c } = await podWithContainer(d, image, 'mem', 'guestmem');
  const exec = async (script: string) => {
    const r = await rt.ExecSync!({ container_id: c, cmd: ['sh', '-c', script], timeout: '60' });
    assert.equal(r.exit_code, 0, Buffer.from(r.stderr).toString());
  };

  const qemu = (await vmProcessesUnder(d.state)).filter((p) => p.cmd.includes('qemu-system'));
  assert.equal(qemu.length, 1, 'one pod, one QEMU');
  const pid = qemu[0]!.pid;

  // /dev/shm is tmpfs in the guest: a file there is guest RAM.
  const before = await guestRamResident(pid);
  await exec('dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 2>/dev/null');
  const filled = await guestRamResident(pid);
  assert.ok(filled - before >= 36 * MiB, `the host holds the 40 MiB the guest wrote (${((filled - before) / MiB).toFixed(1)} MiB more)`);

  await exec('rm /dev/shm/fill');
  // The guest reports pages that stayed free for 2 s; the host drops them.
  let now = filled;
  await waitFor('the freed RAM back on the host', async () => (now = await guestRamResident(pid)) <= before + 8 * MiB, 30_000, 250).catch((e: Error) => {
    throw new Error(`${e.message}: ${(before / MiB).toFixed(1)} MiB before, ${(filled / MiB).toFixed(1)} filled, ${(now / MiB).toFixed(1)} after`);
  });
});
