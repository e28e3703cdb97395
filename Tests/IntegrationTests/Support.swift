import Foundation
import HuskRuntime
import HuskSystem
import Testing

/// What the integration tier needs from the host. A test that needs something missing is
/// skipped with the reason printed (never silently passed).
enum Host {
    static let isRoot = geteuid() == 0
    static let busybox: String? = ["/bin/busybox", "/usr/bin/busybox"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static let cgroup2: Cgroup2Mount? = try? Cgroup2Mount.discover()
    static var canRunContainers: Bool { isRoot && busybox != nil && cgroup2 != nil }
    static var skipReason: Comment {
        if !isRoot { return "needs root (real namespaces, mounts and cgroups)" }
        if busybox == nil { return "needs busybox-static (Scripts/install-deps.sh installs it)" }
        return "needs a cgroup2 mount"
    }
}

/// The husk-runc binary built next to this test bundle.
let huskRuncPath: String = {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
    var dir = (exe as NSString).deletingLastPathComponent
    while !dir.isEmpty && dir != "/" {
        let candidate = dir + "/husk-runc"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = (dir as NSString).deletingLastPathComponent
    }
    return "husk-runc"
}()

/// A temporary directory under /tmp named husk-test-*, removed (and checked) by `cleanup()`.
final class Scratch: @unchecked Sendable {
    let path: String

    init(_ name: String = #function) {
        let clean = name.filter { $0.isLetter || $0.isNumber }.prefix(24)
        path = NSTemporaryDirectory() + "husk-test-\(clean)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// Checks nothing is mounted below the directory, then removes it (never crossing a mount).
    func cleanup(sourceLocation: SourceLocation = #_sourceLocation) {
        let mounts = (try? MountInfo.read()) ?? []
        let leaked = mounts.filter { $0.mountPoint.hasPrefix(path) }
        #expect(leaked.isEmpty, "mounts left below \(path): \(leaked.map(\.mountPoint))", sourceLocation: sourceLocation)
        do {
            try Files.removeTree(path)
        } catch {
            Issue.record("cannot remove \(path): \(error)", sourceLocation: sourceLocation)
        }
    }
}

/// A bundle with a busybox rootfs and a config.json made from `Spec.runtimeDefault()`.
struct TestBundle {
    let path: String
    var spec: Spec

    var rootfs: String { path + "/rootfs" }

    init(in scratch: Scratch, name: String = "bundle", args: [String] = ["true"]) throws {
        path = scratch.path + "/" + name
        try TestBundle.makeBusyboxRootfs(path + "/rootfs")
        spec = Spec.runtimeDefault(args: args)
        spec.process?.capabilities?.ambient = nil
        spec.hostname = "husk-test"
    }

    /// A root filesystem with busybox and a symlink per applet.
    static func makeBusyboxRootfs(_ rootfs: String) throws {
        let fm = FileManager.default
        for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "root"] {
            try fm.createDirectory(atPath: rootfs + "/" + d, withIntermediateDirectories: true)
        }
        try fm.copyItem(atPath: Host.busybox!, toPath: rootfs + "/bin/busybox")
        for applet in busyboxApplets where applet != "busybox" {
            try? fm.createSymbolicLink(atPath: rootfs + "/bin/" + applet, withDestinationPath: "busybox")
        }
        try "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
            .write(toFile: rootfs + "/etc/passwd", atomically: false, encoding: .utf8)
        try "root:x:0:\nnogroup:x:65534:\n".write(toFile: rootfs + "/etc/group", atomically: false, encoding: .utf8)
    }

    static let busyboxApplets: [String] = {
        let r = run([Host.busybox ?? "/bin/busybox", "--list"])
        return r.stdout.split(separator: "\n").map(String.init)
    }()

    func write() throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .withoutEscapingSlashes]
        try e.encode(spec).write(to: URL(fileURLWithPath: path + "/config.json"))
    }

    /// No pid namespace of its own (and so no /proc mount, whose masks would have nothing to
    /// mask): the program is not the init of a pid namespace, so signals with default actions
    /// reach it from outside and its children can outlive it.
    mutating func dropPidNamespace() {
        spec.linux?.namespaces?.removeAll { $0.type == "pid" }
        spec.mounts?.removeAll { $0.type == "proc" }
        spec.linux?.maskedPaths = []
        spec.linux?.readonlyPaths = []
    }

    /// Sets the command and writes config.json.
    mutating func command(_ args: [String]) throws {
        spec.process?.args = args
        try write()
    }
}

struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a program to completion, capturing its output.
@discardableResult
func run(_ argv: [String], stdin: String? = nil, timeout: TimeInterval = 60) -> RunResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: argv[0])
    p.arguments = Array(argv.dropFirst())
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = stdin == nil ? FileHandle.nullDevice : Pipe()
    do {
        try p.run()
    } catch {
        return RunResult(status: -1, stdout: "", stderr: "cannot run \(argv[0]): \(error)")
    }
    if let stdin, let pipe = p.standardInput as? Pipe {
        pipe.fileHandleForWriting.write(stdin.data(using: .utf8)!)
        try? pipe.fileHandleForWriting.close()
    }
    let group = DispatchGroup()
    let outData = DataBox()
    let errData = DataBox()
    group.enter()
    DispatchQueue.global().async {
        outData.data = out.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    group.enter()
    DispatchQueue.global().async {
        errData.data = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    if group.wait(timeout: .now() + timeout) == .timedOut {
        p.terminate()
    }
    p.waitUntilExit()
    return RunResult(
        status: p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus,
        stdout: String(decoding: outData.data, as: UTF8.self), stderr: String(decoding: errData.data, as: UTF8.self))
}

/// Output collected by a reader thread (read after DispatchGroup.wait, which orders the accesses).
final class DataBox: @unchecked Sendable {
    var data = Data()
}

/// husk-runc with a test root.
struct Runc {
    let root: String

    init(_ scratch: Scratch) {
        root = scratch.path + "/state"
    }

    @discardableResult
    func callAsFunction(_ args: String..., timeout: TimeInterval = 60) -> RunResult {
        run([huskRuncPath, "--root", root] + args, timeout: timeout)
    }

    func state(_ id: String) -> [String: Any]? {
        let r = self("state", id)
        guard r.status == 0 else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any]
    }

    /// `create` with output to files: the container inherits create's stdio, and must not hold
    /// our pipes open after create returns.
    func create(_ id: String, bundle: String, extra: [String] = []) -> RunResult {
        let errFile = root + ".create-\(id).err"
        try? FileManager.default.createDirectory(atPath: (root as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var r = run(
            ["/bin/sh", "-c", "r=$1; b=$2; e=$3; shift 3; exec \"$0\" --root \"$r\" create --bundle \"$b\" \"$@\" >/dev/null 2>\"$e\"",
             huskRuncPath, root, bundle, errFile] + extra + [id])
        r.stderr = (try? String(contentsOfFile: errFile, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: errFile)
        return r
    }
}

/// Checks that a container left nothing behind: no state dir, no cgroup dir, no process.
func expectGone(_ id: String, runc: Runc, pid: Int32? = nil, cgroup: String? = nil,
                sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(!FileManager.default.fileExists(atPath: runc.root + "/" + id), "state dir of \(id) left", sourceLocation: sourceLocation)
    let cg = cgroup ?? "/husk/runc/\(id)"
    if let m = Host.cgroup2 {
        #expect(!FileManager.default.fileExists(atPath: m.path + cg), "cgroup \(cg) left", sourceLocation: sourceLocation)
    }
    if let pid {
        #expect(!processExists(pid), "process \(pid) of \(id) still exists", sourceLocation: sourceLocation)
    }
}

func uniqueID(_ base: String = #function) -> String {
    let clean = base.filter { $0.isLetter || $0.isNumber }.prefix(20)
    return "t-\(clean)-\(UUID().uuidString.prefix(8).lowercased())"
}

/// The inode of one of our namespaces, e.g. "net:[4026531840]".
func hostNamespace(_ type: String) -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/\(type)")) ?? ""
}

/// Whether a process still runs. A zombie has ended: if it is ours (this test process may be
/// the subreaper that adopted an orphaned container), reap it.
func processExists(_ pid: Int32) -> Bool {
    guard kill(pid, 0) == 0 else { return false }
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return false }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    if fields.first == "Z" {
        if fields.count > 1, Int32(fields[1]) == getpid() { waitpid(pid, nil, WNOHANG) }
        return false
    }
    return true
}
