#!/usr/bin/env bash
# Pod benchmarks (called by Scripts/bench.sh pods): pod start and stop with `husk`, next to
# containerd's `ctr run --rm` (containerd started here in temp dirs, CRI plugin off), and the
# resident memory of a pod's supervisor, pause and keeper processes.
#
#   start-1 / start-10:  `husk run -d` of a pod (pause + 1 or 10 containers, image in the store)
#   exec-true / ctr-exec-true: `husk exec POD -- true` / `ctr task exec ... true` (containerd's
#                        shim and runc exec: what crictl exec goes through, minus CRI)
#                        until it returns with every container running
#   stop-1 / stop-10:    `husk stop` of that pod (the containers exit on SIGTERM)
#   run-true:            `husk run` (foreground) of a pod whose container runs `true`, until
#                        the pod Succeeded and everything of it is stopped, then `husk rm`
#   ctr-run-rm:          `ctr run --rm` of busybox `true` (create, start, wait, delete)
#   NAME (baseline):     with HUSK_BASELINE=DIR, each husk command again with DIR/husk (its
#                        supervisors are DIR/husk too: /proc/self/exe), own --root and --state
set -euo pipefail
source "$(dirname "$0")/env.sh"
husk_bin=$1
runs=${2:-30}

work=$(mktemp -d /tmp/husk-bench-pods-XXXXXX)
run=$(mktemp -d /run/husk-bench-pods-XXXXXX)
# containerd's namespace: runc puts its containers in cgroups /<namespace>/<id> of every
# hierarchy (v1 ones too on a hybrid host); cleanup removes that directory.
ns=husk-bench-$$
cleanup() {
  for p in $(ls "$run/husk/pods" 2>/dev/null); do "$husk_bin" --root "$work/root" --state "$run/husk" --log-dir "$work/logs" rm --force "$p" >/dev/null 2>&1 || true; done
  for p in $(ls "$run/husk-base/pods" 2>/dev/null); do "$HUSK_BASELINE/husk" --root "$work/root-base" --state "$run/husk-base" --log-dir "$work/logs" rm --force "$p" >/dev/null 2>&1 || true; done
  husk_stop_containerd "$run" "$ns"
  grep " $work/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work" "$run"
}
trap cleanup EXIT

# The image: busybox-static as an OCI layout (umoci), tagged 1.36.
husk_busybox_layout "$work"

H="$husk_bin --root $work/root --state $run/husk --log-dir $work/logs --image-source busybox=$work/layout --cni-conf-dir $work/no-cni"
$H pull busybox:1.36 >/dev/null
HB=
if [ -n "${HUSK_BASELINE:-}" ]; then
  HB="$HUSK_BASELINE/husk --root $work/root-base --state $run/husk-base --log-dir $work/logs --image-source busybox=$work/layout --cni-conf-dir $work/no-cni"
  $HB pull busybox:1.36 >/dev/null
fi

pod() { # pod NAME COUNT COMMAND
  echo "apiVersion: v1"; echo "kind: Pod"; echo "metadata: {name: $1}"; echo "spec:"
  echo "  restartPolicy: Never"; echo "  containers:"
  for i in $(seq "$2"); do echo "  - {name: c$i, image: \"busybox:1.36\", command: [\"sh\", \"-c\", \"$3\"]}"; done
}
serve="trap 'exit 0' TERM; sleep 1000 \& wait"
pod bench1 1 "$serve" | sed 's/\\&/\&/' >"$work/pod1.yaml"
pod bench10 10 "$serve" | sed 's/\\&/\&/' >"$work/pod10.yaml"
pod benchtrue 1 "true" >"$work/podtrue.yaml"
pod bench5 5 "$serve" | sed 's/\\&/\&/' >"$work/pod5.yaml"
pod benchx 1 "$serve" | sed 's/\\&/\&/' >"$work/podx.yaml"

