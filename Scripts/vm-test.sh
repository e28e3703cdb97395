#!/usr/bin/env bash
# The VM tier (DESIGN §7, §9): runs tests that need a pure cgroup v2 hierarchy with the cpu,
# memory, pids and hugetlb controllers inside a QEMU VM, against the binaries built on the host.
#
#   Scripts/vm-test.sh [FILTER]    # default filter: PodResourceTests|RuncResourceTests|AppArmorTests
#   HUSK_VM_CMD='sh /some/script' Scripts/vm-test.sh   # run that instead (debugging), output shown
#   HUSK_VM_TIMEOUT=S              # QEMU's time limit, default 900 s
#
# The VM: Debian's kernel (linux-image-amd64, extracted, never installed on the host) under
# qemu-system-x86_64 with TCG (KVM is not used), `cgroup_no_v1=all` and AppArmor on, a busybox initramfs that
# loads the virtio and 9p modules, mounts the host's root read-only over virtio-9p
# (multidevs=remap) plus a writable share for the results, gives the tests a tmpfs (over /tmp,
# or another directory when the build is under /tmp) as TMPDIR, mounts cgroup2 at /sys/fs/cgroup with every controller handed down, and switch_roots
# into the host's root to run the test binary. Kernel and initramfs are built once and kept in
# /var/cache/husk/vm. Needs `swift build --build-tests` first (Scripts/test.sh does it). Exits
# with the tests' status.
set -euo pipefail
cd "$(dirname "$0")/.."
filter=${1:-PodResourceTests|RuncResourceTests|AppArmorTests}
cache=/var/cache/husk/vm
kver_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$kver_pkg" ] || { echo "vm-test: no linux-image-amd64 in apt's lists (apt-get update)" >&2; exit 1; }
kver=${kver_pkg#linux-image-}
command -v qemu-system-x86_64 >/dev/null || { echo "vm-test: qemu-system-x86_64 is missing (apt-get install qemu-system-x86)" >&2; exit 1; }
busybox=$(command -v busybox)
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' || { echo "vm-test: $busybox is not static (apt-get install busybox-static)" >&2; exit 1; }
xctest=$(ls -d "$PWD"/.build/*/debug/HuskPackageTests.xctest 2>/dev/null | head -1)
[ -x "$xctest" ] || { echo "vm-test: no test binary under .build (swift build --build-tests)" >&2; exit 1; }

# --- The kernel and the initramfs, once ---------------------------------------------------
mkdir -p "$cache"
# The initramfs's layout version: a change to its init below needs a new one.
built="$cache/$kver-2"
if [ ! -f "$built/vmlinuz" ] || [ ! -f "$built/initramfs.cpio.gz" ]; then
  echo "vm-test: building the VM's kernel and initramfs ($kver) in $cache" >&2
  work=$(mktemp -d "$cache/.build-XXXXXX")
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get download "$kver_pkg" >/dev/null 2>&1)
  dpkg-deb -x "$work"/linux-image-*.deb "$work/kernel"
  depmod -b "$work/kernel" "$kver"
  init="$work/initramfs"
  mkdir -p "$init"/{bin,dev,proc,sys,newroot,modules,out}
  cp "$busybox" "$init/bin/busybox"
  for a in sh mount umount mkdir insmod switch_root poweroff cat echo sleep ls; do ln -s busybox "$init/bin/$a"; done
  # The modules in dependency order.
  mods="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p overlay"
  for m in $mods; do
    f=$(find "$work/kernel/lib/modules/$kver" -name "$m.ko*" | head -1)
    [ -n "$f" ] || { echo "vm-test: module $m not found in $kver" >&2; exit 1; }
    case "$f" in
      *.xz) xz -dc "$f" >"$init/modules/$m.ko" ;;
      *.zst) zstd -qdc "$f" >"$init/modules/$m.ko" ;;
      *) cp "$f" "$init/modules/$m.ko" ;;
    esac
  done
  cat >"$init/init" <<INIT
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $mods; do insmod /modules/\$m.ko || echo "vm: insmod \$m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,multidevs=remap,msize=524288,cache=loose hostroot /newroot || { echo "vm: no host root"; poweroff -f; }
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 out /newroot/run 2>/dev/null || true
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t cgroup2 cgroup2 /newroot/sys/fs/cgroup
mount -t devtmpfs devtmpfs /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /newroot/dev/pts
mount -t tmpfs tmpfs /newroot/dev/shm
exec switch_root /newroot /bin/sh -c '. /run/vm-run.sh'
INIT
  chmod +x "$init/init"
  (cd "$init" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initramfs.cpio.gz"
  rm -rf "$cache/$kver" "$cache/$kver"-*
  mkdir -p "$built"
  cp "$work"/kernel/boot/vmlinuz-"$kver" "$built/vmlinuz"
  mv "$work/initramfs.cpio.gz" "$built/initramfs.cpio.gz"
  rm -rf "$work"
  trap - EXIT
fi

# --- One run --------------------------------------------------------------------------------
out=$(mktemp -d /tmp/husk-vm-out-XXXXXX)
trap 'rm -rf "$out"' EXIT
# The tests' scratch space in the VM: a tmpfs over a directory of the host's root that does not
# hold the build (the host's root is read-only in the VM, and the test binary must stay visible).
scratch=
for d in /tmp /var/tmp /mnt /media /srv; do
  case "$xctest/" in "$d"/*) continue ;; esac
  [ -d "$d" ] && { scratch=$d; break; }
done
[ -n "$scratch" ] || { echo "vm-test: no directory for the VM's scratch tmpfs" >&2; exit 1; }
# Runs inside the VM after switch_root: the host's root read-only, /run the writable share.
cat >"$out/vm-run.sh" <<RUN
mount -t tmpfs -o mode=1777 tmpfs $scratch
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=$scratch TMPDIR=$scratch/ CI=\${CI:-}
# AppArmor (the kernel is booted with it): its profiles are loaded and listed through securityfs.
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
echo "vm: apparmor: \$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null || echo absent)"
# Loopback up: Foundation's Process (the tests run commands with it) needs 127.0.0.1.
ip link set lo up 2>/dev/null || /bin/busybox ifconfig lo 127.0.0.1 up
# Every controller handed down from the root (the VM's own hierarchy).
echo "+cpu +memory +pids +hugetlb" > /sys/fs/cgroup/cgroup.subtree_control 2>/run/subtree.err
echo 16 > /proc/sys/vm/nr_hugepages 2>/dev/null
echo "vm: cgroup2 controllers: \$(cat /sys/fs/cgroup/cgroup.subtree_control)"
cd $scratch
$(if [ -n "${HUSK_VM_CMD:-}" ]; then echo "$HUSK_VM_CMD"; else echo "'$xctest' --testing-library swift-testing --filter '$filter'"; fi) > /run/test.log 2>&1
status=\$?
# Nothing of ours may be left in the VM's hierarchy either.
left=\$(find /sys/fs/cgroup/husk -mindepth 1 -type d 2>/dev/null)
if [ -n "\$left" ]; then echo "vm: cgroups left behind: \$left" >> /run/test.log; status=1; fi
echo \$status > /run/status
sync
/bin/busybox poweroff -f
RUN
start=$(date +%s)
timeout "${HUSK_VM_TIMEOUT:-900}" qemu-system-x86_64 -accel tcg -machine q35 -cpu max -smp 2 -m 3072 -nographic -no-reboot \
  -kernel "$built/vmlinuz" -initrd "$built/initramfs.cpio.gz" \
  -append "console=ttyS0 cgroup_no_v1=all apparmor=1 security=apparmor panic=-1 quiet loglevel=3" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap \
  -virtfs local,path="$out",mount_tag=out,security_model=passthrough \
  >"$out/console.log" 2>&1 </dev/null || true
end=$(date +%s)
grep -E '^vm:' "$out/console.log" >&2 || true
if [ -f "$out/test.log" ]; then
  grep -E '✔|✘|➜|recorded an issue|Test run' "$out/test.log" || true
  if [ -n "${HUSK_VM_CMD:-}" ]; then cat "$out/test.log"
  elif [ ! -f "$out/status" ] || [ "$(cat "$out/status")" != 0 ]; then tail -30 "$out/test.log"; fi
fi
echo "vm-test: $filter in the VM took $((end - start)) s (boot included)" >&2
if [ ! -f "$out/status" ]; then
  echo "vm-test: the VM ended without a test status; its console:" >&2
  tail -40 "$out/console.log" >&2
  exit 1
fi
exit "$(cat "$out/status")"
