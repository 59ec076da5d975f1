#!/usr/bin/env bash
# Installs the Debian packages frakti builds and runs with, only those missing.
# Run as root on Debian 12; a no-op (one dpkg query) when all are present.
set -euo pipefail
packages=(
  qemu-system-x86 qemu-utils       # QEMU, qboot.rom, virtiofsd
  busybox-static                   # debug shell in the initrd, test images
  protobuf-c-compiler libprotobuf-c-dev musl-tools   # guest agent
  linux-source-6.1 bc flex bison libelf-dev libssl-dev cpio   # guest kernel
  containernetworking-plugins iproute2 iptables   # pod networking
  attr zstd                        # image unpack: xattrs, opaque dirs, zstd layers
  docker-registry skopeo umoci     # tests: local registry, image building
  golang-go golang-google-grpc-dev   # tests: the grpc-go CRI client (test/go-client), built offline
  containerd runc                  # mixed runtimes: the OS-container runtime for pods that need the host
  systemd                          # tests: systemd-analyze verify of the unit `frakti install` writes
                                   # (a full Debian 12 has it; the debian:12 container image does not)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
