#!/usr/bin/env bash
# Registry pull benchmark (called by Scripts/bench.sh pull): an image pulled from a local
# docker-registry (Debian's distribution registry on 127.0.0.1, plain HTTP) to a ready-to-run
# root filesystem, side by side in one hyperfine run per image, by
#   - husk pull (husk-pull downloads, checks and unpacks; overlayfs-ready snapshots),
#   - containerd 1.6 (`ctr images pull --plain-http`, which unpacks into its overlayfs
#     snapshotter; containerd started here in temp dirs, CRI plugin off),
#   - skopeo copy to an OCI layout + umoci unpack (a rootfs directory).
# Images: busybox (one layer) and ~190 MB in three gzip layers (/usr/lib/python3, /usr/lib/gcc,
# /usr/share/perl of this machine), pushed with skopeo. Each run starts with an empty store:
# husk's root and skopeo's layout are removed, containerd's image is removed with a synchronous
# GC (content and snapshots go). Every store is on one tmpfs, so that the disk is not what is
# measured (Scripts/bench-images.sh measures disk). The loopback ceiling is the registry's own
# rate serving the largest blob to curl.
set -euo pipefail
source "$(dirname "$0")/env.sh"
husk=$1
runs=$2
work=$(mktemp -d /tmp/husk-bench-pull-XXXXXX)
run=$(mktemp -d /run/husk-bench-pull-XXXXXX)
tfs="$work/tmpfs"
mkdir -p "$tfs"
mount -t tmpfs -o size=8g husk-bench-pull "$tfs"
ns=husk-bench-pull-$$
reg_pid=
cleanup() {
  if [ -n "$reg_pid" ]; then kill -9 "$reg_pid" 2>/dev/null; wait "$reg_pid" 2>/dev/null || true; fi
  husk_stop_containerd "$run" "$ns"
  grep " $tfs/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  umount -l "$tfs" 2>/dev/null || true
  rm -rf "$work" "$run"
}
trap cleanup EXIT

for t in docker-registry skopeo umoci curl; do
  command -v "$t" >/dev/null || { echo "bench pull: $t is not installed (Scripts/install-deps.sh)" >&2; exit 1; }
done

# The registry, on a free port, its storage on disk (served from the page cache after the push).
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/registry"
cat >"$work/registry/config.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry/data
http:
  addr: 127.0.0.1:$port
YML
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
reg_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.05; done
reg="127.0.0.1:$port"

# The images.
husk_busybox_layout "$work" >/dev/null
skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:1.36" "docker://$reg/bench/busybox:1.36"
husk_big_layout "$work"
rm -rf "$work/big"
skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout-big:x" "docker://$reg/bench/big:1"

# containerd in temp dirs, its root on the tmpfs.
have_ctr=0
if command -v containerd >/dev/null && command -v ctr >/dev/null; then
  husk_start_containerd "$tfs" "$run"
  have_ctr=1
else
  echo "bench pull: containerd is not installed (apt-get install containerd): no ctr comparison" >&2
fi
mkdir -p "$work/certs.d"
H="$husk --root $tfs/h --registry-config $work/certs.d"
CTR="ctr -a $run/ctrd.sock -n $ns"

report=()
for img in busybox:1.36 big:1; do
  ref="$reg/bench/$img"
  name=${img%%:*}
  # Sizes from the registry's manifest; the ceiling from its largest blob.
  read -r blobbytes largest < <(curl -fs -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$reg/v2/bench/$name/manifests/${img#*:}" |
    python3 -c 'import json,sys; l=json.load(sys.stdin)["layers"]; b=max(l, key=lambda x: x["size"]); print(sum(x["size"] for x in l), b["digest"])')
  ceiling=$(curl -fs -o /dev/null -w '%{speed_download}' "http://$reg/v2/bench/$name/blobs/$largest")
  # Every command must work before it is timed; the trees are compared by file count.
  rm -rf "$tfs/h" "$tfs/s"
  $H pull "$ref" >/dev/null 2>&1 || { echo "bench pull: husk pull $ref failed:" >&2; $H pull "$ref" >&2; exit 1; }
  hfiles=$(find "$tfs/h/images/snapshots" -mindepth 2 | wc -l)
  mkdir -p "$tfs/s"
  skopeo copy --quiet --src-tls-verify=false "docker://$ref" "oci:$tfs/s/l:x" && umoci unpack --image "$tfs/s/l:x" "$tfs/s/u" >/dev/null
  ufiles=$(find "$tfs/s/u/rootfs" -mindepth 1 | wc -l)
  cmds=(-n "husk pull $name" --prepare "rm -rf $tfs/h" "$H pull $ref")
  if [ "$have_ctr" = 1 ]; then
    $CTR images pull --plain-http "$ref" >/dev/null
    $CTR images rm --sync "$ref" >/dev/null
    left=$($CTR snapshots ls | tail -n +2 | wc -l)
    [ "$left" = 0 ] || echo "bench pull: containerd kept $left snapshots after images rm --sync" >&2
    cmds+=(-n "containerd pull $name (ctr images pull --plain-http; unpack)" --prepare "sh -c '$CTR images rm --sync $ref >/dev/null 2>&1 || true'"
      "$CTR images pull --plain-http $ref")
  fi
  cmds+=(-n "skopeo copy + umoci unpack $name" --prepare "sh -c 'rm -rf $tfs/s && mkdir $tfs/s'"
    "sh -c 'skopeo copy --quiet --src-tls-verify=false docker://$ref oci:$tfs/s/l:x && umoci unpack --image $tfs/s/l:x $tfs/s/u >/dev/null'")
  hyperfine -N --warmup 1 --runs "$runs" --export-csv "$work/pull-$name.csv" "${cmds[@]}" >/dev/null
  report+=("$(awk -F, -v img="$name" -v bb="$blobbytes" -v ceil="$ceiling" -v hf="$hfiles" -v uf="$ufiles" -v ctr="$have_ctr" '
    NR > 1 { m[NR - 1] = $4; sd[NR - 1] = $3 }  # command,mean,stddev,median,...
    END {
      s = ctr ? 3 : 2
      printf "%s: %.1f MB compressed; %d entries (husk snapshots), %d (umoci rootfs); loopback ceiling (curl, largest blob) %.0f MB/s\n", img, bb / 1e6, hf, uf, ceil / 1e6
      printf "  husk pull:             median %.3f s (stddev %.3f) = %.0f MB/s of blobs\n", m[1], sd[1], bb / 1e6 / m[1]
      if (ctr) printf "  containerd ctr pull:   median %.3f s (stddev %.3f) = %.0f MB/s: husk %.2fx faster\n", m[2], sd[2], bb / 1e6 / m[2], m[2] / m[1]
      printf "  skopeo + umoci unpack: median %.3f s (stddev %.3f) = %.0f MB/s: husk %.2fx faster\n", m[s], sd[s], bb / 1e6 / m[s], m[s] / m[1]
    }' "$work/pull-$name.csv")")
done

echo
echo "pull benchmark: $runs runs each, $(nproc) cores, $(uname -r); $($husk --version 2>/dev/null || echo husk); $(ctr --version 2>/dev/null || echo no ctr); $(skopeo --version); $(umoci --version)"
printf '%s\n' "${report[@]}"
