import HuskRuntime
import HuskSystem

/// The AppArmor profile a pod's container runs under when it asks for RuntimeDefault (or
/// nothing, on a host with AppArmor): Husk's counterpart of containerd's
/// `cri-containerd.apparmor.d`, written for Husk. It allows what a container ordinarily does
/// (files, network, capabilities its bounding set keeps) and denies what would reach past it:
/// mounting, writes to the kernel's knobs under /proc and /sys, the sysrq trigger, kcore,
/// firmware and securityfs. Loaded with `apparmor_parser` (Debian `apparmor`) the first time a
/// container needs it; the kernel keeps it until reboot.
public enum AppArmorDefault {
    public static let name = "husk-default"

    public static let text = """
        # Husk's default AppArmor profile for pod containers (RuntimeDefault).
        profile husk-default flags=(attach_disconnected,mediate_deleted) {
          network,
          capability,
          file,
          umount,
          signal (receive) peer=unconfined,
          signal (send,receive) peer=husk-default,
          ptrace (trace,read,tracedby,readby) peer=husk-default,

          deny mount,
          deny pivot_root,

          # The kernel's knobs: /proc/sys (except the namespaced kernel.shm*, kernel.msg*,
          # kernel.sem), the sysrq trigger, memory images, and the other /proc files that
          # set host state.
          deny /proc/sys/[^k]** w,
          deny /proc/sys/kernel/{?,??,[^sm]**,s[^he]**,m[^s]**} w,
          deny /proc/sysrq-trigger rwklx,
          deny /proc/kcore rwklx,
          deny /proc/kmem rwklx,
          deny /proc/mem rwklx,
          deny /proc/acpi/** rwklx,
          deny /proc/timer_list rwklx,

          # /sys: nothing but the container's own cgroup files is written; firmware and
          # securityfs are not even read.
          deny /sys/[^f]*/** wklx,
          deny /sys/f[^s]*/** wklx,
          deny /sys/fs/[^c]*/** wklx,
          deny /sys/fs/c[^g]*/** wklx,
          deny /sys/fs/cg[^r]*/** wklx,
          deny /sys/firmware/** rwklx,
          deny /sys/kernel/security/** rwklx,
        }

        """

    /// Loads the profile unless the kernel has it already.
    public static func ensureLoaded() throws(HuskError) {
        if AppArmor.loadedProfiles()?.contains(name) == true { return }
        guard let parser = ["/usr/sbin/apparmor_parser", "/sbin/apparmor_parser"].first(where: { Files.exists($0) }) else {
            throw HuskError(.unsupported, "apparmor_parser is not installed (Debian: apparmor)")
        }
        // -K: no cache; -r: replace (or add); the profile on stdin.
        let r = HostCommand.run([parser, "-K", "-r"], env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], stdin: Array(text.utf8), timeout: 60)
        guard r.status == 0 else {
            throw HuskError(.system, "\(parser) -r failed (\(r.status)): \(String(decoding: r.stderr, as: UTF8.self).trimmed())")
        }
    }
}
