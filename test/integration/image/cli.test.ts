// `frakti image pull|ls|rm|import` as a user runs them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { frakti } from '../../helpers/cli-run.js';
import { buildBusyboxImage, makeLayerTar, pushImage, sha256, startRegistry, type BuiltImage, type Registry } from '../../helpers/image-registry.js';

const run = promisify(execFile);
let reg: Registry;
let work: string;
let busybox: BuiltImage;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'frakti-image-cli-'));
  reg = await startRegistry();
  busybox = await buildBusyboxImage(work);
  await pushImage(busybox.layout, `${reg.host}/test/busybox:latest`);
});

after(async () => {
  await reg?.stop();
  await rm(work, { recursive: true, force: true });
});

/** A `docker save` archive: manifest.json, config, uncompressed layer tars (the second a symlink to the first's, as docker writes duplicates). */
async function dockerSaveArchive(): Promise<{ path: string; configDigest: string }> {
  const dir = join(work, 'save');
  const layer = await makeLayerTar([{ name: 'hello', content: 'saved\n' }]);
  const layer2 = await makeLayerTar([{ name: 'second', content: '2\n' }]);
  const diffIds = [sha256(layer), sha256(layer2), sha256(layer)];
  const config = Buffer.from(JSON.stringify({ os: 'linux', architecture: 'amd64', config: { Cmd: ['/hello'], User: 'nobody' }, rootfs: { type: 'layers', diff_ids: diffIds } }));
  const cfgName = `${sha256(config).slice(7)}.json`;
  await mkdir(join(dir, 'l1'), { recursive: true });
  await mkdir(join(dir, 'l2'));
  await mkdir(join(dir, 'l3'));
  await writeFile(join(dir, 'l1/layer.tar'), layer);
  await writeFile(join(dir, 'l2/layer.tar'), layer2);
  await symlink('../l1/layer.tar', join(dir, 'l3/layer.tar'));
  await writeFile(join(dir, cfgName), config);
  await writeFile(join(dir, 'manifest.json'), JSON.stringify([{ Config: cfgName, RepoTags: ['test/saved:v1'], Layers: ['l1/layer.tar', 'l2/layer.tar', 'l3/layer.tar'] }]));
  const path = join(work, 'saved.tar');
  await run('tar', ['-C', dir, '-cf', path, '.']);
  return { path, configDigest: sha256(config) };
}

test('pull, ls, import (docker save and OCI layout), rm', async () => {
  const root = join(work, 'root');
  const pull = await frakti(['image', 'pull', '--root', root, `${reg.host}/test/busybox`]);
  assert.equal(pull.exitCode, 0, pull.stderr);
  assert.equal(pull.stdout.trim(), busybox.configDigest);

  const saved = await dockerSaveArchive();
  const imp = await frakti(['image', 'import', '--root', root, saved.path]);
  assert.equal(imp.exitCode, 0, imp.stderr);
  assert.match(imp.stdout, new RegExp(`Loaded: docker.io/test/saved:v1 \\(${saved.configDigest}\\)`));

  const ociTar = join(work, 'oci.tar.gz');
  await run('tar', ['-C', busybox.layout, '-czf', ociTar, '.']);
  const imp2 = await frakti(['image', 'import', '--root', root, '--tag', 'local/oci:1', ociTar]);
  assert.equal(imp2.exitCode, 0, imp2.stderr);
  assert.match(imp2.stdout, /Loaded: docker.io\/local\/oci:1/);

  const ls = await frakti(['image', 'ls', '--root', root]);
  assert.equal(ls.exitCode, 0, ls.stderr);
  const lines = ls.stdout.trim().split('\n');
  assert.match(lines[0]!, /^IMAGE\s+TAG\s+IMAGE ID\s+SIZE$/);
  assert.ok(lines.some((l) => new RegExp(`^${reg.host}/test/busybox\\s+latest\\s+${busybox.configDigest.slice(7, 20)}\\s`).test(l)), ls.stdout);
  assert.ok(lines.some((l) => /^docker.io\/test\/saved\s+v1\s/.test(l)), ls.stdout);
  assert.ok(lines.some((l) => /^docker.io\/local\/oci\s+1\s/.test(l)), ls.stdout);
  const q = await frakti(['image', 'ls', '-q', '--root', root]);
  assert.equal(q.stdout.trim().split('\n').length, 2, 'busybox pulled and imported is one image');

  const rmOut = await frakti(['image', 'rm', '--root', root, 'test/saved:v1', `${reg.host}/test/busybox`]);
  assert.equal(rmOut.exitCode, 0, rmOut.stderr);
  assert.match(rmOut.stdout, new RegExp(`Deleted: ${saved.configDigest}`));
  const missing = await frakti(['image', 'rm', '--root', root, 'test/saved:v1']);
  assert.equal(missing.exitCode, 1);
  assert.match(missing.stderr, /no such image: test\/saved:v1/);
  assert.equal((await frakti(['image', 'ls', '-q', '--root', root])).stdout.trim(), '');
});

test('wrong calls exit 2 with a usage message; failures exit 1', async () => {
  for (const args of [['image'], ['image', 'bogus'], ['image', 'pull'], ['image', 'ls', '--nope'], ['image', 'import', '/nonexistent.tar'], ['image', 'ls', '--root', 'relative']]) {
    const r = await frakti(args);
    assert.equal(r.exitCode, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^frakti: /);
  }
  const bad = await frakti(['image', 'pull', '--root', join(work, 'r2'), 'Not_A_Ref']);
  assert.equal(bad.exitCode, 1);
  assert.match(bad.stderr, /^frakti: invalid image reference 'Not_A_Ref'/);
  const help = await frakti(['image', '--help']);
  assert.equal(help.exitCode, 0);
  assert.match(help.stdout, /pull REF/);
});
