#!/usr/bin/env bash
# CRI benchmarks (called by Scripts/bench.sh cri): `husk serve` next to containerd's CRI plugin
# (Debian's containerd 1.6 with runc, started here in temp dirs), both driven by one persistent
# gRPC client (Scripts/cri-bench.py, Python grpcio) that alternates between them every round.
# Same busybox image (one OCI layout: Husk reads it, containerd imports it), same CNI config
# (bridge + portmap; each runtime its own bridge, subnet and IPAM dir so they never collide).
# containerd's sandbox image is that busybox running `sleep` (no pause image offline); kubelet's
# cgroup parent /husk-bench-cri is given to both, and both make their groups in it. With
# BENCH_KEEP=1 the temp dirs and daemons stay (to read containerd.log after a failure).
#
#   Scripts/bench-cri.sh HUSK-SERVE [rounds]     (bench.sh builds the static release binary)
set -euo pipefail
source "$(dirname "$0")/env.sh"
serve_bin=$1
runs=${2:-20}
command -v containerd >/dev/null || { echo "bench cri: containerd is not installed (apt-get install containerd)" >&2; exit 1; }

work=$(mktemp -d /tmp/husk-bench-cri-XXXXXX)
run=$(mktemp -d /run/husk-bench-cri-XXXXXX)
ns=k8s.io
serve_pid=
specs=()
cleanup() {
  [ ${#specs[@]} -eq 0 ] || python3 "$HUSK_TOP/Scripts/cri-bench.py" "$HUSK_TOP/Sources/HuskCRI/Proto/api.proto" --cleanup "${specs[@]}" || true
  if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
  husk_stop_containerd "$run" "$ns"
  awk '{for (i = 7; i <= NF; i++) if ($i == "-") { t = $(i + 1); break }} t == "cgroup" || t == "cgroup2" {print $5}' /proc/self/mountinfo | sort -u | while read -r m; do
    if [ -d "$m/husk-bench-cri" ]; then find "$m/husk-bench-cri" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
  done
  grep -E " ($work|$run)/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  for b in husk-bench0 ctrd-bench0; do ip link del "$b" 2>/dev/null || true; done
  rm -rf "$work" "$run"
}
[ -n "${BENCH_KEEP:-}" ] || trap cleanup EXIT

# The image: busybox-static as an OCI layout (umoci): 1.36 (Cmd /bin/sh) and pause (sleep).
husk_busybox_layout "$work"
umoci config --image "$work/layout:1.36" --config.cmd sleep --config.cmd 2147483647 --tag pause

cni() { # cni DIR BRIDGE SUBNET
  mkdir -p "$1"
  cat >"$1/10-bench.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "bench-$2", "plugins": [
  {"type": "bridge", "bridge": "$2", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$3"}]], "dataDir": "$1/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
}
cni "$work/cni-husk" husk-bench0 10.231.1.0/24
cni "$work/cni-ctrd" ctrd-bench0 10.231.2.0/24

# containerd with its CRI plugin (the shared helper turns it off: this one writes its own config).
cat >"$work/containerd.toml" <<TOML
version = 2
root = "$work/ctrd-root"
state = "$run/ctrd-state"
[grpc]
  address = "$run/ctrd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "husk.bench/pause:1"
  # The bounding set here lacks CAP_SYS_RESOURCE: runc may not lower oom_score_adj to -998.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$work/cni-ctrd"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
TOML
containerd --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
husk_ctrd_pid=$!
for _ in $(seq 200); do [ -S "$run/ctrd.sock" ] && break; sleep 0.05; done
husk_ctr_import "$run" "$ns" "$work/layout" 1.36 docker.io/library/busybox:1.36
husk_ctr_import "$run" "$ns" "$work/layout" pause husk.bench/pause:1

"$serve_bin" --listen "$run/husk.sock" --root "$work/husk-root" --state "$run/husk-state" --log-dir "$work/husk-logs" \
  --cni-conf-dir "$work/cni-husk" --cni-bin-dir /usr/lib/cni --image-source "busybox=$work/layout" \
  --allow-cgroup-parent /husk-bench-cri >"$work/husk-serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 200); do [ -S "$run/husk.sock" ] && break; sleep 0.05; done
sleep 1  # containerd's CRI plugin sees the imported images

# Per pod: containerd's shim and its pause (sleep); Husk's keeper, supervisor and pause.
specs=("containerd|$husk_ctrd_pid|unix://$run/ctrd.sock|$work/ctrd-logs|docker.io/library/busybox:1.36|containerd-shim-runc-v2 .*-address $run/ctrd.sock|^sleep 2147483647\$"
       "husk|$serve_pid|unix://$run/husk.sock|$work/husk-logs|docker.io/library/busybox:1.36|^husk-keeper $run/husk-state/|husk supervise $run/husk-state/|^/pause\$")
echo "versions: $("$serve_bin" --version | head -1); $(containerd --version); $(runc --version | head -1)"
python3 "$HUSK_TOP/Scripts/cri-bench.py" "$HUSK_TOP/Sources/HuskCRI/Proto/api.proto" "$runs" "${specs[@]}"
