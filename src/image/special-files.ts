// What Node cannot do itself: mknod (device nodes, FIFOs and overlayfs
// whiteouts, which are character devices 0/0) and setting xattrs (overlayfs
// opaque directories, file capabilities). Node has no mknod(2) or
// setxattr(2), so these run the coreutils `mknod` and attr's `setfattr`
// (batched: one setfattr --restore per layer). Paths are relative to `cwd`
// (the layer directory) and were checked by the unpacker: no `..`, no symlink
// on the way.
import { execFile } from 'node:child_process';
import { writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ImageError } from './errors.js';

const run = promisify(execFile);
const TOOL_TIMEOUT_MS = 60_000;

export type NodeKind = 'char' | 'block' | 'fifo';

/**
 * A tool that failed for want of room, as an errno-coded error (the store's
 * full disk: RESOURCE_EXHAUSTED, not a node that lacks a feature); else undefined.
 */
function roomError(what: string, stderr: string, path: string): NodeJS.ErrnoException | undefined {
  const code = /No space left on device/.test(stderr) ? 'ENOSPC' : /Disk quota exceeded/.test(stderr) ? 'EDQUOT' : undefined;
  return code ? Object.assign(new Error(`${code}: ${what}: ${stderr}`), { code, path }) : undefined;
}

export async function mknod(cwd: string, relPath: string, kind: NodeKind, major = 0, minor = 0): Promise<void> {
  const args = kind === 'fifo' ? ['--', `./${relPath}`, 'p'] : ['--', `./${relPath}`, kind === 'char' ? 'c' : 'b', String(major), String(minor)];
  try {
    await run('mknod', args, { cwd, timeout: TOOL_TIMEOUT_MS });
  } catch (err) {
    const why = String((err as { stderr?: string }).stderr ?? err).trim();
    throw roomError(`cannot create ${kind} node ${relPath}`, why, relPath) ?? new ImageError('MKNOD_FAILED', `cannot create ${kind} node ${relPath}: ${why}`, { path: relPath });
  }
}

/** getfattr's dump escaping: octal for backslash, newline and anything unprintable. */
function escapePath(p: string): string {
  let out = '';
  for (const b of Buffer.from(p, 'utf8')) {
    out += b === 0x5c || b === 0x0a || b === 0x0d || b < 0x20 || b >= 0x7f || b === 0x3d || b === 0x22 ? `\\${b.toString(8).padStart(3, '0')}` : String.fromCharCode(b);
  }
  return out;
}

export interface XattrOp {
  path: string;
  name: string;
  value: Buffer;
}

/** Sets many xattrs with one `setfattr -h --restore`; symlinks are not followed. */
export async function setXattrs(cwd: string, ops: XattrOp[], scratchDir: string): Promise<void> {
  if (ops.length === 0) return;
  const byPath = new Map<string, XattrOp[]>();
  for (const op of ops) byPath.set(op.path, [...(byPath.get(op.path) ?? []), op]);
  let dump = '';
  for (const [path, list] of byPath) {
    dump += `# file: ${escapePath(`./${path}`)}\n`;
    for (const op of list) dump += `${op.name}=0x${op.value.toString('hex')}\n`;
    dump += '\n';
  }
  const file = join(scratchDir, `.xattrs-${process.pid}-${Math.random().toString(36).slice(2)}`);
  await writeFile(file, dump, { mode: 0o600 });
  try {
    await run('setfattr', ['-h', `--restore=${file}`], { cwd, timeout: TOOL_TIMEOUT_MS });
  } catch (err) {
    const e = err as { code?: string; stderr?: string };
    if (e.code === 'ENOENT') throw new ImageError('SETFATTR_MISSING', 'setfattr (Debian package attr) is needed to unpack layers with xattrs or opaque directories');
    const why = String(e.stderr ?? err).trim();
    throw roomError('cannot set xattrs', why, cwd) ?? new ImageError('SETXATTR_FAILED', `cannot set xattrs: ${why}`);
  } finally {
    await rm(file, { force: true });
  }
}
