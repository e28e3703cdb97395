#!/usr/bin/env bash
# Husk's main job on a built-in default: builds Husk, makes a busybox-static root filesystem,
# and runs a demo container through husk-runc, showing what the container sees. Run as root.
set -euo pipefail
source "$(dirname "$0")/env.sh"
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (containers need real namespaces, mounts and cgroups)" >&2; exit 1; }

"$HUSK_TOP/Scripts/install-deps.sh"
echo "demo: building husk-runc (release) ..." >&2
husk_build_release --product husk-runc
runc="$HUSK_RELEASE_SCRATCH/release/husk-runc"

work=$(mktemp -d /tmp/husk-demo-XXXXXX)
root="$work/state"
cleanup() { "$runc" --root "$root" delete --force demo >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

# A bundle: busybox plus one symlink per applet, and husk-runc's default config.json.
mkdir -p "$work/bundle/rootfs/bin" "$work/bundle/rootfs/etc"
cp "$(command -v busybox)" "$work/bundle/rootfs/bin/busybox"
for a in $(busybox --list); do [ "$a" = busybox ] || ln -s busybox "$work/bundle/rootfs/bin/$a"; done
echo "root:x:0:0:root:/root:/bin/sh" > "$work/bundle/rootfs/etc/passwd"
"$runc" spec --bundle "$work/bundle"

script='echo "Hello from a Husk container."
echo "  pid:       $$ (PID 1 of its own pid namespace)"
echo "  hostname:  $(hostname)"
set -- /proc/[0-9]*; echo "  processes: $*  (only its own)"
echo "  network:   $(ls /sys/class/net)  (its own network namespace)"
echo "  root:      $(ls / | tr "\n" " ") (read-only: $(touch /x 2>/dev/null && echo no || echo yes))"
echo "  cgroup:    $(cat /proc/self/cgroup | grep ^0::)"
grep -E "^(CapEff|NoNewPrivs)" /proc/self/status | sed "s/^/  /"'
python3 - "$work/bundle/config.json" "$script" <<'PY'
import json, sys
path, script = sys.argv[1], sys.argv[2]
c = json.load(open(path))
c["process"]["args"] = ["sh", "-c", script]
json.dump(c, open(path, "w"), indent=2)
PY

echo "demo: husk-runc run demo (bundle $work/bundle)" >&2
"$runc" --root "$root" run --bundle "$work/bundle" demo
echo "demo: the container exited 0; its namespaces, mounts and cgroup are gone" >&2
