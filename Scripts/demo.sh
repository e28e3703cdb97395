#!/usr/bin/env bash
# Husk's main job on a built-in default: builds Husk, makes a busybox image (an OCI layout made
# with umoci) and runs the demo pod (Scripts/demo/pod.yaml): an init container writes a page
# into an emptyDir, a busybox httpd serves it, a second container fetches it over localhost.
# Shows the pod's status, events and logs, then stops it gracefully and removes it. Run as root.
set -euo pipefail
source "$(dirname "$0")/env.sh"
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (pods need real namespaces, mounts and cgroups)" >&2; exit 1; }

"$HUSK_TOP/Scripts/install-deps.sh"
echo "demo: building husk (release) ..." >&2
husk_build_release --product husk

work=$(mktemp -d /tmp/husk-demo-XXXXXX)
husk() { "$HUSK_RELEASE_SCRATCH/release/husk" --root "$work/root" --state "$work/state" --log-dir "$work/logs" \
  --image-source "busybox=$work/layout" "$@"; }
cleanup() { husk rm --force demo >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

# The image: busybox-static plus one symlink per applet, as an OCI layout tagged 1.36.
mkdir -p "$work/bundle"
umoci init --layout "$work/layout"
umoci new --image "$work/layout:base"
umoci unpack --image "$work/layout:base" "$work/bundle" >/dev/null
rootfs="$work/bundle/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/www" "$rootfs/tmp"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for a in $(busybox --list); do [ "$a" = busybox ] || ln -s busybox "$rootfs/bin/$a"; done
echo "root:x:0:0:root:/root:/bin/sh" > "$rootfs/etc/passwd"
echo "root:x:0:" > "$rootfs/etc/group"
umoci repack --image "$work/layout:base" "$work/bundle"
umoci config --image "$work/layout:base" --config.cmd /bin/sh --config.env PATH=/bin --tag 1.36

step() { printf '\n\033[1m$ husk %s\033[0m\n' "$*" >&2; }
step run -d Scripts/demo/pod.yaml
husk run -d "$HUSK_TOP/Scripts/demo/pod.yaml"
sleep 2
step pods;                husk pods
step ps;                  husk ps
step logs demo -c write-page; husk logs demo -c write-page
step logs demo -c fetch;  husk logs demo -c fetch
step exec demo -c fetch -- cat /etc/hosts; husk exec demo -c fetch -- cat /etc/hosts
step events demo;         husk events demo
step stop demo;           time husk stop demo
step logs demo -c web;    husk logs demo -c web
printf '\n\033[1m# the pod is stopped; on the host, what its preStop hook wrote into the emptyDir:\033[0m\n' >&2
cat "$work"/root/pods/*/volumes/kubernetes.io~empty-dir/www/prestop.txt
step inspect demo -o yaml "(status)"
husk inspect demo -o yaml | sed -n '/^status:/,$p'
step rm demo;             husk rm demo
echo "demo: the pod is gone: no process, mount, cgroup or directory of it is left" >&2
