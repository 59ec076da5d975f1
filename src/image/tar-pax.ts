// tar-stream decodes every PAX record value as UTF-8, which mangles binary
// xattr values (security.capability holds raw bytes). This replaces its PAX
// decoder with one that keeps SCHILY.xattr.* values as latin1 strings (one
// char per byte, so Buffer.from(v, 'latin1') gives the bytes back) and
// decodes the other records as UTF-8, as before. Applied once, at import; the
// unpack tests check a binary xattr survives, so a tar-stream change that
// breaks this is caught. The same codec module is handed to tar-end.ts, so
// that it reads headers exactly as tar-stream does.
import tarStreamHeadersModule from './tar-stream-headers.js';

const XATTR_PREFIX = 'SCHILY.xattr.';
/** Bound on one PAX header: a few long paths and xattrs fit easily. */
export const MAX_PAX_BYTES = 1024 * 1024;

function decodePax(buf: Buffer): Record<string, string> {
  const result: Record<string, string> = {};
  if (buf.length > MAX_PAX_BYTES) throw new Error(`PAX header of ${buf.length} bytes is larger than ${MAX_PAX_BYTES}`);
  let rest = buf;
  while (rest.length) {
    const sp = rest.indexOf(0x20);
    if (sp <= 0) return result;
    const len = parseInt(rest.subarray(0, sp).toString('latin1'), 10);
    if (!len || len > rest.length || len <= sp + 1) return result;
    const record = rest.subarray(sp + 1, len - 1);
    const eq = record.indexOf(0x3d);
    if (eq === -1) return result;
    const key = record.subarray(0, eq).toString('utf8');
    result[key] = record.subarray(eq + 1).toString(key.startsWith(XATTR_PREFIX) ? 'latin1' : 'utf8');
    rest = rest.subarray(len);
  }
  return result;
}

/** The part of tar-stream's header codec (headers.js) that frakti uses. */
export interface TarStreamHeaders {
  /** One 512-byte header; null for a zero block; throws on a bad checksum or an unknown format. */
  decode(block: Buffer, filenameEncoding: string, allowUnknownFormat: boolean): { name: string; size: number; type: string | null } | null;
  decodePax(buf: Buffer): Record<string, string>;
}

let patched = false;

/** tar-stream's own header codec, with the PAX decoder of this file in place. */
export function tarStreamHeaders(): TarStreamHeaders {
  const headers = tarStreamHeadersModule as TarStreamHeaders;
  if (!patched) {
    headers.decodePax = decodePax;
    patched = true;
  }
  return headers;
}

export function patchTarStreamPax(): void {
  tarStreamHeaders();
}

/** The xattrs of an entry's PAX records, values as bytes. */
export function paxXattrs(pax: Record<string, string> | null | undefined): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  if (!pax) return out;
  for (const [k, v] of Object.entries(pax)) if (k.startsWith(XATTR_PREFIX)) out.set(k.slice(XATTR_PREFIX.length), Buffer.from(v, 'latin1'));
  return out;
}
