#!/usr/bin/env bash
# Fails when anything of Husk's tests is left on the machine: mounts under husk-test dirs,
# cgroups named husk*, processes of husk binaries, husk-test temp dirs.
# --before: only reports (so a leftover from an earlier run is named, not blamed on this one).
set -uo pipefail
mode=${1:-after}

scan() {
leaks=()

while read -r mp; do leaks+=("mount: $mp"); done < <(awk '{print $5}' /proc/self/mountinfo | grep -E 'husk-test|/husk/' || true)
cg=$(awk '$9=="cgroup2"{print $5; exit}' /proc/self/mountinfo)
if [ -n "$cg" ]; then
  while read -r d; do leaks+=("cgroup: $d"); done < <(find "$cg" -maxdepth 3 -type d -name 'husk*' 2>/dev/null)
fi
while read -r p; do leaks+=("process: $p"); done < <(ps -eo pid=,ppid=,stat=,args= | grep -E 'husk-runc|husk-test|husk-pause|husk supervise' | grep -v -E 'grep|check-leaks' || true)
while read -r d; do leaks+=("temp dir: $d"); done < <(find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'husk-test-*' 2>/dev/null)
}

# A container killed by a test may still be a zombie for a moment, until init (its parent
# after the runtime exited) reaps it: look again for a few seconds before reporting.
scan
if [ "$mode" != "--before" ]; then
  for _ in $(seq 50); do
    ((${#leaks[@]})) || break
    sleep 0.1
    scan
  done
fi

if ((${#leaks[@]})); then
  if [ "$mode" = "--before" ]; then
    printf 'check-leaks: left over from an earlier run:\n' >&2
  else
    printf 'check-leaks: the test suite left these behind:\n' >&2
  fi
  printf '  %s\n' "${leaks[@]}" >&2
  [ "$mode" = "--before" ] && exit 0
  exit 1
fi
[ "$mode" = "--before" ] || echo "check-leaks: nothing left behind" >&2
