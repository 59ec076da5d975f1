// HPACK (RFC 7541), as much as rewriting a client's request headers needs:
// a decoder that keeps the client encoder's dynamic table in step, and an
// encoder that writes plain literals without indexing, so the server's
// decoder table is never touched by what we write. Everything a client
// sends is bounded: integers, string lengths, the table size, the list size.

/** RFC 7541 Appendix A: the static table, index 1..61. */
const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''],
  ['etag', ''], ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''],
  ['if-modified-since', ''], ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''],
  ['last-modified', ''], ['link', ''], ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''],
  ['proxy-authorization', ''], ['range', ''], ['referer', ''], ['refresh', ''], ['retry-after', ''],
  ['server', ''], ['set-cookie', ''], ['strict-transport-security', ''], ['transfer-encoding', ''],
  ['user-agent', ''], ['vary', ''], ['via', ''], ['www-authenticate', ''],
];

/**
 * RFC 7541 Appendix B: the bit length of each symbol's Huffman code (0..255,
 * then EOS). The code is canonical: codes are handed out in order of
 * length, then symbol, so the lengths alone determine it.
 */
const HUFFMAN_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];
const EOS = 256;
const MAX_CODE_BITS = 30;

/** Canonical decoding tables: for each length, the first code and where its symbols start in SYMBOLS. */
const { firstCode: FIRST_CODE, count: COUNT, offset: OFFSET, symbols: SYMBOLS, codes: CODES } = buildHuffman();

function buildHuffman() {
  const count = new Array<number>(MAX_CODE_BITS + 1).fill(0);
  for (const len of HUFFMAN_LENGTHS) count[len]!++;
  const symbols = HUFFMAN_LENGTHS.map((len, sym) => ({ len, sym })).sort((a, b) => a.len - b.len || a.sym - b.sym).map((e) => e.sym);
  const firstCode = new Array<number>(MAX_CODE_BITS + 1).fill(0);
  const offset = new Array<number>(MAX_CODE_BITS + 1).fill(0);
  let code = 0;
  let at = 0;
  for (let len = 1; len <= MAX_CODE_BITS; len++) {
    firstCode[len] = code;
    offset[len] = at;
    code = (code + count[len]!) * 2;
    at += count[len]!;
  }
  // The encoder's view, used by tests and by anyone who wants Huffman output.
  const codes = new Array<number>(EOS + 1);
  const next = [...firstCode];
  for (const sym of symbols) codes[sym] = next[HUFFMAN_LENGTHS[sym]!]!++;
  return { firstCode, count, offset, symbols, codes };
}

export class HpackError extends Error {
  override readonly name = 'HpackError';
}

/** Bounds on what one client may make us hold. */
export interface HpackLimits {
  /** Largest dynamic table a size update may ask for. */
  maxTableBytes: number;
  /** Largest decoded header list (RFC 7540 6.5.2 sizing: name + value + 32 each). */
  maxHeaderListBytes: number;
}

export interface HeaderField {
  name: string;
  value: string;
  /** The client asked that the field never be indexed by any intermediary (a secret). */
  sensitive: boolean;
}

const ENTRY_OVERHEAD = 32;

/** Decodes Huffman-coded bytes (RFC 7541 5.2): at most 7 bits of padding, all ones; EOS refused. */
export function huffmanDecode(buf: Buffer, maxBytes: number): string {
  const out: number[] = [];
  let code = 0;
  let len = 0;
  for (const byte of buf) {
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((byte >> bit) & 1);
      len++;
      const index = code - FIRST_CODE[len]!;
      if (index >= 0 && index < COUNT[len]!) {
        const sym = SYMBOLS[OFFSET[len]! + index]!;
        if (sym === EOS) throw new HpackError('Huffman string contains EOS');
        if (out.length >= maxBytes) throw new HpackError(`Huffman string longer than ${maxBytes} bytes`);
        out.push(sym);
        code = 0;
        len = 0;
      } else if (len >= MAX_CODE_BITS) {
        throw new HpackError('invalid Huffman code');
      }
    }
  }
  // What is left must be a prefix of EOS (all ones), shorter than a byte.
  if (len > 7 || code !== 2 ** len - 1) throw new HpackError('invalid Huffman padding');
  return Buffer.from(out).toString('latin1');
}

/** Huffman-codes a latin1 string (what real encoders send; used to test the decoder). */
export function huffmanEncode(s: string): Buffer {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const byte of Buffer.from(s, 'latin1')) {
    const len = HUFFMAN_LENGTHS[byte]!;
    const code = CODES[byte]!;
    for (let i = len - 1; i >= 0; i--) {
      acc = (acc << 1) | (Math.floor(code / 2 ** i) & 1);
      if (++bits === 8) {
        out.push(acc);
        acc = 0;
        bits = 0;
      }
    }
  }
  if (bits > 0) out.push(((acc << (8 - bits)) | ((1 << (8 - bits)) - 1)) & 0xff);
  return Buffer.from(out);
}

