#!/usr/bin/env bash
# Benchmarks, side by side in one hyperfine run (engineering rule 5). Run as root.
#
#   Scripts/bench.sh [runtime|images|pods|oci|cri|stop|all] [runs]
#     runtime: husk-runc / crun / runc `run` of /bin/true on one bundle
#     images:  layer unpack against `umoci unpack`, pull MB/s, `husk images` with 200 images
#     pull:    registry pulls (local docker-registry) to a ready rootfs: husk pull against
#              containerd's `ctr images pull` and skopeo copy + umoci unpack (Scripts/bench-pull.sh)
#     pods:    pod start and stop, `husk run` against `ctr run --rm`, supervisor memory
#     oci:     husk-runc / crun / runc `exec` of true; `ctr run --rm` with each as --runc-binary
#     cri:     husk serve against containerd's CRI plugin through one persistent grpcio client
#              (Scripts/bench-cri.sh, Scripts/cri-bench.py): pod start, stop, ExecSync,
#              ListContainers, per-pod memory; runs = rounds (default 20)
#     stop:    SIGKILL lateness of `husk stop` idle, under CPU hogs and under a heavy writer on
#              the state's filesystem (Scripts/bench-stop.sh); runs = stops per condition (10)
#
# With HUSK_BASELINE=DIR (a previous build's husk and husk-runc), runtime, pods and oci also
# time DIR's binary in the same hyperfine run, same wrapper, own state dirs (names "... (baseline)"),
# and print the ratios current/baseline of the medians.
#
# How each runtime is run: crun refuses this hybrid-cgroup host ("cgroups in hybrid mode not
# supported") unless /sys/fs/cgroup/unified is unmounted, which must only happen in a private
# mount namespace. So every runtime runs in the same wrapper,
#   unshare -m --propagation private sh -c '<prep>; exec <runtime> run ...'
# where <prep> is `umount /sys/fs/cgroup/unified` for crun and `:` for the others: all three
# pay the same wrapper cost. The wrapper alone is measured too, and husk-runc unwrapped.
# The bundle comes from `runc spec` (ociVersion 1.0.2-dev, which all three accept), with
# terminal off and args [true]. State roots live on tmpfs (/run).
set -euo pipefail
source "$(dirname "$0")/env.sh"
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root" >&2; exit 1; }
what=${1:-all}
case "$what" in runtime|images|pull|pods|oci|cri|stop|all) ;; *) echo "usage: Scripts/bench.sh [runtime|images|pull|pods|oci|cri|stop|all] [runs]" >&2; exit 2 ;; esac
runs=${2:-}
asked=$runs  # the runs asked for; each part has its own default
if [ -n "${HUSK_BASELINE:-}" ]; then
  for b in husk husk-runc; do [ -x "$HUSK_BASELINE/$b" ] || { echo "bench: HUSK_BASELINE: no $HUSK_BASELINE/$b" >&2; exit 1; }; done
  HUSK_BASELINE=$(cd "$HUSK_BASELINE" && pwd); export HUSK_BASELINE
fi

"$HUSK_TOP/Scripts/install-deps.sh"
echo "bench: building release binaries ..." >&2
# Only the binaries measured here: husk-serve (gRPC) takes several times as long to build.
husk_build_release --product husk
husk_build_release --product husk-runc
if [ "$what" = cri ] || [ "$what" = all ]; then husk_build_release --product husk-serve; fi
if [ "$what" = pull ] || [ "$what" = all ]; then husk_build_release --product husk-pull; fi
husk="$HUSK_RELEASE_SCRATCH/release/husk-runc"
huskcli="$HUSK_RELEASE_SCRATCH/release/husk"

if [ "$what" = runtime ] || [ "$what" = all ]; then
runs=${runs:-100}

work=$(mktemp -d /tmp/husk-bench-XXXXXX)
state=$(mktemp -d /run/husk-bench-XXXXXX)
trap 'rm -rf "$work" "$state"' EXIT

bundle="$work/bundle"
mkdir -p "$bundle/rootfs/bin"
cp "$(command -v busybox)" "$bundle/rootfs/bin/busybox"
ln -s busybox "$bundle/rootfs/bin/true"
ln -s busybox "$bundle/rootfs/bin/sh"
(cd "$bundle" && runc spec)
sed -i -e 's/"terminal": true/"terminal": false/' -e 's/^\(\s*\)"sh"$/\1"true"/' "$bundle/config.json"
grep -q '"true"' "$bundle/config.json" || { echo "bench: could not set args in config.json" >&2; exit 1; }

wrap() { # wrap PREP CMD...
  local prep=$1; shift
  printf "unshare -m --propagation private sh -c '%s; exec %s'" "$prep" "$*"
}
cg=$(awk '{for (i = 7; i <= NF; i++) if ($i == "-") { t = $(i + 1); break }} t == "cgroup2" {print $5; exit}' /proc/self/mountinfo)
cmd_husk=$(wrap ":" "$husk" --root "$state/husk" run --bundle "$bundle" bench-husk)
cmd_crun=$(wrap "umount $cg" crun --root "$state/crun" run --bundle "$bundle" bench-crun)
cmd_runc=$(wrap ":" runc --root "$state/runc" run --bundle "$bundle" bench-runc)
cmd_wrap=$(wrap ":" true)
cmd_direct="$husk --root $state/husk run --bundle $bundle bench-direct"
base=() cmd_base=
if [ -n "${HUSK_BASELINE:-}" ]; then
  cmd_base=$(wrap ":" "$HUSK_BASELINE/husk-runc" --root "$state/husk-base" run --bundle "$bundle" bench-husk-base)
  base=(-n "husk-runc (baseline)" "$cmd_base")
