// Decompression of layer streams. gzip through zlib; zstd through zlib where
// Node has it (22.15+), else through the zstd command (Debian's zstd
// package): no npm zstd library offers a maintained streaming decoder for Node 20.
import { spawn } from 'node:child_process';
import { Duplex, PassThrough, type Transform } from 'node:stream';
import zlib from 'node:zlib';
import { ContentInvalidError, ImageError } from './errors.js';
import type { Compression } from './manifest.js';

const CHUNK_BYTES = 256 * 1024;

export function decompressor(c: Compression): Duplex {
  if (c === 'none') return new PassThrough({ highWaterMark: CHUNK_BYTES });
  if (c === 'gzip') return zlib.createGunzip({ chunkSize: CHUNK_BYTES });
  const z = zlib as unknown as { createZstdDecompress?: (o?: object) => Transform };
  if (z.createZstdDecompress) return z.createZstdDecompress({ chunkSize: CHUNK_BYTES });
  return zstdProcess();
}

function zstdProcess(): Duplex {
  const child = spawn('zstd', ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < 4096) stderr += d.toString();
  });
  const duplex = Duplex.from({ writable: child.stdin, readable: child.stdout });
  child.on('error', (err) => duplex.destroy(new ImageError('ZSTD_UNAVAILABLE', `zstd layers need the zstd command: ${err.message}`)));
  child.on('exit', (code) => {
    // zstd fails on its input (a corrupt or cut-off stream); a kill on close exits with a signal, not a code.
    if (code !== 0 && code !== null) duplex.destroy(new ContentInvalidError(`layer does not decompress: zstd: ${stderr.trim() || `exit ${code}`}`));
  });
  duplex.on('close', () => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return duplex;
}
