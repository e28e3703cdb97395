#!/usr/bin/env bash
# OCI command-line benchmarks (called by Scripts/bench.sh oci), side by side in one hyperfine
# run (engineering rule 5):
#   exec-*:    `<runtime> exec ID true` into a running container (busybox sleep), for
#              husk-runc, crun and runc
#   ctr-run-*: `ctr run --rm` of busybox `true` through containerd 1.6's runc shim with
#              `--runc-binary` husk-runc, crun or runc (create, start, wait, delete, plus
#              containerd's own work)
# Every runtime runs in the same wrapper, `unshare -m --propagation private sh -c '<prep>;
# exec <runtime> "$@"'`: crun refuses this hybrid-cgroup host unless the cgroup2 mount is
# unmounted in a private mount namespace (<prep>), and the others pay the same wrapper cost
# (<prep> = `:`). husk-runc is also measured without the wrapper. With HUSK_BASELINE=DIR,
# DIR/husk-runc too, wrapped ("... (baseline)"; root $run/husk-base, container bench-x-base).
set -euo pipefail
source "$(dirname "$0")/env.sh"
husk=$1
runs=${2:-30}

work=$(mktemp -d /tmp/husk-bench-oci-XXXXXX)
run=$(mktemp -d /run/husk-bench-oci-XXXXXX)
ns=husk-bench-oci-$$
rts="husk crun runc"
[ -z "${HUSK_BASELINE:-}" ] || rts="$rts husk-base"
xid() { if [ "$1" = husk-base ]; then echo bench-x-base; else echo bench-x; fi; }  # its container to exec into
cg=$(awk '{for (i = 7; i <= NF; i++) if ($i == "-") { t = $(i + 1); break }} t == "cgroup2" {print $5; exit}' /proc/self/mountinfo)
cleanup() {
  for r in $rts; do
    [ -x "$work/$r" ] && "$work/$r" --root "$run/$r" delete --force "$(xid "$r")" >/dev/null 2>&1 || true
  done
  husk_stop_containerd "$run" "$ns"
  grep " $work/\| $run/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work" "$run"
}
trap cleanup EXIT

# The wrappers (one per runtime, same shape).
for r in $rts; do
  case $r in husk) bin=$husk; prep=":" ;; crun) bin=$(command -v crun); prep="umount $cg" ;; runc) bin=$(command -v runc); prep=":" ;;
    husk-base) bin=$HUSK_BASELINE/husk-runc; prep=":" ;; esac
  printf '#!/bin/sh\nexec unshare -m --propagation private sh -c '\''%s; exec %s "$@"'\'' %s "$@"\n' "$prep" "$bin" "$r" >"$work/$r"
  chmod +x "$work/$r"
done

# A bundle (runc spec, busybox) with a long-running process to exec into.
bundle="$work/bundle"
mkdir -p "$bundle/rootfs/bin"
cp "$(command -v busybox)" "$bundle/rootfs/bin/busybox"
for a in true sh sleep; do ln -s busybox "$bundle/rootfs/bin/$a"; done
(cd "$bundle" && runc spec)
sed -i -e 's/"terminal": true/"terminal": false/' -e 's/^\(\s*\)"sh"$/\1"sleep", "1000"/' "$bundle/config.json"
for r in $rts; do
  "$work/$r" --root "$run/$r" run -d --bundle "$bundle" "$(xid "$r")" >/dev/null 2>"$work/err" </dev/null || { echo "bench: $r run -d failed" >&2; cat "$work/err" >&2; exit 1; }
done

# containerd in temp dirs (CRI off), busybox imported from an OCI layout made by umoci.
husk_start_containerd "$work" "$run"
mkdir -p "$work/img"
umoci init --layout "$work/layout" && umoci new --image "$work/layout:base"
umoci unpack --image "$work/layout:base" "$work/img" >/dev/null
cp -a "$bundle/rootfs/." "$work/img/rootfs/"
umoci repack --image "$work/layout:base" "$work/img"
umoci config --image "$work/layout:base" --config.cmd /bin/sh --config.env PATH=/bin --tag 1
husk_ctr_import "$run" "$ns" "$work/layout" 1 docker.io/library/busybox:bench
ctr_run() { echo "ctr -a $run/ctrd.sock -n $ns run --rm --runc-binary $1 docker.io/library/busybox:bench bench-$2 true"; }

