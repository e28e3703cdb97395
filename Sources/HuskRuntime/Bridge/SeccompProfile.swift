import CShim
import HuskSystem
import SystemPackage

/// A seccomp profile of the runtime-spec compiled with libseccomp in the parent and exported
/// as a classic BPF program the child loads with one system call (DESIGN §3).
public struct SeccompProgram: Sendable {
    /// The struct sock_filter array, as bytes.
    public let instructions: [UInt8]
    public let count: Int
    public let flags: UInt32
}

public enum SeccompProfile {
    static let actions: Set<String> = [
        "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
        "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
    ]
    static let operators: [String: Int32] = [
        "SCMP_CMP_NE": CSHIM_SCMP_CMP_NE, "SCMP_CMP_LT": CSHIM_SCMP_CMP_LT, "SCMP_CMP_LE": CSHIM_SCMP_CMP_LE,
        "SCMP_CMP_EQ": CSHIM_SCMP_CMP_EQ, "SCMP_CMP_GE": CSHIM_SCMP_CMP_GE, "SCMP_CMP_GT": CSHIM_SCMP_CMP_GT,
        "SCMP_CMP_MASKED_EQ": CSHIM_SCMP_CMP_MASKED_EQ,
    ]
    /// Filter flags of the runtime-spec and their SECCOMP_FILTER_FLAG_* values.
    static let flagValues: [String: UInt32] = [
        "SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32,
    ]
    /// Whether the running kernel accepts a filter flag (a name of `flagValues`).
    static func isFlagSupported(_ name: String) -> Bool {
        guard let value = flagValues[name] else { return false }
        return cshim_seccomp_flag_supported(value) == 1
    }
    /// Architectures of the runtime-spec and libseccomp's names for them.
    static let architectures: [String: String] = [
        "SCMP_ARCH_X86": "x86", "SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_X32": "x32", "SCMP_ARCH_ARM": "arm",
        "SCMP_ARCH_AARCH64": "aarch64", "SCMP_ARCH_MIPS": "mips", "SCMP_ARCH_MIPS64": "mips64",
        "SCMP_ARCH_MIPS64N32": "mips64n32", "SCMP_ARCH_MIPSEL": "mipsel", "SCMP_ARCH_MIPSEL64": "mipsel64",
        "SCMP_ARCH_MIPSEL64N32": "mipsel64n32", "SCMP_ARCH_PPC": "ppc", "SCMP_ARCH_PPC64": "ppc64",
        "SCMP_ARCH_PPC64LE": "ppc64le", "SCMP_ARCH_S390": "s390", "SCMP_ARCH_S390X": "s390x",
        "SCMP_ARCH_PARISC": "parisc", "SCMP_ARCH_PARISC64": "parisc64", "SCMP_ARCH_RISCV64": "riscv64",
        "SCMP_ARCH_LOONGARCH64": "loongarch64",
    ]

    static func validate(_ sc: Spec.Seccomp, into p: inout SpecProblems) {
        if !actions.contains(sc.defaultAction) {
            p.error("linux.seccomp.defaultAction", "unknown action \"\(sc.defaultAction)\"")
        }
        if sc.defaultAction == "SCMP_ACT_NOTIFY" || sc.listenerPath != nil {
            p.error("linux.seccomp", "SCMP_ACT_NOTIFY and listenerPath are not supported yet")
        }
        if sc.defaultErrnoRet != nil && sc.defaultAction != "SCMP_ACT_ERRNO" && sc.defaultAction != "SCMP_ACT_TRACE" {
            p.error("linux.seccomp.defaultErrnoRet", "only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, not \(sc.defaultAction)")
        }
        for (i, a) in (sc.architectures ?? []).enumerated() where architectures[a] == nil {
            p.error("linux.seccomp.architectures[\(i)]", "unknown architecture \"\(a)\"")
        }
        for (i, f) in (sc.flags ?? []).enumerated() where flagValues[f] == nil {
            p.error("linux.seccomp.flags[\(i)]", "unknown flag \"\(f)\"")
        }
        for (i, s) in (sc.syscalls ?? []).enumerated() {
            if !actions.contains(s.action) {
                p.error("linux.seccomp.syscalls[\(i)].action", "unknown action \"\(s.action)\"")
            }
            if s.action == "SCMP_ACT_NOTIFY" {
                p.error("linux.seccomp.syscalls[\(i)].action", "SCMP_ACT_NOTIFY is not supported yet")
            }
            if s.names.isEmpty { p.error("linux.seccomp.syscalls[\(i)].names", "must not be empty") }
            // config-linux.md: errnoRet only for actions that return an errno.
            if s.errnoRet != nil && s.action != "SCMP_ACT_ERRNO" && s.action != "SCMP_ACT_TRACE" {
                p.error("linux.seccomp.syscalls[\(i)].errnoRet", "only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, not \(s.action)")
            }
            for (j, a) in (s.args ?? []).enumerated() {
                if operators[a.op] == nil {
                    p.error("linux.seccomp.syscalls[\(i)].args[\(j)].op", "unknown operator \"\(a.op)\"")
                }
                if a.index > 5 { p.error("linux.seccomp.syscalls[\(i)].args[\(j)].index", "must be 0...5") }
            }
        }
    }

