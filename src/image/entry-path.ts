// Layer entry names as real tools write them, resolved lexically inside the
// layer root, as containerd's applier does (v1.7 archive/tar.go cleans the
// name, then joins it under the root): "/etc/passwd", "./etc/passwd" and
// "etc/x/../passwd" all name etc/passwd; "/", "." and "a/.." name the root.
//
// A ".." that would climb above the root is refused. containerd clamps it
// there instead (fs.RootPath joins to "/"), Docker's own unpacker refuses it
// as a breakout: no tool writes such a name, so it marks a hostile or broken
// layer, and refusing names the entry instead of writing somewhere its author
// did not mean. Symlinks are not looked at here: the unpacker refuses any
// path that goes through one.
import { UnsafeLayerEntryError } from './errors.js';

/** Bound on a name or link target, as PATH_MAX. */
export const MAX_PATH_BYTES = 4096;

/**
 * The components of `name` below the layer root ([] for the root itself).
 * `field` and `entry` only shape the error: which header field, which entry.
 */
export function entryComponents(name: string, field = 'name', entry = name): string[] {
  const what = field === 'name' ? field : `${field} '${name}'`;
  if (name.includes('\0')) throw new UnsafeLayerEntryError(entry, `${what} contains a NUL byte`);
  if (Buffer.byteLength(name) > MAX_PATH_BYTES) throw new UnsafeLayerEntryError(entry.slice(0, 80) + '...', `${field} longer than ${MAX_PATH_BYTES} bytes`);
  const parts: string[] = [];
  for (const p of name.split('/')) {
    if (p === '' || p === '.') continue;
    if (p !== '..') parts.push(p);
    else if (parts.pop() === undefined) throw new UnsafeLayerEntryError(entry, `${what} climbs out of the layer root with '..'`);
  }
  return parts;
}
