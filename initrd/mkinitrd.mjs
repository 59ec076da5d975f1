#!/usr/bin/env node
// Writes a gzip-compressed newc cpio for the guest, reproducibly: fixed
// order, inode numbers, owner 0:0 and mtime 0, so the same inputs give the
// same bytes. Plain Node (no dependencies, no root: the /dev/console node is
// written into the archive, never created on the host).
//
//   node initrd/mkinitrd.mjs --out FILE --init BINARY [--busybox BINARY]
//
// Layout: /init, /dev/console (c 5:1, so the kernel gives init a console),
// the mount points the agent uses, and with --busybox /bin/busybox plus a
// few applet links for debugging.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const APPLETS = ['sh', 'ls', 'cat', 'mount', 'ps', 'ip'];
const DIRS = ['bin', 'dev', 'dev/pts', 'proc', 'sys', 'run', 'tmp', 'sbin', 'etc'];

function parseArgs(argv) {
  const opts = {};
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i];
    const value = argv[i + 1];
    if (!['--out', '--init', '--busybox'].includes(key) || value === undefined) {
      throw new Error(`usage: mkinitrd.mjs --out FILE --init BINARY [--busybox BINARY] (bad argument ${key})`);
    }
    opts[key.slice(2)] = value;
  }
  if (!opts.out || !opts.init) throw new Error('mkinitrd.mjs: --out and --init are required');
  return opts;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function header(fields) {
  const hex = (n) => n.toString(16).padStart(8, '0');
  return (
    '070701' +
    [fields.ino, fields.mode, 0, 0, fields.nlink, 0, fields.size, 0, 0, fields.rmajor ?? 0, fields.rminor ?? 0, fields.namesize, 0]
      .map(hex)
      .join('')
  );
}

function pad4(n) {
  return (4 - (n % 4)) % 4;
}

function entry(ino, name, mode, data, extra = {}) {
  const nameBuf = Buffer.from(name + '\0');
  const head = Buffer.from(
    header({ ino, mode, nlink: (mode & 0o170000) === S_IFDIR ? 2 : 1, size: data.length, namesize: nameBuf.length, ...extra }),
    'ascii',
  );
  return Buffer.concat([
    head,
    nameBuf,
    Buffer.alloc(pad4(head.length + nameBuf.length)),
    data,
    Buffer.alloc(pad4(data.length)),
  ]);
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const items = [];
  for (const d of DIRS) items.push({ name: d, mode: S_IFDIR | 0o755, data: Buffer.alloc(0) });
  items.push({ name: 'dev/console', mode: S_IFCHR | 0o600, data: Buffer.alloc(0), extra: { rmajor: 5, rminor: 1 } });
  items.push({ name: 'init', mode: S_IFREG | 0o755, data: readFileSync(opts.init) });
  if (opts.busybox) {
    items.push({ name: 'bin/busybox', mode: S_IFREG | 0o755, data: readFileSync(opts.busybox) });
    for (const a of APPLETS) items.push({ name: `bin/${a}`, mode: S_IFLNK | 0o777, data: Buffer.from('busybox') });
  }
  // Parents before children: sort by path; directories sort before their contents.
  items.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const parts = items.map((it, i) => entry(i + 1, it.name, it.mode, it.data, it.extra));
  parts.push(entry(0, 'TRAILER!!!', 0, Buffer.alloc(0), { nlink: 1 }));
  const cpio = Buffer.concat(parts);
  const tmp = `${opts.out}.tmp`;
  writeFileSync(tmp, gzipSync(cpio, { level: 9 }));
  renameSync(tmp, opts.out);
}

try {
  main();
} catch (err) {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
}