# containerd in temp dirs (its CRI plugin off), busybox imported from the same layout.
if command -v containerd >/dev/null && command -v ctr >/dev/null; then
  husk_start_containerd "$work" "$run"
  husk_ctr_import "$run" "$ns" "$work/layout" 1.36 docker.io/library/busybox:1.36
  ctr_cmd="ctr -a $run/ctrd.sock -n $ns run --rm docker.io/library/busybox:1.36 bench-ctr true"
  ctr -a "$run/ctrd.sock" -n "$ns" run -d docker.io/library/busybox:1.36 bench-ctr-x sleep 1000 >/dev/null
  ctr_exec="ctr -a $run/ctrd.sock -n $ns task exec --exec-id bench bench-ctr-x true"
else
  echo "bench: containerd is not installed (apt-get install containerd): no ctr comparison" >&2
  ctr_cmd=
fi

# Every command must work before it is timed.
$H run -d "$work/pod1.yaml" >/dev/null && $H stop bench1 >/dev/null && $H rm bench1 >/dev/null
$H run "$work/podtrue.yaml" && $H rm benchtrue >/dev/null
[ -z "$ctr_cmd" ] || $ctr_cmd
$H run -d "$work/podx.yaml" >/dev/null && $H exec benchx -- true
[ -z "$ctr_cmd" ] || $ctr_exec
if [ -n "$HB" ]; then
  $HB run -d "$work/pod1.yaml" >/dev/null && $HB stop bench1 >/dev/null && $HB rm bench1 >/dev/null
  $HB run "$work/podtrue.yaml" && $HB rm benchtrue >/dev/null
  $HB run -d "$work/podx.yaml" >/dev/null && $HB exec benchx -- true
fi

echo "bench: hyperfine, $runs runs each" >&2
args=(-N --warmup 3 --runs "$runs" --export-csv "$work/pods.csv")
husk_args() { # NAME PREPARE COMMAND: a husk command, and with HUSK_BASELINE the same with $HB next to it
  args+=(-n "$1" --prepare "$2" "$3")
  [ -z "$HB" ] || args+=(-n "$1 (baseline)" --prepare "${2//"$H"/"$HB"}" "${3//"$H"/"$HB"}")
}
husk_args start-1 "$H rm --force bench1" "$H run -d $work/pod1.yaml"
husk_args stop-1 "sh -c '$H rm --force bench1 >/dev/null 2>&1; $H run -d $work/pod1.yaml'" "$H stop bench1"
husk_args start-10 "$H rm --force bench10" "$H run -d $work/pod10.yaml"
husk_args stop-10 "sh -c '$H rm --force bench10 >/dev/null 2>&1; $H run -d $work/pod10.yaml'" "$H stop bench10"
husk_args run-true "true" "sh -c '$H run $work/podtrue.yaml && $H rm benchtrue >/dev/null'"
[ -z "$ctr_cmd" ] || args+=(-n ctr-run-rm --prepare "true" "$ctr_cmd")
husk_args exec-true "true" "$H exec benchx -- true"
[ -z "$ctr_cmd" ] || args+=(-n ctr-exec-true --prepare "true" "$ctr_exec")
# hyperfine's first --prepare for a command that fails (no pod yet) must not stop it.
$H run -d "$work/pod1.yaml" >/dev/null; $H run -d "$work/pod10.yaml" >/dev/null
[ -z "$HB" ] || { $HB run -d "$work/pod1.yaml" >/dev/null; $HB run -d "$work/pod10.yaml" >/dev/null; }
hyperfine "${args[@]}" >"$work/hyperfine.txt" 2>&1 || { cat "$work/hyperfine.txt" >&2; exit 1; }
# The supervisor's CPU per exec: its utime+stime (clock ticks) over 100 `husk exec true`.
xsup=$(grep -o '"supervisorPid": *[0-9]*' "$run"/husk/pods/$(cat "$run/husk/names/default_benchx")/status.json | grep -o '[0-9]*$')
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
t0=$(ticks "$xsup")
for _ in $(seq 100); do $H exec benchx -- true; done
exec_cpu_ms=$(awk -v a="$t0" -v b="$(ticks "$xsup")" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) * 1000 / hz / 100 }')
for p in bench1 bench10 benchx; do $H rm --force "$p" >/dev/null 2>&1 || true; done
[ -z "$HB" ] || for p in bench1 bench10 benchx; do $HB rm --force "$p" >/dev/null 2>&1 || true; done

