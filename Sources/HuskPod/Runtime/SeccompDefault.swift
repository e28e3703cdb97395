import HuskRuntime

#if canImport(Glibc)
import Glibc
#endif

/// containerd's default seccomp profile (contrib/seccomp/seccomp_default.go, containerd 1.6 era,
/// commit 96929a5d), for linux/amd64: what Kubernetes' `seccompProfile: RuntimeDefault` means on
/// containerd.
///
/// Transcribed from the copy of `contrib/seccomp/seccomp_default.go` in containerd/containerd at
/// commit 96929a5d3102bdc9d5d108c104ddb38c8991a789, a mid-2022 state of the 1.6 line, with the two
/// later changes containerd's own pull requests made to it: the `CAP_SYS_NICE` group
/// (containerd#7167, backported to 1.6.x) and the removal of `io_uring_*` from the allow list
/// (containerd#9320, containerd 2.0). Names otherwise unchanged, in containerd's order; the
/// differences from the Go:
///
/// - `GOARCH` is fixed to amd64: the `arches()` list and the "include by arch" group are amd64's.
/// - containerd walks `Process.Capabilities.Bounding` in order (a repeated capability repeats its
///   group); here the capability groups come in the order of containerd's `switch`, each once.
/// - `defaultErrnoRet` stays unset, as in containerd: SCMP_ACT_ERRNO then means EPERM.
/// - Empty `Args` (`[]specs.LinuxSeccompArg{}`, omitted from JSON) are `nil`.
public enum SeccompDefault {
    /// - Parameter capabilities: the container's bounding/effective capability names
    ///   ("CAP_SYS_ADMIN", ...); some rules depend on them, as in containerd.
    public static func profile(capabilities: Set<String>) -> Spec.Seccomp {
        profile(capabilities: capabilities, kernelRelease: hostKernelRelease())
    }

    /// The profile for a given kernel release (`uname -r`; nil if unknown). containerd allows
    /// `ptrace` only on kernels 4.8 and later (before 4.8 ptrace could bypass seccomp).
    static func profile(capabilities: Set<String>, kernelRelease: String?) -> Spec.Seccomp {
        var syscalls = [Spec.Syscall(names: allowed, action: allow)]
        for persona in personalities {
            syscalls.append(Spec.Syscall(
                names: ["personality"], action: allow, args: [Spec.SeccompArg(index: 0, value: persona, op: equal)]))
        }
        // include by kernel version
        if let release = kernelRelease, let version = majorMinor(release), version >= (4, 8) {
            syscalls.append(Spec.Syscall(names: ["ptrace"], action: allow))
        }
        // include by arch (amd64)
        syscalls.append(Spec.Syscall(names: amd64, action: allow))
        // include by capability
        for (capability, names) in byCapability where capabilities.contains(capability) {
            syscalls.append(Spec.Syscall(names: names, action: allow))
        }
        if !capabilities.contains("CAP_SYS_ADMIN") {
            // clone without any CLONE_NEW* flag (the flags are argument 0 except on s390).
            syscalls.append(Spec.Syscall(
                names: ["clone"], action: allow,
                args: [Spec.SeccompArg(index: 0, value: cloneNewNamespaces, valueTwo: 0, op: maskedEqual)]))
            // clone3 is explicitly requested to give ENOSYS instead of the default EPERM, when
            // CAP_SYS_ADMIN is unset (https://github.com/moby/moby/pull/42681): its flags are in
            // a struct seccomp cannot inspect, and libcs fall back to clone on ENOSYS.
            syscalls.append(Spec.Syscall(names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: enosys))
        }
        var profile = Spec.Seccomp(defaultAction: "SCMP_ACT_ERRNO", syscalls: syscalls)
        profile.architectures = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        return profile
    }

    static let allow = "SCMP_ACT_ALLOW"
    static let equal = "SCMP_CMP_EQ"
    static let maskedEqual = "SCMP_CMP_MASKED_EQ"
    /// ENOSYS on amd64.
    static let enosys: UInt32 = 38
    /// CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
    /// CLONE_NEWCGROUP.
    static let cloneNewNamespaces: UInt64 =
        0x0002_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000 | 0x0200_0000

