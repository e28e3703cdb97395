# Sourced by the other scripts: puts the Swift toolchain on PATH and names the build dirs.
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi
HUSK_TOP="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Release build: one static executable per tool (fast start-up, measured in Scripts/bench.sh).
HUSK_RELEASE_SCRATCH="$HUSK_TOP/.build-release"
husk_build_release() {
  local log
  log=$(mktemp)
  if ! (cd "$HUSK_TOP" && swift build -c release -Xswiftc -static-executable --scratch-path "$HUSK_RELEASE_SCRATCH" "$@") >"$log" 2>&1; then
    grep -v -E "statically linked applications requires at runtime|use of .mktemp. is dangerous" "$log" >&2
    rm -f "$log"
    echo "build failed" >&2
    return 1
  fi
  rm -f "$log"
}

# busybox-static as an OCI layout (umoci) at WORK/layout, tagged 1.36 (Cmd /bin/sh, PATH=/bin),
# for the benchmarks; WORK/bundle is its scratch unpack.
husk_busybox_layout() { # WORK
  local rootfs="$1/bundle/rootfs"
  mkdir -p "$1/bundle"
  umoci init --layout "$1/layout" && umoci new --image "$1/layout:base"
  umoci unpack --image "$1/layout:base" "$1/bundle" >/dev/null
  mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp"
  cp "$(command -v busybox)" "$rootfs/bin/busybox"
  for a in $(busybox --list); do [ "$a" = busybox ] || ln -s busybox "$rootfs/bin/$a"; done
  echo "root:x:0:0:root:/root:/bin/sh" > "$rootfs/etc/passwd"
  umoci repack --image "$1/layout:base" "$1/bundle"
  umoci config --image "$1/layout:base" --config.cmd /bin/sh --config.env PATH=/bin --tag 1.36
}

# ~190 MB in three gzip layers, from this machine's /usr/lib/python3, /usr/lib/gcc and
# /usr/share/perl: the OCI layout WORK/layout-big (tag x), its root filesystem unpacked at WORK/big.
husk_big_layout() { # WORK
  local big="$1/big" src
  umoci init --layout "$1/layout-big" >/dev/null
  umoci new --image "$1/layout-big:x" >/dev/null
  umoci unpack --image "$1/layout-big:x" "$big" >/dev/null
  mkdir -p "$big/rootfs/usr/lib" "$big/rootfs/usr/share"
  for src in /usr/lib/python3 /usr/lib/gcc /usr/share/perl; do
    [ -d "$src" ] || continue
    cp -a "$src" "$big/rootfs$(dirname "$src")/"
    umoci repack --image "$1/layout-big:x" "$big" >/dev/null
    rm -rf "$big"; umoci unpack --image "$1/layout-big:x" "$big" >/dev/null
  done
}

# containerd for the benchmarks, in temp dirs (root in WORK, state and socket RUN/ctrd.sock,
# CRI plugin off), with its pid in husk_ctrd_pid. husk-runc under it skips limits this host
# cannot enforce (ctr run always asks for cpu.shares); runc and crun ignore the variable.
husk_ctrd_pid=
husk_start_containerd() { # WORK RUN
  cat >"$1/containerd.toml" <<TOML
version = 2
root = "$1/ctrd-root"
state = "$2/ctrd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$2/ctrd.sock"
TOML
  HUSK_RUNC_IGNORE_MISSING_CONTROLLERS=1 containerd --config "$1/containerd.toml" >"$1/containerd.log" 2>&1 &
  husk_ctrd_pid=$!
  for _ in $(seq 100); do [ -S "$2/ctrd.sock" ] && break; sleep 0.05; done
}

# Imports OCI layout LAYOUT:TAG into containerd namespace NS as IMAGE (through a docker archive).
husk_ctr_import() { # RUN NS LAYOUT TAG IMAGE
  skopeo copy --quiet "oci:$3:$4" "docker-archive:$1/import.tar:$5"
  ctr -a "$1/ctrd.sock" -n "$2" images import "$1/import.tar" >/dev/null
  rm -f "$1/import.tar"
}

# Removes every container of namespace NS, stops containerd, and removes what its runtimes
# left for NS: cgroups /NS/... in every hierarchy and the runtime root /run/containerd/runc/NS.
husk_stop_containerd() { # RUN NS
  [ -n "$husk_ctrd_pid" ] || return 0
  for c in $(ctr -a "$1/ctrd.sock" -n "$2" containers ls -q 2>/dev/null); do
    ctr -a "$1/ctrd.sock" -n "$2" tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true
    sleep 0.2
    ctr -a "$1/ctrd.sock" -n "$2" tasks rm "$c" >/dev/null 2>&1 || true
    ctr -a "$1/ctrd.sock" -n "$2" containers rm "$c" >/dev/null 2>&1 || true
  done
  kill "$husk_ctrd_pid" 2>/dev/null || true
  wait "$husk_ctrd_pid" 2>/dev/null || true
  husk_ctrd_pid=
  awk '{for (i = 7; i <= NF; i++) if ($i == "-") { t = $(i + 1); break }} t == "cgroup" || t == "cgroup2" {print $5}' /proc/self/mountinfo | sort -u | while read -r m; do
    if [ -d "$m/$2" ]; then find "$m/$2" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
  done
  rm -rf "/run/containerd/runc/$2"
}
