#!/usr/bin/env bash
# SIGKILL lateness of a stop (called by Scripts/bench.sh stop; issue 16, "Timing under load").
#
# A pod whose container ignores SIGTERM is stopped with grace G (3 s); its SIGKILL is due G
# after the Killing event. Two latenesses, in ms, over `runs` rounds (default 10) in each
# condition: when the supervisor sent SIGKILL (status.json's sigkillAt) and when it saw the
# exit (finishedAt, in ns in status.json), each minus (Killing's eventTime + G):
#   idle:   nothing else runs
#   cpu:    nproc+1 busy loops
#   writer: on the filesystem of --state and --root (a directory under /var/tmp, on disk,
#           not the tmpfs /run of production): dd with oflag=direct and a tight loop of 1 MiB
#           fsync'd writes
# Prints the median and the maximum per condition. Every process it starts is its own and is
# killed at the end; the pods are removed.
set -euo pipefail
source "$(dirname "$0")/env.sh"
husk_bin=$1
runs=${2:-10}
grace=3

work=$(mktemp -d /var/tmp/husk-bench-stop-XXXXXX)
load=()
cleanup() {
  for p in "${load[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for p in $(ls "$work/state/pods" 2>/dev/null); do $H rm --force "$p" >/dev/null 2>&1 || true; done
  grep " $work/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

husk_busybox_layout "$work"
H="$husk_bin --root $work/root --state $work/state --log-dir $work/logs --image-source busybox=$work/layout --cni-conf-dir $work/no-cni"
$H pull busybox:1.36 >/dev/null

round() { # NAME -> prints the lateness in ms
  cat >"$work/pod.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $1}
spec:
  terminationGracePeriodSeconds: $grace
  containers:
  - name: c
    image: busybox:1.36
    command: [sh, -c, "trap '' TERM; echo up; while :; do sleep 1; done"]
YAML
  $H run -d "$work/pod.yaml" >/dev/null
  for _ in $(seq 200); do [ "$($H logs "$1" 2>/dev/null)" = up ] && break; sleep 0.05; done
  $H stop "$1" >/dev/null
  # The API's finishedAt has whole seconds; status.json keeps the exit's time in ns.
  local uid
  uid=$($H inspect "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["metadata"]["uid"])')
  cp "$work/state/pods/$uid/status.json" "$work/status.json"
  $H events -o json "$1" >"$work/events.json"
  $H rm "$1" >/dev/null
  python3 - "$work/status.json" "$work/events.json" "$grace" <<'PY'
import json, sys, datetime
def t(s):
    base, frac = s.rstrip("Z").split(".") if "." in s else (s.rstrip("Z"), "0")
    return datetime.datetime.fromisoformat(base).replace(tzinfo=datetime.timezone.utc).timestamp() + float("0." + frac)
status = json.load(open(sys.argv[1]))
events = json.load(open(sys.argv[2]))["items"]
killing = [e for e in events if e["reason"] == "Killing"][-1]
inst = status["husk"]["containers"][0]["instances"][-1]
due = t(killing["eventTime"]) + float(sys.argv[3])
print("%.1f %.1f" % ((t(inst["sigkillAt"]) - due) * 1000, (t(inst["finishedAt"]) - due) * 1000))
PY
}

summary() { # CONDITION "KILL EXIT"...
  python3 - "$@" <<'PY'
import statistics, sys
rows = [tuple(float(x) for x in r.split()) for r in sys.argv[2:]]
for name, v in (("SIGKILL sent", [r[0] for r in rows]), ("exit recorded", [r[1] for r in rows])):
    print("%-7s %-13s late by: median %6.1f ms, max %6.1f ms, min %6.1f ms (%d stops)" % (sys.argv[1], name, statistics.median(v), max(v), min(v), len(v)))
PY
}

measure() { # CONDITION
  local out=()
  for i in $(seq "$runs"); do out+=("$(round "stop-$1-$i")"); done
  summary "$1" "${out[@]}"
}

measure idle
for _ in $(seq $(( $(nproc) + 1 ))); do (while :; do :; done) & load+=($!); done
measure cpu
for p in "${load[@]}"; do kill "$p"; done; wait 2>/dev/null || true; load=()
(while :; do dd if=/dev/zero of="$work/direct" bs=1M count=512 oflag=direct status=none; done) & load+=($!)
(while :; do dd if=/dev/zero of="$work/synced" bs=1M count=1 conv=fsync status=none; done) & load+=($!)
measure writer