    static func action(_ name: String, errnoRet: UInt32?, defaultErrno: UInt32) -> UInt32 {
        switch name {
        case "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD": return CSHIM_SCMP_ACT_KILL_THREAD
        case "SCMP_ACT_KILL_PROCESS": return CSHIM_SCMP_ACT_KILL_PROCESS
        case "SCMP_ACT_TRAP": return CSHIM_SCMP_ACT_TRAP
        case "SCMP_ACT_ERRNO": return CSHIM_SCMP_ACT_ERRNO_BASE | ((errnoRet ?? defaultErrno) & 0xffff)
        case "SCMP_ACT_TRACE": return CSHIM_SCMP_ACT_TRACE_BASE | ((errnoRet ?? defaultErrno) & 0xffff)
        case "SCMP_ACT_LOG": return CSHIM_SCMP_ACT_LOG
        case "SCMP_ACT_NOTIFY": return CSHIM_SCMP_ACT_NOTIFY
        default: return CSHIM_SCMP_ACT_ALLOW
        }
    }

    /// Compiles a (validated) profile. Syscall names this libseccomp does not know are skipped
    /// and returned as warnings, as runc does.
    public static func compile(_ sc: Spec.Seccomp) throws(HuskError) -> (SeccompProgram, warnings: [String]) {
        let eperm: UInt32 = 1
        let defaultAction = action(sc.defaultAction, errnoRet: sc.defaultErrnoRet, defaultErrno: eperm)
        guard let ctx = cshim_seccomp_new(defaultAction) else {
            throw HuskError(.invalidArgument, "linux.seccomp.defaultAction: libseccomp refused \(sc.defaultAction)")
        }
        defer { cshim_seccomp_release(ctx) }
        for (i, arch) in (sc.architectures ?? []).enumerated() {
            guard let name = architectures[arch] else { continue }
            let r = cshim_seccomp_add_arch(ctx, name)
            if r < 0 {
                throw HuskError(
                    .invalidArgument, "linux.seccomp.architectures[\(i)]: \(arch): \(Errno.describe(-r))")
            }
        }
        var warnings: [String] = []
        for (i, rule) in (sc.syscalls ?? []).enumerated() {
            let act = action(rule.action, errnoRet: rule.errnoRet, defaultErrno: eperm)
            let args = (rule.args ?? []).map {
                cshim_seccomp_arg(index: $0.index, op: operators[$0.op] ?? CSHIM_SCMP_CMP_EQ, value: $0.value,
                                  value_two: $0.valueTwo ?? 0)
            }
            // libseccomp refuses two conditions on one argument in a rule; runc then adds one
            // rule per condition (any of them matches).
            let indexes = args.map(\.index)
            let groups: [[cshim_seccomp_arg]] = Set(indexes).count == indexes.count ? [args] : args.map { [$0] }
            for name in rule.names {
                for group in groups {
                    let r = group.withUnsafeBufferPointer { buf in
                        cshim_seccomp_add_rule(ctx, act, name, buf.baseAddress, UInt32(buf.count))
                    }
                    if r == -ENOENT {
                        warnings.append("linux.seccomp.syscalls[\(i)]: unknown syscall \"\(name)\" is skipped")
                        break
                    }
                    if r < 0 {
                        throw HuskError(
                            .invalidArgument, "linux.seccomp.syscalls[\(i)]: \(name): \(Errno.describe(-r)) (libseccomp)")
                    }
                }
            }
        }
        var out: UnsafeMutableRawPointer? = nil
        var count = 0
        let r = cshim_seccomp_export(ctx, &out, &count)
        guard r == 0, let out else {
            throw HuskError(.internalError, "exporting the seccomp filter failed: \(Errno.describe(-r))")
        }
        defer { cshim_seccomp_free_program(out) }
        let bytes = Array(UnsafeRawBufferPointer(start: out, count: count * 8))
        var flags: UInt32 = 0
        for f in sc.flags ?? [] { flags |= flagValues[f] ?? 0 }
        return (SeccompProgram(instructions: bytes, count: count, flags: flags), warnings)
    }
}

#if canImport(Glibc)
import Glibc
#endif
