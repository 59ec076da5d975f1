#!/usr/bin/env node
// Rewrites a vmlinux's program headers so that QEMU does not load the
// zero padding inside its read-only (code) segment.
//
// x86_64 kernels align the entry text, the end of the text and the start of
// rodata to 2 MiB, which leaves ~4.5 MiB of zeros inside the first PT_LOAD.
// QEMU's ELF loader maps the file and copies every byte of a segment into
// guest RAM, so each VM held those zeros twice (QEMU's file mapping and the
// guest's copy). Fresh guest RAM is already zero, so a segment split around
// the padding boots the same kernel with the same memory contents. Only
// non-writable segments are split: they are never written, so no data of a
// previous boot could show through; our VMs never reboot anyway (-no-reboot).
//
//   usage: node elf-unpad.mjs IN OUT
import { readFileSync, writeFileSync } from 'node:fs';

const PAGE = 4096;
/** Shorter zero runs are left in: each split costs a program header and a ROM in QEMU. */
const MIN_RUN_PAGES = 16;
const PT_LOAD = 1;
const PF_W = 2;
const PHDR_SIZE = 56;
/** A bound on the table we write: a kernel needs a handful of segments. */
const MAX_PHDRS = 64;

function fail(msg) {
  process.stderr.write(`elf-unpad: ${msg}\n`);
  process.exit(1);
}

const [inPath, outPath] = process.argv.slice(2);
if (!inPath || !outPath) fail('usage: elf-unpad.mjs IN OUT');
const buf = readFileSync(inPath);
if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46) fail(`${inPath}: not an ELF file`);
if (buf[4] !== 2 || buf[5] !== 1) fail(`${inPath}: not a little-endian ELF64 file`);
const phoff = Number(buf.readBigUInt64LE(0x20));
const phentsize = buf.readUInt16LE(0x36);
const phnum = buf.readUInt16LE(0x38);
if (phentsize !== PHDR_SIZE) fail(`${inPath}: program header size ${phentsize}, expected ${PHDR_SIZE}`);
if (phoff + phnum * PHDR_SIZE > buf.length) fail(`${inPath}: program headers run past the end of the file`);

const phdrs = [];
for (let i = 0; i < phnum; i++) {
  const o = phoff + i * PHDR_SIZE;
  phdrs.push({
    type: buf.readUInt32LE(o),
    flags: buf.readUInt32LE(o + 4),
    offset: buf.readBigUInt64LE(o + 8),
    vaddr: buf.readBigUInt64LE(o + 16),
    paddr: buf.readBigUInt64LE(o + 24),
    filesz: buf.readBigUInt64LE(o + 32),
    memsz: buf.readBigUInt64LE(o + 40),
    align: buf.readBigUInt64LE(o + 48),
  });
}

function zeroPage(at) {
  for (let i = at; i < at + PAGE; i += 8) if (buf.readBigUInt64LE(i) !== 0n) return false;
  return true;
}

/** The pieces of a read-only segment that hold something: [start, end) offsets relative to the segment. */
function pieces(ph) {
  const start = Number(ph.offset);
  const size = Number(ph.filesz);
  if (start + size > buf.length) fail(`a segment at offset ${start} runs past the end of the file`);
  const out = [];
  let pieceStart = 0;
  let run = 0;
  // Whole pages only, counted from the segment start (its offset and address agree modulo the page size).
  for (let p = 0; p + PAGE <= size; p += PAGE) {
    if (zeroPage(start + p)) {
      run++;
      continue;
    }
    if (run >= MIN_RUN_PAGES) {
      out.push([pieceStart, p - run * PAGE]);
      pieceStart = p;
    }
    run = 0;
  }
  out.push([pieceStart, size]);
  return out.filter(([a, b]) => b > a);
}

const next = [];
let dropped = 0;
for (const ph of phdrs) {
  if (ph.type !== PT_LOAD || ph.flags & PF_W || ph.filesz !== ph.memsz || ph.offset % BigInt(PAGE) !== ph.vaddr % BigInt(PAGE)) {
    next.push(ph);
    continue;
  }
  const parts = pieces(ph);
  for (const [a, b] of parts) {
    const d = BigInt(a);
    const len = BigInt(b - a);
    next.push({ ...ph, offset: ph.offset + d, vaddr: ph.vaddr + d, paddr: ph.paddr + d, filesz: len, memsz: len });
  }
  dropped += Number(ph.filesz) - parts.reduce((s, [a, b]) => s + (b - a), 0);
}
if (next.length > MAX_PHDRS) fail(`${next.length} program headers would be needed (at most ${MAX_PHDRS})`);

// The new table goes where the old one is: the bytes after it up to the first
// segment's data must be unused (zero) for it to grow there.
const firstData = Math.min(...phdrs.filter((p) => p.filesz > 0n).map((p) => Number(p.offset)));
const end = phoff + next.length * PHDR_SIZE;
if (end > firstData) fail(`no room for ${next.length} program headers before the first segment at ${firstData}`);
for (let i = phoff + phnum * PHDR_SIZE; i < end; i++) if (buf[i] !== 0) fail('the space after the program headers is in use');

next.forEach((ph, i) => {
  const o = phoff + i * PHDR_SIZE;
  buf.writeUInt32LE(ph.type, o);
  buf.writeUInt32LE(ph.flags, o + 4);
  buf.writeBigUInt64LE(ph.offset, o + 8);
  buf.writeBigUInt64LE(ph.vaddr, o + 16);
  buf.writeBigUInt64LE(ph.paddr, o + 24);
  buf.writeBigUInt64LE(ph.filesz, o + 32);
  buf.writeBigUInt64LE(ph.memsz, o + 40);
  buf.writeBigUInt64LE(ph.align, o + 48);
});
buf.writeUInt16LE(next.length, 0x38);
writeFileSync(outPath, buf, { mode: 0o755 });
process.stderr.write(`elf-unpad: ${phnum} -> ${next.length} program headers, ${(dropped / 1048576).toFixed(1)} MiB of padding no longer loaded\n`);
