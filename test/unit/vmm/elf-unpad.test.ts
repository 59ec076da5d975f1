// guest-kernel/elf-unpad.mjs on small ELF files built here: zero runs in a
// read-only segment are left out of what gets loaded, everything else stays.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

const SCRIPT = fileURLToPath(new URL('../../../../guest-kernel/elf-unpad.mjs', import.meta.url));
const PAGE = 4096;
const DATA_AT = 0x10000;

interface Phdr { type: number; flags: number; offset: number; vaddr: number; filesz: number; memsz: number }

/** An ELF64 header with the given program headers and the bytes at DATA_AT. */
function elf(phdrs: Phdr[], data: Buffer): Buffer {
  const b = Buffer.alloc(DATA_AT + data.length);
  b.writeUInt32BE(0x7f454c46, 0);
  b[4] = 2; // ELF64
  b[5] = 1; // little endian
  b.writeBigUInt64LE(64n, 0x20);
  b.writeUInt16LE(56, 0x36);
  b.writeUInt16LE(phdrs.length, 0x38);
  phdrs.forEach((p, i) => {
    const o = 64 + i * 56;
    b.writeUInt32LE(p.type, o);
    b.writeUInt32LE(p.flags, o + 4);
    b.writeBigUInt64LE(BigInt(p.offset), o + 8);
    b.writeBigUInt64LE(BigInt(p.vaddr), o + 16);
    b.writeBigUInt64LE(BigInt(p.vaddr), o + 24);
    b.writeBigUInt64LE(BigInt(p.filesz), o + 32);
    b.writeBigUInt64LE(BigInt(p.memsz), o + 40);
    b.writeBigUInt64LE(0x200000n, o + 48);
  });
  data.copy(b, DATA_AT);
  return b;
}

function phdrsOf(b: Buffer): Phdr[] {
  const out: Phdr[] = [];
  for (let i = 0; i < b.readUInt16LE(0x38); i++) {
    const o = 64 + i * 56;
    out.push({
      type: b.readUInt32LE(o), flags: b.readUInt32LE(o + 4), offset: Number(b.readBigUInt64LE(o + 8)),
      vaddr: Number(b.readBigUInt64LE(o + 16)), filesz: Number(b.readBigUInt64LE(o + 32)), memsz: Number(b.readBigUInt64LE(o + 40)),
    });
  }
  return out;
}

async function unpad(input: Buffer): Promise<{ out?: Buffer; exitCode: number; stderr: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-unpad-'));
  try {
    await writeFile(join(dir, 'in'), input);
    const r = await execa('node', [SCRIPT, join(dir, 'in'), join(dir, 'out')], { reject: false });
    return { out: r.exitCode === 0 ? await readFile(join(dir, 'out')) : undefined, exitCode: r.exitCode ?? -1, stderr: r.stderr };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const code = (pages: number, fill: number) => Buffer.alloc(pages * PAGE, fill);
const R_X = 5;
const RW = 6;

test('a zero run of 16 pages or more in a code segment is no longer loaded; the rest is as it was', async () => {
  // code (int3 padding is not zero and stays) | 20 zero pages | code | 3 zero pages (too short to cut)
  const text = Buffer.concat([code(2, 0xcc), code(20, 0), code(1, 0x90), code(3, 0), code(1, 0x90)]);
  const data = Buffer.concat([code(1, 0x11), code(20, 0), code(1, 0x22)]); // a writable segment's zeros are loaded as before
  const input = elf([
    { type: 1, flags: R_X, offset: DATA_AT, vaddr: 0x1000000, filesz: text.length, memsz: text.length },
    { type: 1, flags: RW, offset: DATA_AT + text.length, vaddr: 0x2000000, filesz: data.length, memsz: data.length },
    { type: 4, flags: 4, offset: DATA_AT, vaddr: 0x1000000, filesz: 16, memsz: 16 },
  ], Buffer.concat([text, data]));
  const r = await unpad(input);
  assert.equal(r.exitCode, 0, r.stderr);
  assert.deepEqual(phdrsOf(r.out!), [
    { type: 1, flags: R_X, offset: DATA_AT, vaddr: 0x1000000, filesz: 2 * PAGE, memsz: 2 * PAGE },
    { type: 1, flags: R_X, offset: DATA_AT + 22 * PAGE, vaddr: 0x1000000 + 22 * PAGE, filesz: 5 * PAGE, memsz: 5 * PAGE },
    { type: 1, flags: RW, offset: DATA_AT + text.length, vaddr: 0x2000000, filesz: data.length, memsz: data.length },
    { type: 4, flags: 4, offset: DATA_AT, vaddr: 0x1000000, filesz: 16, memsz: 16 },
  ]);
  // Only the program header table changed.
  assert.deepEqual(r.out!.subarray(DATA_AT), input.subarray(DATA_AT));
  assert.match(r.stderr, /3 -> 4 program headers, 0\.1 MiB of padding/);
});

test('a file with nothing to cut keeps its program headers', async () => {
  const text = code(4, 0xcc);
  const input = elf([{ type: 1, flags: R_X, offset: DATA_AT, vaddr: 0x1000000, filesz: text.length, memsz: text.length }], text);
  const r = await unpad(input);
  assert.equal(r.exitCode, 0, r.stderr);
  assert.deepEqual(r.out, input);
});

test('what is not an ELF64 kernel, or has no room for more headers, is refused with a reason', async () => {
  const notElf = await unpad(Buffer.from('#!/bin/sh\necho hello\n'.padEnd(128, ' ')));
  assert.equal(notElf.exitCode, 1);
  assert.match(notElf.stderr, /^elf-unpad: .*not an ELF file/);

  // The segment data starts right after the table: a split has nowhere to go.
  const text = Buffer.concat([code(1, 0x90), code(16, 0), code(1, 0x90)]);
  const tight = elf([{ type: 1, flags: R_X, offset: 64 + 56, vaddr: 0x1000000 + 64 + 56, filesz: text.length, memsz: text.length }], Buffer.alloc(0));
  const withText = Buffer.concat([tight.subarray(0, 64 + 56), text]);
  const r = await unpad(withText);
  assert.equal(r.exitCode, 1);
  assert.match(r.stderr, /no room for 2 program headers/);
});