# Every command must work before it is timed.
cmds=()
for r in husk crun runc; do cmds+=("$work/$r --root $run/$r exec bench-x true"); done
cmds+=("$husk --root $run/husk exec bench-x true")
for r in husk crun runc; do cmds+=("$(ctr_run "$work/$r" "$r")"); done
cmds+=("$(ctr_run "$husk" direct)")
base_exec=() base_ctr=()
if [ -n "${HUSK_BASELINE:-}" ]; then
  cmds+=("$work/husk-base --root $run/husk-base exec bench-x-base true" "$(ctr_run "$work/husk-base" husk-base)")
  base_exec=(-n "exec-husk-runc (baseline)" "${cmds[8]}") base_ctr=(-n "ctr-run-husk-runc (baseline)" "${cmds[9]}")
fi
for c in "${cmds[@]}"; do bash -c "$c" >/dev/null 2>"$work/err" || { echo "bench: failed: $c" >&2; cat "$work/err" >&2; exit 1; }; done

echo "bench: hyperfine, $runs runs each" >&2
hyperfine -N --warmup 3 --runs "$runs" --export-csv "$work/oci.csv" \
  -n exec-husk-runc "${cmds[0]}" "${base_exec[@]}" -n exec-crun "${cmds[1]}" -n exec-runc "${cmds[2]}" -n exec-husk-runc-unwrapped "${cmds[3]}" \
  -n ctr-run-husk-runc "${cmds[4]}" "${base_ctr[@]}" -n ctr-run-crun "${cmds[5]}" -n ctr-run-runc "${cmds[6]}" -n ctr-run-husk-runc-unwrapped "${cmds[7]}" \
  >"$work/hyperfine.txt" 2>&1 || { cat "$work/hyperfine.txt" >&2; exit 1; }

echo
echo "OCI command line, $runs runs each, $(nproc) cores, $(uname -r); $("$husk" --version | head -1); $(crun --version | head -1); $(runc --version | head -1); $(containerd --version | cut -d' ' -f3)"
[ -z "${HUSK_BASELINE:-}" ] || echo "baseline: $HUSK_BASELINE/husk-runc ($("$HUSK_BASELINE/husk-runc" --version | head -1))"
awk -F, '
  NR == 1 { next }
  { median[$1] = $4 * 1000; mean[$1] = $2 * 1000; sd[$1] = $3 * 1000; order[++n] = $1 }
  END {
    printf "%-30s %10s %10s %10s\n", "command", "median ms", "mean ms", "stddev"
    for (i = 1; i <= n; i++) { k = order[i]; printf "%-30s %10.2f %10.2f %10.2f\n", k, median[k], mean[k], sd[k] }
    printf "\nexec:    husk-runc/crun %.2fx, husk-runc/runc %.2fx (medians, same wrapper)\n", median["exec-husk-runc"] / median["exec-crun"], median["exec-husk-runc"] / median["exec-runc"]
    printf "ctr run: husk-runc/crun %.2fx, husk-runc/runc %.2fx (medians, same wrapper)\n", median["ctr-run-husk-runc"] / median["ctr-run-crun"], median["ctr-run-husk-runc"] / median["ctr-run-runc"]
    if ("exec-husk-runc (baseline)" in median) printf "husk-runc/baseline: exec %.2fx, ctr run %.2fx (medians, same wrapper)\n", median["exec-husk-runc"] / median["exec-husk-runc (baseline)"], median["ctr-run-husk-runc"] / median["ctr-run-husk-runc (baseline)"]
  }' "$work/oci.csv"
