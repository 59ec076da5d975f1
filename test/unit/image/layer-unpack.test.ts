// Unpacking layer tars into overlayfs lower-layer form, and refusing every
// way out of the layer directory. Runs as root (ownership, device nodes,
// trusted.* xattrs); the few checks that need root are skipped otherwise.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { ContentInvalidError, ImageStoreExhaustedError, UnsafeLayerEntryError, exhaustedOr } from '../../../src/image/errors.js';
import { unpackLayer } from '../../../src/image/layer-unpack.js';
import { FIXED_MTIME, makeLayerTar, type LayerEntry } from '../../helpers/image-registry.js';
import { onTmpfs } from '../../helpers/tmpfs.js';

const isRoot = process.geteuid?.() === 0;

function xattrsOf(path: string): string {
  try {
    return execFileSync('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', path], { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .sort()
      .join('\n');
  } catch {
    return '';
  }
}

/** Every path under dir with its type, mode, size, content hash and xattrs: to prove nothing changed. */
async function snapshotTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const n of (await readdir(d)).sort()) {
      const p = join(d, n);
      const st = await lstat(p);
      let extra = '';
      if (st.isFile()) extra = (await readFile(p)).toString('base64');
      else if (st.isSymbolicLink()) extra = await readlink(p);
      out.push(`${p} ${st.mode.toString(8)} ${st.size} ${st.mtimeMs} ${extra} ${xattrsOf(p)}`);
      if (st.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return out;
}

async function unpack(entries: LayerEntry[], dest: string, scratch: string) {
  return unpackLayer(Readable.from([await makeLayerTar(entries)]), dest, { scratchDir: scratch });
}

test('a layer unpacks with types, modes, ownership, times, xattrs and overlayfs whiteouts', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'frakti-unpack-'));
  t.after(() => rm(base, { recursive: true, force: true }));
  const dest = join(base, 'layer');
  await mkdir(dest);
  const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex'); // cap_net_raw, binary
  const stats = await unpack(
    [
      { name: './', type: 'directory' },
      { name: 'implicit/parent/file', content: 'deep\n' },
      { name: 'bin/', type: 'directory', mode: 0o751, mtime: new Date('2020-05-06T07:08:09Z') },
      { name: 'bin/tool', content: 'tool', mode: 0o4755, uid: 1000, gid: 1001, pax: { 'SCHILY.xattr.security.capability': cap.toString('latin1'), 'SCHILY.xattr.user.note': 'hello' } },
      { name: 'bin/tool-link', type: 'link', linkname: 'bin/tool' },
      { name: 'bin/sh', type: 'symlink', linkname: '/bin/tool', uid: 7, gid: 8 },
      { name: 'dev/', type: 'directory' },
      { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
      { name: 'dev/fifo', type: 'fifo', mode: 0o600 },
      { name: 'gone', content: 'replaced below' },
      { name: '.wh.gone' },
      { name: 'etc/', type: 'directory' },
      { name: 'etc/.wh..wh..opq' },
      { name: 'etc/only', content: 'only this\n' },
      { name: '.wh..wh.plnk' },
      { name: 'dup', content: 'first' },
      { name: 'dup', content: 'second' },
      { name: 'was-dir/', type: 'directory' },
      { name: 'was-dir/child', content: 'x' },
      { name: 'was-dir', content: 'now a file' },
    ],
    dest,
    base,
  );
  assert.equal(stats.whiteouts, 1);
  assert.equal(await readFile(join(dest, 'implicit/parent/file'), 'utf8'), 'deep\n');
  const bin = await lstat(join(dest, 'bin'));
  assert.equal(bin.mode & 0o7777, 0o751);
  assert.equal(bin.mtime.toISOString(), '2020-05-06T07:08:09.000Z', 'directory mtime survives its children being written');
  const tool = await lstat(join(dest, 'bin/tool'));
  assert.equal(tool.mode & 0o7777, 0o4755, 'set-uid bit survives chown');
  assert.equal(tool.mtime.getTime(), FIXED_MTIME.getTime());
  const link = await lstat(join(dest, 'bin/tool-link'));
  assert.equal(link.ino, tool.ino, 'hardlink shares the inode');
  assert.equal(await readlink(join(dest, 'bin/sh')), '/bin/tool');
  assert.ok((await lstat(join(dest, 'dev/fifo'))).isFIFO());
  assert.equal(await readFile(join(dest, 'dup'), 'utf8'), 'second');
  assert.equal(await readFile(join(dest, 'was-dir'), 'utf8'), 'now a file');
  assert.deepEqual((await readdir(join(dest, 'etc'))).sort(), ['only']);
  assert.ok(!(await readdir(dest)).some((n) => n.startsWith('.wh.')), 'no whiteout file names are left');
  assert.match(xattrsOf(join(dest, 'bin/tool')), /user\.note=0x68656c6c6f/);
  if (isRoot) {
    assert.equal(tool.uid, 1000);
    assert.equal(tool.gid, 1001);
    const sh = await lstat(join(dest, 'bin/sh'));
    assert.equal(sh.uid, 7, 'symlink ownership is set without following it');
    const gone = await lstat(join(dest, 'gone'));
    assert.ok(gone.isCharacterDevice() && gone.rdev === 0, 'whiteout is a 0/0 character device');
    const nul = await lstat(join(dest, 'dev/null'));
    assert.ok(nul.isCharacterDevice());
    assert.equal(nul.rdev, (1 << 8) | 3);
    assert.match(xattrsOf(join(dest, 'etc')), /trusted\.overlay\.opaque=0x79/);
    assert.match(xattrsOf(join(dest, 'bin/tool')), new RegExp(`security\\.capability=0x${cap.toString('hex')}`), 'binary xattr value is kept byte for byte');
  }
});

