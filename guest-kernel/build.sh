#!/usr/bin/env bash
# Builds the minimal guest kernel from Debian's linux-source-6.1 with our
# config fragment on top of tinyconfig. The result is cached outside the
# clone, keyed by source version + fragment + recipe version, so a rebuild only
# happens when one of them changes.
#   usage: guest-kernel/build.sh OUT_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUT_DIR}
mkdir -p "$out" && out=$(cd "$out" && pwd)
cache_root=${FRAKTI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/frakti}
tarball=/usr/src/linux-source-6.1.tar.xz
[ -f "$tarball" ] || { echo "guest-kernel: $tarball missing (apt-get install linux-source-6.1)" >&2; exit 1; }

src_version=$(dpkg-query -W -f '${Version}' linux-source-6.1)
# Bump RECIPE when a change to the steps below changes the kernel they produce.
RECIPE=1
key=$( { echo "$src_version recipe $RECIPE"; cat "$here/frakti.config"; } | sha256sum | cut -c1-16)
cached="$cache_root/kernel/$key"

if [ ! -f "$cached/vmlinux" ]; then
  echo "guest-kernel: building $src_version (config $key), about 6 minutes on 2 cores" >&2
  work="$cache_root/kernel/build-$key.$$"
  rm -rf "$work"; mkdir -p "$work"
  trap 'rm -rf "$work"' EXIT
  tar -C "$work" -xf "$tarball"
  cd "$work"/linux-source-6.1
  make -s tinyconfig >/dev/null
  scripts/kconfig/merge_config.sh -m -O . .config "$here/frakti.config" >/dev/null
  make -s olddefconfig >/dev/null
  # Every option the fragment sets must have kept its value through
  # olddefconfig: a select elsewhere can turn one back on, a missing
  # dependency can turn one off.
  missing=0
  while IFS= read -r line; do
    case "$line" in
      CONFIG_*=n) grep -q "^${line%=n}=y" .config && { echo "guest-kernel: $line is on after olddefconfig" >&2; missing=1; } ;;
      CONFIG_*=*) grep -qx "$line" .config || { echo "guest-kernel: $line did not survive olddefconfig" >&2; missing=1; } ;;
    esac
  done < "$here/frakti.config"
  [ "$missing" = 0 ] || exit 1
  make -s -j"$(nproc)" vmlinux >/dev/null
  mkdir -p "$cached.tmp"
  cp vmlinux "$cached.tmp/vmlinux"
  cp .config "$cached.tmp/config"
  echo "$src_version" > "$cached.tmp/source-version"
  echo "$key" > "$cached.tmp/config-hash"
  make -s kernelrelease > "$cached.tmp/release"
  rm -rf "$cached"; mv "$cached.tmp" "$cached"
fi

mkdir -p "$out"
# What every VM loads, made smaller; the cache keeps the kernel as built.
# QEMU reads an ELF kernel's symbol table into each VM's heap (about 2 MiB)
# and nothing uses it: stripped. The zero padding in the code segment is
# left out of what QEMU loads (elf-unpad.mjs says why that is safe).
strip --strip-all -o "$out/vmlinux.tmp" "$cached/vmlinux"
node "$here/elf-unpad.mjs" "$out/vmlinux.tmp" "$out/vmlinux.tmp"
if cmp -s "$out/vmlinux.tmp" "$out/vmlinux"; then rm -f "$out/vmlinux.tmp"; else mv -f "$out/vmlinux.tmp" "$out/vmlinux"; fi
# A file just written sits in the page cache in large folios, and QEMU maps
# whole folios: each VM would map ~3 MiB of it that it never reads. Dropped
# from the cache, it comes back in readahead-sized pieces as VMs read it.
dd if="$out/vmlinux" iflag=nocache count=0 status=none
for f in config source-version config-hash release; do
  [ "$cached/$f" -ef "$out/$f" ] && continue
  ln -f "$cached/$f" "$out/$f.tmp" 2>/dev/null || cp "$cached/$f" "$out/$f.tmp"
  mv -f "$out/$f.tmp" "$out/$f"
done
echo "guest-kernel: $(cat "$out/release") config $key -> $out/vmlinux" >&2
