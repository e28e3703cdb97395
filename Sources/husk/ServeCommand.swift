import ArgumentParser
import HuskOptions
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// `husk serve`: the CRI v1 gRPC daemon. It is a program of its own, `husk-serve`, installed
/// next to `husk`: the gRPC stack stays out of `husk` (and so out of every pod's supervisor,
/// which is `husk supervise`), whose start time and memory are benchmark figures. This command
/// only execs it with the same arguments, global flags included (main.swift, before the
/// argument parser: its flags are husk-serve's, which husk's parser does not know).
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the CRI v1 gRPC API (kubelet, crictl) on a unix socket: runs husk-serve.",
        discussion: "Every argument goes to husk-serve (found next to husk); `husk serve --help` shows its flags.")

    @Argument(parsing: .captureForPassthrough, help: "husk-serve's flags (--listen PATH and the global flags).")
    var arguments: [String] = []

    /// Where `serve` is the subcommand in `argv`: the first `serve` that only global flags come
    /// before (`husk --root R serve --listen P`; `husk --root serve serve` names the root
    /// "serve"). Found with the argument parser's own idea of GlobalOptions, because the flags
    /// after `serve` are husk-serve's and husk's parser must never see them.
    static func index(in argv: [String]) -> Int? {
        for i in argv.indices.dropFirst() where argv[i] == "serve" {
            if (try? GlobalOptions.parse(Array(argv[1..<i]))) != nil { return i }
        }
        return nil
    }

    /// Execs husk-serve with every argument but `serve` itself (main.swift calls this before
    /// the argument parser runs); returns only on failure, with the exit status.
    static func exec(_ argv: [String], at index: Int) -> Int32 {
        guard let program = try? daemonPath() else { return 1 }
        let args = [program] + argv[1..<index] + argv[(index + 1)...]
        // execv returns only on failure; its strings live until then.
        var cArgs = args.map { strdup($0) } + [nil]
        execv(program, &cArgs)
        let e = currentErrno
        for p in cArgs { free(p) }
        Out.err("husk: serve: cannot run \(program): \(e.text)\n")
        return 1
    }

    func run() throws {
        // main.swift execs husk-serve before the parser gets here; a `serve` it did not take
        // for the subcommand is a mistake of the command line.
        Out.err("husk: serve: give the global flags before `serve` and husk-serve's after it\n")
        throw ExitCode(1)
    }

    /// `husk-serve` in the directory of the running `husk` (/proc/self/exe, symlinks resolved).
    static func daemonPath() throws(ExitCode) -> String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else {
            Out.err("husk: serve: cannot find the husk executable (/proc/self/exe): \(currentErrno.text)\n")
            throw ExitCode(1)
        }
        let me = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let dir = me.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let path = (dir.isEmpty ? "" : dir) + "/husk-serve"
        guard access(path, X_OK) == 0 else {
            Out.err("husk: serve: \(path): \(currentErrno.text): husk-serve, the CRI daemon, is installed next to husk (build it with `swift build --product husk-serve`)\n")
            throw ExitCode(1)
        }
        return path
    }
}