/** A cursor over one header block. */
class Reader {
  pos = 0;
  constructor(private readonly buf: Buffer) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  peek(): number {
    return this.buf[this.pos]!;
  }

  /** RFC 7541 5.1: an N-bit prefix integer; at most 2^28, which no honest encoder exceeds. */
  integer(prefixBits: number): number {
    if (this.done) throw new HpackError('header block ends inside an integer');
    const max = (1 << prefixBits) - 1;
    let value = this.buf[this.pos++]! & max;
    if (value < max) return value;
    for (let shift = 0; ; shift += 7) {
      if (shift > 21) throw new HpackError('integer too large');
      if (this.done) throw new HpackError('header block ends inside an integer');
      const b = this.buf[this.pos++]!;
      value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return value;
    }
  }

  string(maxBytes: number): string {
    if (this.done) throw new HpackError('header block ends before a string');
    const huffman = (this.peek() & 0x80) !== 0;
    const length = this.integer(7);
    if (length > this.buf.length - this.pos) throw new HpackError('string runs past the header block');
    const raw = this.buf.subarray(this.pos, this.pos + length);
    this.pos += length;
    if (!huffman && length > maxBytes) throw new HpackError(`string longer than ${maxBytes} bytes`);
    return huffman ? huffmanDecode(raw, maxBytes) : raw.toString('latin1');
  }
}

/** One direction's decoder: its dynamic table mirrors the peer encoder's. */
export class HpackDecoder {
  /** Newest first, as HPACK indexes it. */
  private table: [string, string][] = [];
  private tableBytes = 0;
  private maxTable: number;

  constructor(private readonly limits: HpackLimits, initialTableBytes = 4096) {
    this.maxTable = Math.min(initialTableBytes, limits.maxTableBytes);
  }

  /** Decodes a whole header block. A failure leaves the table unusable: the connection must end. */
  decode(block: Buffer): HeaderField[] {
    const r = new Reader(block);
    const fields: HeaderField[] = [];
    let listBytes = 0;
    const add = (name: string, value: string, sensitive: boolean) => {
      listBytes += name.length + value.length + ENTRY_OVERHEAD;
      if (listBytes > this.limits.maxHeaderListBytes) throw new HpackError(`header list larger than ${this.limits.maxHeaderListBytes} bytes`);
      fields.push({ name, value, sensitive });
    };
    const left = () => Math.max(0, this.limits.maxHeaderListBytes - listBytes);
    while (!r.done) {
      const b = r.peek();
      if (b & 0x80) {
        const [name, value] = this.lookup(r.integer(7));
        add(name, value, false);
      } else if (b & 0x40) {
        const index = r.integer(6);
        const name = index === 0 ? r.string(left()) : this.lookup(index)[0];
        const value = r.string(left());
        this.insert(name, value);
        add(name, value, false);
      } else if (b & 0x20) {
        if (fields.length > 0) throw new HpackError('table size update after a header field');
        const size = r.integer(5);
        if (size > this.limits.maxTableBytes) throw new HpackError(`table size ${size} over the limit of ${this.limits.maxTableBytes}`);
        this.maxTable = size;
        this.evict();
      } else {
        // 0001xxxx never indexed, 0000xxxx without indexing: the same layout.
        const sensitive = (b & 0x10) !== 0;
        const index = r.integer(4);
        const name = index === 0 ? r.string(left()) : this.lookup(index)[0];
        add(name, r.string(left()), sensitive);
      }
    }
    return fields;
  }

  private lookup(index: number): readonly [string, string] {
    if (index === 0) throw new HpackError('index 0');
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1]!;
    const entry = this.table[index - STATIC_TABLE.length - 1];
    if (!entry) throw new HpackError(`index ${index} is past the dynamic table`);
    return entry;
  }

  private insert(name: string, value: string): void {
    this.table.unshift([name, value]);
    this.tableBytes += name.length + value.length + ENTRY_OVERHEAD;
    this.evict();
  }

  private evict(): void {
    while (this.tableBytes > this.maxTable) {
      const [name, value] = this.table.pop()!;
      this.tableBytes -= name.length + value.length + ENTRY_OVERHEAD;
    }
  }
}

function encodeInteger(out: number[], value: number, prefixBits: number, firstByte: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(firstByte | value);
    return;
  }
  out.push(firstByte | max);
  value -= max;
  while (value >= 0x80) {
    out.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  out.push(value);
}

function encodeString(out: number[], s: string): void {
  const bytes = Buffer.from(s, 'latin1');
  encodeInteger(out, bytes.length, 7, 0);
  for (const b of bytes) out.push(b);
}

/**
 * Encodes fields as literals that touch no dynamic table (RFC 7541 6.2.2 and
 * 6.2.3), keeping a field's never-indexed mark.
 */
export function encodeLiterals(fields: readonly HeaderField[]): Buffer {
  const out: number[] = [];
  for (const f of fields) {
    out.push(f.sensitive ? 0x10 : 0x00);
    encodeString(out, f.name);
    encodeString(out, f.value);
  }
  return Buffer.from(out);
}
