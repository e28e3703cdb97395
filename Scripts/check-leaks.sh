#!/usr/bin/env bash
# Fails when anything of Husk's tests is left on the machine: mounts under husk-test dirs,
# cgroups named husk*, processes of husk binaries (husk-serve too), husk-test temp dirs.
# --before: only reports, and remembers what it saw: a leftover from an earlier run (a killed
# benchmark, say) is named again afterwards but not blamed on this run.
set -uo pipefail
mode=${1:-after}
seen_before="${TMPDIR:-/tmp}/husk-check-leaks.before"

scan() {
leaks=()

while read -r mp; do leaks+=("mount: $mp"); done < <(awk '{print $5}' /proc/self/mountinfo | grep -E 'husk-test|/husk/' || true)
# The filesystem type follows the "-" after mountinfo's optional fields.
cg=$(awk '{for (i = 7; i <= NF; i++) if ($i == "-") { t = $(i + 1); break }} t == "cgroup2" {print $5; exit}' /proc/self/mountinfo)
if [ -n "$cg" ]; then
  while read -r d; do leaks+=("cgroup: $d"); done < <( { find "$cg" -maxdepth 3 -type d -name 'husk*'; find "$cg/husk" -mindepth 1 -type d; } 2>/dev/null | sort -u)
fi
while read -r p; do leaks+=("process: $p"); done < <(ps -eo pid=,ppid=,stat=,args= | grep -E 'husk-runc|husk-test|husk-pause|husk supervise|husk-keeper|husk-serve' | grep -v -E 'grep|check-leaks' || true)
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

if [ "$mode" = "--before" ]; then
  if ((${#leaks[@]})); then
    printf 'check-leaks: left over from an earlier run:\n' >&2
    printf '  %s\n' "${leaks[@]}" >&2
    printf '%s\n' "${leaks[@]}" > "$seen_before"
  else
    rm -f "$seen_before"
  fi
  exit 0
fi

new=()
old=()
for l in "${leaks[@]+"${leaks[@]}"}"; do
  if [ -f "$seen_before" ] && grep -qxF -- "$l" "$seen_before"; then old+=("$l"); else new+=("$l"); fi
done
rm -f "$seen_before"
if ((${#old[@]})); then
  printf 'check-leaks: still there from before the run (not counted):\n' >&2
  printf '  %s\n' "${old[@]}" >&2
fi
if ((${#new[@]})); then
  printf 'check-leaks: the test suite left these behind:\n' >&2
  printf '  %s\n' "${new[@]}" >&2
  exit 1
fi
echo "check-leaks: nothing left behind" >&2
