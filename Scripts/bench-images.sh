#!/usr/bin/env bash
# Image benchmarks (called by Scripts/bench.sh images): unpack throughput of husk against
# `umoci unpack` for the same images in one hyperfine run, pull (copy + verify) MB/s, and
# `husk images` with 200 images.
#
# Unpack is timed on a tmpfs so that both tools pay the same, small, metadata cost: on this
# machine's ext4, deleting a tree and unpacking into the same place again makes inode
# allocation slow for ~30 s (ext4's recently_deleted scan), which would measure the disk, not
# the tool. A second set of runs on disk uses a fresh directory per run (nothing is deleted
# until the end). husk's unpack is timed alone: each run starts from a store that already has
# the blobs, so `husk pull` only unpacks and records; umoci unpacks from the layout.
set -euo pipefail
source "$(dirname "$0")/env.sh"
husk=$1
runs=$2
work=$(mktemp -d /tmp/husk-bench-XXXXXX)
tfs="$work/tmpfs"
mkdir -p "$tfs"
mount -t tmpfs -o size=6g husk-bench "$tfs"
trap 'umount "$tfs" 2>/dev/null; rm -rf "$work"' EXIT

# busybox: one layer from busybox-static with its applet links.
bb="$work/busybox"
umoci init --layout "$work/layout-busybox" >/dev/null
umoci new --image "$work/layout-busybox:x" >/dev/null
umoci unpack --image "$work/layout-busybox:x" "$bb" >/dev/null
mkdir -p "$bb/rootfs/bin"
cp "$(command -v busybox)" "$bb/rootfs/bin/busybox"
for a in $(busybox --list); do [ "$a" = busybox ] || ln -s busybox "$bb/rootfs/bin/$a"; done
umoci repack --image "$work/layout-busybox:x" "$bb" >/dev/null
husk_big_layout "$work"

report=()
for img in busybox big; do
  layout="$work/layout-$img"
  # Uncompressed bytes of the layers (sum of the tar sizes) and compressed bytes.
  tarbytes=0; blobbytes=0
  manifest=$(python3 -c "import json,sys; print(json.load(open('$layout/index.json'))['manifests'][0]['digest'][7:])")
  for l in $(python3 -c "import json; [print(x['digest'][7:]) for x in json.load(open('$layout/blobs/sha256/$manifest'))['layers']]"); do
    blobbytes=$((blobbytes + $(stat -c %s "$layout/blobs/sha256/$l")))
    tarbytes=$((tarbytes + $(gzip -dc "$layout/blobs/sha256/$l" | wc -c)))
  done
  files=$(find "$work/$img/rootfs" | wc -l)
  # A seed store with the blobs copied and verified, and no snapshot.
  seed="$work/seed-$img"
  "$husk" --root "$seed" --image-source "$layout" pull x:x >/dev/null
  rm -rf "$seed/images/snapshots" "$seed/images/index.json"; mkdir -p "$seed/images/snapshots"
  hyperfine -N --warmup 1 --runs "$runs" --export-csv "$work/unpack-$img.csv" \
    -n "husk unpack $img (tmpfs)" --prepare "sh -c 'rm -rf $tfs/h && cp -a $seed $tfs/h'" \
    "$husk --root $tfs/h --image-source $layout pull x:x" \
    -n "umoci unpack $img (tmpfs)" --prepare "rm -rf $tfs/u" \
    "umoci unpack --image $layout:x $tfs/u" \
    -n "husk pull $img (tmpfs: copy + verify + unpack)" --prepare "rm -rf $tfs/p" \
    "$husk --root $tfs/p --image-source $layout pull x:x" >/dev/null
  # On disk, a fresh directory every run.
  for i in $(seq "$runs"); do
    cp -a "$seed" "$work/disk-h$i"; sync
    s=$(date +%s.%N); "$husk" --root "$work/disk-h$i" --image-source "$layout" pull x:x >/dev/null; e=$(date +%s.%N)
    echo "h $(echo "$e - $s" | bc)" >> "$work/disk-$img.txt"
    s=$(date +%s.%N); umoci unpack --image "$layout:x" "$work/disk-u$i" >/dev/null; e=$(date +%s.%N)
    echo "u $(echo "$e - $s" | bc)" >> "$work/disk-$img.txt"
  done
  rm -rf "$work"/disk-h* "$work"/disk-u*
  median() { grep "^$1 " "$work/disk-$img.txt" | cut -d' ' -f2 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  dh=$(median h); du=$(median u)
  report+=("$(awk -F, -v img="$img" -v tb="$tarbytes" -v bb="$blobbytes" -v files="$files" -v dh="$dh" -v du="$du" '
    NR > 1 { m[NR - 1] = $4 }  # hyperfine CSV: command,mean,stddev,median,user,system,min,max
    END {
      printf "%s: %d files, %.1f MB in tars, %.1f MB compressed\n", img, files, tb / 1e6, bb / 1e6
      printf "  unpack, tmpfs (median): husk %.3f s (%.0f MB/s), umoci %.3f s (%.0f MB/s): husk %.2fx faster\n", m[1], tb / 1e6 / m[1], m[2], tb / 1e6 / m[2], m[2] / m[1]
      printf "  unpack, disk, fresh dirs (median): husk %.3f s, umoci %.3f s: husk %.2fx faster\n", dh, du, du / dh
      printf "  pull (copy + verify + unpack), tmpfs: %.3f s; copy + verify alone ~ %.3f s = %.0f MB/s of blobs\n", m[3], m[3] - m[1], (m[3] > m[1]) ? bb / 1e6 / (m[3] - m[1]) : 0
    }' "$work/unpack-$img.csv")")
done

# husk images with 200 images (tiny single-layer images, one pull each).
lay="$work/layout-200"
python3 - "$lay" <<'PY'
import hashlib, io, json, os, sys, tarfile
root = sys.argv[1]
os.makedirs(root + "/blobs/sha256")
open(root + "/oci-layout", "w").write('{"imageLayoutVersion": "1.0.0"}')
def blob(b):
    d = hashlib.sha256(b).hexdigest()
    open(f"{root}/blobs/sha256/{d}", "wb").write(b)
    return "sha256:" + d, len(b)
manifests = []
for i in range(200):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        data = f"image {i}\n".encode()
        ti = tarfile.TarInfo("id"); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
    layer = buf.getvalue()
    ld, ln = blob(layer)
    cd, cn = blob(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [ld]}, "config": {"Cmd": ["/id"]}}).encode())
    md, mn = blob(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ln}]}).encode())
    manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
                      "annotations": {"org.opencontainers.image.ref.name": f"docker.io/bench/img{i}:1.0"}})
json.dump({"schemaVersion": 2, "manifests": manifests}, open(root + "/index.json", "w"))
PY
for i in $(seq 0 199); do "$husk" --root "$tfs/many" --image-source "$lay" pull "bench/img$i:1.0" >/dev/null; done
hyperfine -N --warmup 3 --runs 50 --export-csv "$work/images.csv" \
  -n "husk images (200)" "$husk --root $tfs/many images" \
  -n "husk images -o json (200)" "$husk --root $tfs/many images -o json" >/dev/null
n=$("$husk" --root "$tfs/many" images -q | wc -l)

echo
echo "images benchmark: $runs runs each, $(nproc) cores, $(uname -r); $(umoci --version)"
printf '%s\n' "${report[@]}"
awk -F, -v n="$n" 'NR > 1 { printf "%s: median %.1f ms (%d images listed)\n", $1, $4 * 1000, n }' "$work/images.csv"
