#!/usr/bin/env bash
# Installs every Debian package Husk's build, tests and benchmarks need. Idempotent and quiet:
# when everything is present it does nothing (no apt-get update).
set -euo pipefail

packages=(
  libseccomp-dev      # seccomp filters are compiled with libseccomp (CShim)
  libssl-dev          # SHA-256 of blobs and layers (libcrypto, SHA-NI; CArchive)
  zlib1g-dev libzstd-dev  # gzip and zstd layers (CArchive)
  busybox-static      # the root filesystem of test and demo containers
  umoci skopeo        # image layouts in the tests, the peer in the unpack benchmark
  zstd gzip           # compressing hand-made test layers
  musl-tools          # the pause process: a 13 KB static executable (Plugins/PauseBuilder)
  runc crun           # peers in Scripts/bench.sh
  containerd          # husk-runc under containerd's runc shim (tests); ctr run --rm in Scripts/bench.sh
  bsdutils            # script(1): a terminal for the `run -t` tests
  containernetworking-plugins  # CNI bridge/host-local: pod addresses (tests make their own config)
  hyperfine time      # Scripts/bench.sh: timings and peak RSS
  iproute2
  qemu-system-x86 cpio kmod file  # Scripts/vm-test.sh: the pure cgroup v2 VM (its initramfs, depmod)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages: ${missing[*]}; run this script as root" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Swift toolchain: on PATH, or where this machine image keeps it.
if ! command -v swift >/dev/null 2>&1 && [ ! -x /opt/swift/usr/bin/swift ]; then
  echo "install-deps: no Swift toolchain found (expected swift on PATH or /opt/swift/usr/bin)" >&2
  exit 1
fi