fi

# Every command must work before it is timed.
for c in "$cmd_husk" "$cmd_crun" "$cmd_runc" "$cmd_direct" ${cmd_base:+"$cmd_base"}; do
  if ! bash -c "$c" >/dev/null 2>"$work/err"; then echo "bench: failed: $c" >&2; cat "$work/err" >&2; exit 1; fi
done

echo "bench: hyperfine, $runs runs each" >&2
hyperfine -N --warmup 5 --runs "$runs" --export-csv "$work/run.csv" \
  -n husk-runc "$cmd_husk" "${base[@]}" -n crun "$cmd_crun" -n runc "$cmd_runc" -n wrapper-only "$cmd_wrap" \
  -n husk-runc-unwrapped "$cmd_direct" >"$work/hyperfine.txt" 2>&1 || { cat "$work/hyperfine.txt" >&2; exit 1; }

# Peak RSS (max resident set of the runtime process tree, KB), median of 10.
rss() { # rss PREP RUNTIME ARGS...
  local prep=$1; shift
  for _ in $(seq 10); do
    unshare -m --propagation private sh -c "$prep; exec /usr/bin/time -o $work/rss -f %M $* >/dev/null 2>&1"
    tail -1 "$work/rss"
  done | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
rss_husk=$(rss ":" "$husk" --root "$state/husk" run --bundle "$bundle" rss-husk)
rss_crun=$(rss "umount $cg" crun --root "$state/crun" run --bundle "$bundle" rss-crun)
rss_runc=$(rss ":" runc --root "$state/runc" run --bundle "$bundle" rss-runc)
rss_base=
[ -z "$cmd_base" ] || rss_base=$(rss ":" "$HUSK_BASELINE/husk-runc" --root "$state/husk-base" run --bundle "$bundle" rss-husk-base)

echo
echo "run of /bin/true (create+start+wait+delete), $runs runs, $(nproc) cores, $(uname -r)"
echo "versions: $("$husk" --version | head -1); $(crun --version | head -1); $(runc --version | head -1)"
[ -z "$cmd_base" ] || echo "baseline: $HUSK_BASELINE/husk-runc ($("$HUSK_BASELINE/husk-runc" --version | head -1))"
awk -F, -v rh="$rss_husk" -v rc="$rss_crun" -v rr="$rss_runc" -v rb="$rss_base" '
  NR == 1 { next }
  { name[NR] = $1; median[$1] = $4 * 1000; mean[$1] = $2 * 1000; sd[$1] = $3 * 1000; order[++n] = $1 }
  END {
    rss["husk-runc"] = rh; rss["crun"] = rc; rss["runc"] = rr; if (rb != "") rss["husk-runc (baseline)"] = rb
    printf "%-22s %10s %10s %10s %12s\n", "command", "median ms", "mean ms", "stddev", "peak RSS KB"
    for (i = 1; i <= n; i++) { k = order[i]
      printf "%-22s %10.2f %10.2f %10.2f %12s\n", k, median[k], mean[k], sd[k], (k in rss) ? rss[k] : "-" }
    w = median["wrapper-only"]
    printf "\nratio husk-runc / crun (medians, same wrapper):     %.2fx\n", median["husk-runc"] / median["crun"]
    printf "ratio husk-runc / runc (medians, same wrapper):     %.2fx\n", median["husk-runc"] / median["runc"]
    printf "ratio without the wrapper (median - wrapper-only):  husk-runc/crun %.2fx, husk-runc/runc %.2fx\n",
      (median["husk-runc"] - w) / (median["crun"] - w), (median["husk-runc"] - w) / (median["runc"] - w)
    b = median["husk-runc (baseline)"]
    if (b) printf "ratio husk-runc / baseline (medians, same wrapper): %.2fx (without the wrapper %.2fx)\n", median["husk-runc"] / b, (median["husk-runc"] - w) / (b - w)
  }' "$work/run.csv"
fi

if [ "$what" = images ] || [ "$what" = all ]; then
  "$HUSK_TOP/Scripts/bench-images.sh" "$huskcli" "${asked:-10}"
fi

if [ "$what" = pull ] || [ "$what" = all ]; then
  "$HUSK_TOP/Scripts/bench-pull.sh" "$huskcli" "${asked:-10}"
fi

if [ "$what" = pods ] || [ "$what" = all ]; then
  "$HUSK_TOP/Scripts/bench-pods.sh" "$huskcli" "${asked:-30}"
fi

if [ "$what" = oci ] || [ "$what" = all ]; then
  "$HUSK_TOP/Scripts/bench-oci.sh" "$husk" "${asked:-30}"
fi

if [ "$what" = cri ] || [ "$what" = all ]; then
  "$HUSK_TOP/Scripts/bench-cri.sh" "$HUSK_RELEASE_SCRATCH/release/husk-serve" "${asked:-20}"
fi

if [ "$what" = stop ] || [ "$what" = all ]; then
  "$HUSK_TOP/Scripts/bench-stop.sh" "$huskcli" "${asked:-10}"
fi
