// lib/shipped-files.ts: the checkout's lookups, the manifest, and the
// extraction the single executable does (verified, rewritten when tampered,
// safe with several processes at once).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync } from 'node:zlib';
import { SHIPPED_NAMES, buildManifest, checkoutPath, decodeAsset, ensureAsset, isSingleExecutable, shippedFile, shippedHash, type ExpectedFile } from '../../../src/lib/shipped-files.js';

const MODULE = new URL('../../../src/lib/shipped-files.js', import.meta.url).href;

function expect(data: Buffer, mode = 0o600): ExpectedFile {
  return { sha256: createHash('sha256').update(data).digest('hex'), size: data.length, mode };
}

function tempDir(t: { after(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'frakti-shipped-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test('in a checkout every shipped file is its source or build path', () => {
  assert.equal(isSingleExecutable(), false);
  for (const name of SHIPPED_NAMES) assert.equal(shippedFile(name), checkoutPath(name));
  assert.match(shippedFile('api.proto'), /\/src\/cri\/api\.proto$/);
  assert.match(shippedFile('vmlinux'), /\/build\/guest\/vmlinux$/);
  assert.match(shippedFile('frakti-vsock-relay'), /\/build\/bin\/frakti-vsock-relay$/);
  assert.ok(existsSync(shippedFile('agent.proto')));
});

test('the set hash covers every name and content, and matches the checkout', () => {
  const content = (name: string) => Buffer.from(`content of ${name}`);
  const a = buildManifest(content);
  assert.deepEqual(Object.keys(a.files).sort(), [...SHIPPED_NAMES].sort());
  assert.match(a.hash, /^[0-9a-f]{64}$/);
  assert.equal(buildManifest(content).hash, a.hash, 'stable');
  assert.notEqual(buildManifest((n) => (n === 'vmlinux' ? Buffer.from('other') : content(n))).hash, a.hash);
  assert.equal(shippedHash(), buildManifest((n) => readFileSync(checkoutPath(n))).hash);
});

test('brotli-stored assets decode to their bytes', () => {
  const data = randomBytes(1000);
  assert.deepEqual(Buffer.from(decodeAsset(brotliCompressSync(data), 'br')), data);
  assert.equal(decodeAsset(data), data);
});

test('extraction writes a 0700 folder of 0600/0700 files, and keeps a good file as it is', (t) => {
  const root = tempDir(t);
  const dir = join(root, 'assets', 'abc');
  const data = randomBytes(100_000);
  const path = ensureAsset(dir, 'vmlinux', expect(data), () => data);
  assert.deepEqual(readFileSync(path), data);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  assert.equal(statSync(join(root, 'assets')).mode & 0o777, 0o700);
  const relay = ensureAsset(dir, 'relay', expect(data, 0o700), () => data);
  assert.equal(statSync(relay).mode & 0o777, 0o700);
  const ino = statSync(path).ino;
  let asked = false;
  ensureAsset(dir, 'vmlinux', expect(data), () => ((asked = true), data));
  assert.equal(asked, false, 'a verified file is not rewritten');
  assert.equal(statSync(path).ino, ino);
});

test('a tampered, truncated, replaced or loosened file is detected and rewritten', (t) => {
  const dir = join(tempDir(t), 'assets', 'h');
  const data = randomBytes(64 * 1024);
  const exp = expect(data);
  const path = ensureAsset(dir, 'f', exp, () => data);
  const again = () => {
    ensureAsset(dir, 'f', exp, () => data);
    assert.ok(lstatSync(path).isFile());
    assert.deepEqual(readFileSync(path), data);
    assert.equal(statSync(path).mode & 0o777, 0o600);
  };
  const flipped = Buffer.from(data);
  flipped[1000] = flipped[1000]! ^ 0xff;
  writeFileSync(path, flipped); // same size, one byte changed
  again();
  truncateSync(path, 100);
  again();
  rmSync(path);
  symlinkSync('/etc/hostname', path);
  again();
  chmodSync(path, 0o666);
  chmodSync(dir, 0o755);
  again();
  assert.equal(statSync(dir).mode & 0o777, 0o700);
});

test('a wrong embedded content is refused, and leaves nothing behind', (t) => {
  const dir = join(tempDir(t), 'assets', 'h');
  const data = randomBytes(1000);
  assert.throws(() => ensureAsset(dir, 'f', expect(data), () => randomBytes(1000)), /does not match its SHA-256/);
  assert.deepEqual(readdirSync(dir), [], 'neither the file nor its temporary copy');
});

test('temporary files of a crashed extraction are removed; a live one is left alone', (t) => {
  const dir = join(tempDir(t), 'assets', 'h');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const dead = join(dir, 'vmlinux.tmp-999999999-0badf00d');
  const live = join(dir, `vmlinux.tmp-${process.pid}-0badf00d`);
  writeFileSync(dead, 'partial');
  writeFileSync(live, 'being written');
  const data = Buffer.from('x');
  ensureAsset(dir, 'other', expect(data), () => data);
  assert.equal(existsSync(dead), false);
  assert.equal(existsSync(live), true);
});

test('several processes extracting at once never show a partial file', { timeout: 120_000 }, async (t) => {
  const root = tempDir(t);
  const dir = join(root, 'assets', 'h');
  const data = randomBytes(16 * 1024 * 1024);
  const src = join(root, 'src.bin');
  writeFileSync(src, data);
  const exp = expect(data);
  // Each child extracts the file 10 times and once swaps in a tampered copy
  // (atomically, so that the reader below can tell it from a torn write):
  // the others find it and rewrite it while it writes its own.
  const script = `
    import { ensureAsset } from ${JSON.stringify(MODULE)};
    import { readFileSync, renameSync, writeFileSync } from 'node:fs';
    const exp = ${JSON.stringify(exp)};
    const data = readFileSync(${JSON.stringify(src)});
    for (let i = 0; i < 10; i++) {
      if (i === 3) try { writeFileSync(${JSON.stringify(join(root, 'x'))} + process.pid, 'tampered'); renameSync(${JSON.stringify(join(root, 'x'))} + process.pid, ${JSON.stringify(join(dir, 'f'))}); } catch {}
      ensureAsset(${JSON.stringify(dir)}, 'f', exp, () => data);
    }`;
  const children = Array.from({ length: 4 }, () => spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] }));
  t.after(() => children.forEach((c) => c.kill('SIGKILL')));
  const exits = children.map(
    (c) =>
      new Promise<string>((resolve) => {
        let err = '';
        c.stderr!.on('data', (b: Buffer) => (err += b.toString()));
        c.on('exit', (code) => resolve(code === 0 ? '' : `exit ${code}: ${err}`));
      }),
  );
  // Meanwhile whatever has the final name is either a whole file or the
  // short marker a child wrote on purpose, never a torn copy.
  let running = true;
  void Promise.all(exits).then(() => (running = false));
  let seenWhole = 0;
  while (running) {
    try {
      const got = readFileSync(join(dir, 'f'));
      if (got.length === data.length) {
        assert.ok(got.equals(data), 'a full-size file has the right bytes');
        seenWhole++;
      } else {
        assert.equal(got.toString(), 'tampered', `a partial file of ${got.length} bytes was visible`);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.deepEqual(await Promise.all(exits), ['', '', '', '']);
  ensureAsset(dir, 'f', exp, () => data);
  assert.ok(readFileSync(join(dir, 'f')).equals(data));
  assert.ok(seenWhole > 0);
});