test('a forged trusted.overlay xattr in a layer is dropped', { skip: !isRoot && 'needs root' }, async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'frakti-unpack-'));
  t.after(() => rm(base, { recursive: true, force: true }));
  const dest = join(base, 'layer');
  await mkdir(dest);
  await unpack([{ name: 'd/', type: 'directory', pax: { 'SCHILY.xattr.trusted.overlay.redirect': '/etc' } }], dest, base);
  assert.doesNotMatch(xattrsOf(join(dest, 'd')), /trusted/);
});

// Each of these tries to reach outside the layer directory. `O` is the absolute path of a directory outside.
const HOSTILE: { name: string; entries: (O: string) => LayerEntry[]; entry: string }[] = [
  { name: 'relative name with ..', entry: '../outside/pwned', entries: () => [{ name: '../outside/pwned', content: 'x' }] },
  { name: '.. in the middle', entry: 'a/../../outside/pwned', entries: () => [{ name: 'a/../../outside/pwned', content: 'x' }] },
  { name: 'absolute name with ..', entry: '/../outside/pwned', entries: () => [{ name: '/../outside/pwned', content: 'x' }] },
  { name: './ then ..', entry: './../outside/pwned', entries: () => [{ name: './../outside/pwned', content: 'x' }] },
  { name: 'directory name with ..', entry: 'a/../../outside/newdir/', entries: () => [{ name: 'a/../../outside/newdir/', type: 'directory' }] },
  { name: 'whiteout with ..', entry: '../outside/.wh.secret', entries: () => [{ name: '../outside/.wh.secret' }] },
  { name: 'file through an absolute symlink', entry: 'l/pwned', entries: (O) => [{ name: 'l', type: 'symlink', linkname: O }, { name: 'l/pwned', content: 'x' }] },
  { name: 'file through a relative symlink', entry: 'l/pwned', entries: () => [{ name: 'l', type: 'symlink', linkname: '../outside' }, { name: 'l/pwned', content: 'x' }] },
  { name: 'symlink chain', entry: 'b/c/pwned', entries: (O) => [{ name: 'a', type: 'symlink', linkname: O }, { name: 'b', type: 'symlink', linkname: 'a' }, { name: 'b/c/pwned', content: 'x' }] },
  { name: 'directory through a symlink', entry: 'l/newdir/', entries: (O) => [{ name: 'l', type: 'symlink', linkname: O }, { name: 'l/newdir/', type: 'directory' }] },
  { name: 'directory replaced by a symlink, then written through', entry: 'd/pwned', entries: (O) => [{ name: 'd/', type: 'directory' }, { name: 'd', type: 'symlink', linkname: O }, { name: 'd/pwned', content: 'x' }] },
  { name: 'hardlink to an absolute path', entry: 'h', entries: (O) => [{ name: 'h', type: 'link', linkname: `${O}/secret` }] },
  { name: 'hardlink with ..', entry: 'h', entries: () => [{ name: 'h', type: 'link', linkname: '../outside/secret' }] },
  { name: 'hardlink with .. after a directory', entry: 'h', entries: () => [{ name: 'd/', type: 'directory' }, { name: 'h', type: 'link', linkname: '/d/../../outside/secret' }] },
  { name: 'hardlink through a symlink', entry: 'h', entries: (O) => [{ name: 'l', type: 'symlink', linkname: O }, { name: 'h', type: 'link', linkname: 'l/secret' }] },
  { name: 'hardlink placed through a symlink', entry: 'l/h', entries: (O) => [{ name: 'f', content: 'x' }, { name: 'l', type: 'symlink', linkname: O }, { name: 'l/h', type: 'link', linkname: 'f' }] },
  { name: 'whiteout through a symlink', entry: 'l/.wh.secret', entries: (O) => [{ name: 'l', type: 'symlink', linkname: O }, { name: 'l/.wh.secret' }] },
  { name: 'opaque marker through a symlink', entry: 'l/.wh..wh..opq', entries: (O) => [{ name: 'l', type: 'symlink', linkname: O }, { name: 'l/.wh..wh..opq' }] },
  { name: 'whiteout of ..', entry: 'a/.wh...', entries: () => [{ name: 'a/', type: 'directory' }, { name: 'a/.wh...' }] },
  { name: 'device node through a symlink', entry: 'l/null', entries: (O) => [{ name: 'l', type: 'symlink', linkname: O }, { name: 'l/null', type: 'character-device', devmajor: 1, devminor: 3 }] },
  { name: 'PAX path with ..', entry: '../outside/pax-pwned', entries: () => [{ name: 'innocent', content: 'x', pax: { path: '../outside/pax-pwned' } }] },
  { name: 'long GNU/PAX name with ..', entry: `${'../'.repeat(2)}outside/${'n'.repeat(150)}`, entries: () => [{ name: `${'../'.repeat(2)}outside/${'n'.repeat(150)}`, content: 'x' }] },
];