# Memory of a running 5-container pod: the supervisor right after start and once idle (it
# drops its code mappings after 1 s idle), pause, its keeper, and containerd's shim for one
# container.
$H run -d "$work/pod5.yaml" >/dev/null
sup=$(grep -o '"supervisorPid": *[0-9]*' "$run"/husk/pods/*/status.json | grep -o '[0-9]*$' | head -1)
[ -n "$sup" ] || { echo "bench: no supervisorPid in $(ls "$run"/husk/pods/*/status.json)" >&2; exit 1; }
kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/$3"; }
rss_start=$(kb "$sup" VmRSS status)
sleep 2
rss_idle=$(kb "$sup" VmRSS status)
anon_idle=$(kb "$sup" RssAnon status)
priv_idle=$(awk '$1 ~ /^Private_(Clean|Dirty):$/ {s += $2} END {print s}' "/proc/$sup/smaps_rollup")
dirty_idle=$(kb "$sup" Private_Dirty smaps_rollup)
cg2=$(awk '{for (i = 7; i <= NF; i++) if ($i == "-") { t = $(i + 1); break }} t == "cgroup2" {print $5; exit}' /proc/self/mountinfo)
pause=$(head -1 "$cg2/husk/$(basename "$(ls -d "$run"/husk/pods/*)")/pause/cgroup.procs")
rss_pause=$(kb "$pause" VmRSS status)
keeper=$(cat "$(ls -d "$run"/husk/pods/*)/keeper.pid")
rss_keeper=$(kb "$keeper" VmRSS status)
$H exec bench5 -c c3 -- true
rss_after_exec=$(kb "$sup" VmRSS status)
shim_rss=-
if [ -n "$ctr_cmd" ]; then
  ctr -a "$run/ctrd.sock" -n "$ns" run -d docker.io/library/busybox:1.36 bench-ctr-d sleep 1000 >/dev/null
  sleep 1
  shim=$(pgrep -f "containerd-shim-runc-v2 -namespace $ns" | head -1 || true)
  [ -z "$shim" ] || shim_rss=$(kb "$shim" VmRSS status)
fi

echo
echo "pods: $runs runs each, $(nproc) cores, $(uname -r); $($husk_bin --version); $(containerd --version 2>/dev/null | cut -d' ' -f3 || echo no containerd)"
[ -z "$HB" ] || echo "baseline: $HUSK_BASELINE/husk ($("$HUSK_BASELINE/husk" --version))"
awk -F, -v w="$([ -z "$HB" ] && echo 12 || echo 23)" 'NR == 1 { next }
  # the CSV of hyperfine: command,mean,stddev,median,user,system,min,max
  { printf "%-" w "s median %8.1f ms   mean %8.1f ms   stddev %6.1f ms   min %8.1f ms   max %8.1f ms\n", $1, $4 * 1000, $2 * 1000, $3 * 1000, $7 * 1000, $8 * 1000
    m[$1] = $4 * 1000; o[++n] = $1 }
  END { if ("ctr-run-rm" in m) printf "ratio run-true / ctr-run-rm (medians): %.2fx\n", m["run-true"] / m["ctr-run-rm"]
        if ("ctr-exec-true" in m) printf "ratio exec-true / ctr-exec-true (medians): %.2fx\n", m["exec-true"] / m["ctr-exec-true"]
        for (i = 1; i <= n; i++) if ((o[i] " (baseline)") in m) printf "ratio %s / baseline (medians): %.2fx\n", o[i], m[o[i]] / m[o[i] " (baseline)"] }' "$work/pods.csv"
echo "supervisor CPU per husk exec (100 execs): ${exec_cpu_ms} ms"
echo
echo "5-container pod: supervisor VmRSS ${rss_start} KB right after start, ${rss_idle} KB idle (private ${priv_idle} KB, of which anon ${anon_idle} KB, dirty ${dirty_idle} KB), ${rss_after_exec} KB just after an exec; pause ${rss_pause} KB; keeper ${rss_keeper} KB"
echo "containerd-shim-runc-v2 (one container): VmRSS ${shim_rss} KB"