    /// personality(2) values allowed: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and
    /// 0xffffffff (a query of the current persona).
    static let personalities: [UInt64] = [0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff]

    /// The "include by arch" group for amd64.
    static let amd64 = ["arch_prctl", "modify_ldt"]

    /// Syscalls allowed when the capability set contains the capability, in containerd's order.
    static let byCapability: [(capability: String, names: [String])] = [
        ("CAP_DAC_READ_SEARCH", ["open_by_handle_at"]),
        ("CAP_SYS_ADMIN", [
            "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie",
            "mount", "mount_setattr", "move_mount", "name_to_handle_at", "open_tree", "perf_event_open", "quotactl",
            "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2", "unshare",
        ]),
        ("CAP_SYS_BOOT", ["reboot"]),
        ("CAP_SYS_CHROOT", ["chroot"]),
        ("CAP_SYS_MODULE", ["delete_module", "init_module", "finit_module"]),
        ("CAP_SYS_PACCT", ["acct"]),
        ("CAP_SYS_PTRACE", [
            "kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace",
        ]),
        ("CAP_SYS_RAWIO", ["iopl", "ioperm"]),
        ("CAP_SYS_TIME", ["settimeofday", "stime", "clock_settime", "clock_settime64"]),
        ("CAP_SYS_TTY_CONFIG", ["vhangup"]),
        ("CAP_SYS_NICE", ["get_mempolicy", "mbind", "set_mempolicy"]),
        ("CAP_SYSLOG", ["syslog"]),
        ("CAP_BPF", ["bpf"]),
        ("CAP_PERFMON", ["perf_event_open"]),
    ]

    /// The syscalls allowed unconditionally (the first rule of containerd's profile).
    static let allowed: [String] = [
        "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset", "chdir", "chmod",
        "chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64",
        "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range",
        "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1",
        "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd",
        "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64",
        "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown", "fchown32",
        "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr",
        "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
        "ftruncate64", "futex", "futex_time64", "futex_waitv", "futimesat", "getcpu", "getcwd", "getdents",
        "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups",
        "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
        "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list",
        "getrusage", "getsid", "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday",
        "getuid", "getuid32", "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1",
        "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents",
        "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit", "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset",
        "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr",
        "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "madvise",
        "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat",
        "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
        "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink",
        "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap",
        "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2", "pause", "pidfd_open",
        "pidfd_send_signal", "pipe", "pipe2", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv",
        "preadv2", "prlimit64", "process_mrelease", "pselect6", "pselect6_time64", "pwrite64", "pwritev",
        "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg",
        "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat", "renameat2",
        "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask",
        "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
        "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_get_priority_max",
        "sched_get_priority_min", "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
        "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp",
        "select", "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send", "sendfile",
        "sendfile64", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32",
        "setgid", "setgid32", "setgroups", "setgroups32", "setitimer", "setpgid", "setpriority", "setregid",
        "setregid32", "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32",
        "setrlimit", "set_robust_list", "setsid", "setsockopt", "set_thread_area", "set_tid_address", "setuid",
        "setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd",
        "signalfd4", "sigprocmask", "sigreturn", "socket", "socketcall", "socketpair", "splice", "stat",
        "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs",
        "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
        "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime",
        "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate", "truncate64",
        "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64",
        "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write", "writev",
    ]

    /// "major.minor" of a kernel release such as "6.1.0-18-amd64", as containerd's
    /// kernelversion package reads it; nil if it does not start that way.
    static func majorMinor(_ release: String) -> (Int, Int)? {
        let parts = release.split(separator: ".", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, let major = Int(parts[0]) else { return nil }
        let minorDigits = parts[1].prefix { $0.isASCII && $0.isNumber }
        guard let minor = Int(minorDigits) else { return nil }
        return (major, minor)
    }

    /// This machine's kernel release (`uname -r`), nil if uname fails.
    static func hostKernelRelease() -> String? {
        var u = utsname()
        guard uname(&u) == 0 else { return nil }
        return withUnsafeBytes(of: u.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