test(`${HOSTILE.length} hostile layers are each refused, naming the entry, with nothing written outside`, async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'frakti-hostile-'));
  t.after(() => rm(base, { recursive: true, force: true }));
  const outside = join(base, 'outside');
  await mkdir(join(outside, 'sub'), { recursive: true });
  await writeFile(join(outside, 'secret'), 'secret\n');
  await symlink('secret', join(outside, 'secret-link'));
  const before = await snapshotTree(base);
  for (const h of HOSTILE) {
    const dest = join(base, 'layers', 'L');
    await mkdir(dest, { recursive: true });
    await t.test(h.name, async () => {
      await assert.rejects(unpack(h.entries(outside), dest, join(base, 'layers')), (err: unknown) => {
        assert.ok(err instanceof UnsafeLayerEntryError, `expected UnsafeLayerEntryError, got ${String(err)}`);
        assert.ok(err.message.includes(`'${h.entry}'`), `message names the entry: ${err.message}`);
        return true;
      });
    });
    await rm(join(base, 'layers'), { recursive: true, force: true });
    assert.deepEqual(await snapshotTree(base), before, `nothing outside the layer changed (${h.name})`);
    assert.deepEqual(await readdir('/').then((l) => l.filter((n) => n.startsWith('pwned'))), [], 'nothing written at /');
  }
});

test('an entry over an existing symlink replaces the symlink, never writes through it', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'frakti-unpack-'));
  t.after(() => rm(base, { recursive: true, force: true }));
  const outside = join(base, 'outside');
  await mkdir(outside);
  await writeFile(join(outside, 'secret'), 'secret\n');
  const dest = join(base, 'layer');
  await mkdir(dest);
  await unpack(
    [
      { name: 's', type: 'symlink', linkname: join(outside, 'secret') },
      { name: 's', content: 'mine' },
      { name: 't', type: 'symlink', linkname: join(outside, 'secret') },
      { name: 'u', type: 'link', linkname: 't' },
      { name: 'u', content: 'also mine' },
    ],
    dest,
    base,
  );
  assert.equal(await readFile(join(outside, 'secret'), 'utf8'), 'secret\n');
  assert.equal(await readFile(join(dest, 's'), 'utf8'), 'mine');
  assert.ok((await lstat(join(dest, 't'))).isSymbolicLink());
});

