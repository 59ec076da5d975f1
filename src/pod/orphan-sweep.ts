// Folders no record explains, swept when frakti starts. A record is written
// after what it names is made and removed before it goes (record-store.ts:
// meta.json last in, first out), so a frakti killed in between leaves a
// record folder without meta.json: a container's writable layer (and its
// rootfs mount in the pod's share) from a create that never finished, or
// the rest of a removal. Nothing can ask for them; they would stay for ever.
import { access, readdir, rm } from 'node:fs/promises';
import { deleteNetns } from '../network/index.js';
import { destroyVmDir } from '../vmm/index.js';
import { podNetnsName } from './pod-network.js';
import { join } from 'node:path';
import { execa } from 'execa';
import { errorMessage } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import type { PodContext } from './context.js';
import { unmountRootfs } from './rootfs-mount.js';

const log = logger('pod');
const ID_RE = /^[0-9a-f]{64}$/;

/** Record folders (under root/pods or root/containers) with no meta.json: never created, or half removed. */
async function recordless(dir: string, known: (id: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  for (const id of await readdir(dir).catch(() => [] as string[])) {
    if (!ID_RE.test(id) || known(id)) continue;
    // An unreadable meta.json is a broken record, kept for the operator; only a missing one is an orphan.
    const hasMeta = await access(join(dir, id, 'meta.json')).then(() => true, () => false);
    if (!hasMeta) out.push(id);
  }
  return out;
}

export async function sweepOrphanFolders(ctx: PodContext): Promise<void> {
  const rootDir = ctx.opts.rootDir;
  for (const id of await recordless(join(rootDir, 'containers'), (i) => ctx.containers.get(i) !== undefined)) {
    try {
      // Its rootfs may be mounted in a pod's share: unmounted before the layer under it goes.
      for (const p of ctx.pods.list()) {
        const dir = join(ctx.shareDir(p.meta.id), id);
        if (!(await access(dir).then(() => true, () => false))) continue;
        await execa('umount', ['-R', '-l', join(dir, 'mounts')], { reject: false });
        await unmountRootfs(join(dir, 'rootfs'));
        await rm(dir, { recursive: true, force: true });
      }
      await rm(join(rootDir, 'containers', id), { recursive: true, force: true });
      log.info('removed the folders of a container that was never stored', { container: id });
    } catch (err) {
      log.warn('could not remove an orphan container folder', { container: id, err: errorMessage(err) });
    }
  }
  for (const id of await recordless(join(rootDir, 'pods'), (i) => ctx.pods.get(i) !== undefined)) {
    await rm(join(rootDir, 'pods', id), { recursive: true, force: true }).catch((err) => log.warn('could not remove an orphan pod record folder', { pod: id, err: errorMessage(err) }));
  }
}

/**
 * Pod VMs no record names: pool VMs (booted ahead, not yet a pod's) of a
 * frakti that was killed. Their share folder (made first) names them; the
 * VM, its share mount and its namespace go with it. Only what this frakti's
 * state folder names is touched: other daemons' namespaces are theirs.
 */
export async function sweepUnclaimedVms(ctx: PodContext): Promise<number> {
  const podsDir = join(ctx.opts.stateDir, 'pods');
  let swept = 0;
  for (const id of await readdir(podsDir).catch(() => [] as string[])) {
    if (!ID_RE.test(id) || ctx.pods.get(id)) continue;
    try {
      await destroyVmDir(ctx.vmDir(id));
      // destroyVmDir unmounts the share its spec names; one made without a spec too.
      await execa('umount', ['-R', '-l', ctx.shareDir(id)], { reject: false });
      await rm(join(podsDir, id), { recursive: true, force: true });
      await deleteNetns(podNetnsName(id));
      swept++;
    } catch (err) {
      log.warn('could not remove a VM no pod owns', { vm: id, err: errorMessage(err) });
    }
  }
  return swept;
}