test('a truncated or corrupt tar is refused as invalid content', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'frakti-unpack-'));
  t.after(() => rm(base, { recursive: true, force: true }));
  const dest = join(base, 'layer');
  await mkdir(dest);
  const tarBuf = await makeLayerTar([{ name: 'big', content: Buffer.alloc(100_000, 1) }]);
  await assert.rejects(unpackLayer(Readable.from([tarBuf.subarray(0, 20_000)]), dest, { scratchDir: base }), (e: unknown) => e instanceof ContentInvalidError && /'big' is cut short: 19488 of 100000 bytes/.test(e.message));
  const corrupt = Buffer.from(tarBuf);
  corrupt[0] = corrupt[0]! ^ 0xff;
  await assert.rejects(unpackLayer(Readable.from([corrupt]), dest, { scratchDir: base }), (e: unknown) => e instanceof ContentInvalidError && /Invalid tar header/.test(e.message));
});

// mknod runs as a tool: its "No space left on device" must still read as
// the store's full disk, not as a node that cannot make device nodes.
test('a whiteout that finds no inode left is the full disk (ENOSPC), not MKNOD_FAILED', { skip: !isRoot && 'needs root (mount)' }, async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'frakti-unpack-'));
  t.after(() => rm(base, { recursive: true, force: true }));
  const fs = join(base, 'fs');
  // Three inodes: the tmpfs root, the layer directory, the file; none for the whiteout.
  await onTmpfs(fs, 'size=1m,nr_inodes=3', async () => {
    const dest = join(fs, 'layer');
    await mkdir(dest);
    await assert.rejects(unpack([{ name: 'file', content: 'x' }, { name: '.wh.gone' }], dest, base), (e: unknown) => {
      assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC', String(e));
      assert.match(String(e), /cannot create char node gone: .*No space left on device/);
      assert.ok(exhaustedOr(e) instanceof ImageStoreExhaustedError);
      return true;
    });
  });
});

// Absolute names (Docker-era layers, umoci's "/" entry), "./" names and ".."
// that stays inside all land inside the layer, as containerd resolves them.
// Each name below would be visible at the host's / if it escaped.
test('absolute, ./ and inner .. names are resolved inside the layer', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'frakti-unpack-'));
  t.after(() => rm(base, { recursive: true, force: true }));
  const dest = join(base, 'layer');
  await mkdir(dest);
  const stats = await unpack(
    [
      { name: '/', type: 'directory', mode: 0o700 },
      { name: '/frakti-abs/', type: 'directory', mode: 0o750 },
      { name: '/frakti-abs/file', content: 'absolute\n' },
      { name: './frakti-dot/file', content: 'dot\n' },
      { name: 'frakti-up/x/../file', content: 'inner ..\n' },
      { name: 'frakti-up/y/z/../..', type: 'directory', mode: 0o711 },
      { name: '/frakti-abs/hard', type: 'link', linkname: '/frakti-abs/file' },
      { name: 'frakti-dot/hard', type: 'link', linkname: './frakti-up/q/../file' },
      { name: '/frakti-abs/gone', content: 'whited out below' },
      { name: '/frakti-abs/.wh.gone' },
      { name: 'a/..', content: 'resolves to the root: skipped' },
    ],
    dest,
    base,
  );
  assert.equal(stats.whiteouts, 1);
  assert.equal(await readFile(join(dest, 'frakti-abs/file'), 'utf8'), 'absolute\n');
  assert.equal(await readFile(join(dest, 'frakti-dot/file'), 'utf8'), 'dot\n');
  assert.equal(await readFile(join(dest, 'frakti-up/file'), 'utf8'), 'inner ..\n');
  assert.deepEqual(await readdir(join(dest, 'frakti-up')), ['file'], '.. is resolved by name: x, y and z are never created');
  assert.equal((await lstat(join(dest, 'frakti-abs'))).mode & 0o7777, 0o750);
  assert.equal((await lstat(join(dest, 'frakti-up'))).mode & 0o7777, 0o711);
  assert.notEqual((await lstat(dest)).mode & 0o7777, 0o700, 'the root entry does not change the layer directory');
  assert.equal((await lstat(join(dest, 'frakti-abs/hard'))).ino, (await lstat(join(dest, 'frakti-abs/file'))).ino);
  assert.equal((await lstat(join(dest, 'frakti-dot/hard'))).ino, (await lstat(join(dest, 'frakti-up/file'))).ino);
  assert.deepEqual((await readdir(dest)).sort(), ['frakti-abs', 'frakti-dot', 'frakti-up']);
  assert.deepEqual((await readdir('/')).filter((n) => n.startsWith('frakti-')), [], 'nothing written at the host root');
});
