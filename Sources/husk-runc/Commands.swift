import FoundationEssentials
import HuskJSON
import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// Where `main` keeps the signalfd of a foreground run.
enum RuncSignals {
    nonisolated(unsafe) static var forwarding: SignalFD? = nil  // set once in main before any thread
}

/// The verbs of husk-runc. Each is thin: parse, call HuskRuntime, print (DESIGN §1).
enum Runc {
    static let version = "0.1.0"

    /// Runs a parsed command line; returns the exit status. Errors become one line on stderr
    /// (and a record in --log).
    static func main(_ cl: ParsedCommandLine) -> Int32 {
        if cl.wantsVersion {
            FileHandleOut.stdout("husk-runc version \(version)\nspec: \(Spec.version)\n")
            return 0
        }
        if cl.wantsHelp {
            FileHandleOut.stdout(RuncCLI.helpText(for: cl.command))
            return 0
        }
        let format = LogFormat(rawValue: cl.global("log-format") ?? "text") ?? .text
        Log.shared.configure(path: cl.global("log"), format: format, debug: cl.globals["debug"] != nil)
        do {
            if let f = cl.global("log-format"), LogFormat(rawValue: f) == nil {
                throw HuskError(.invalidArgument, "--log-format: \"\(f)\" is not text or json")
            }
            if cl.globals["systemd-cgroup"] != nil {
                throw HuskError(.unsupported, "--systemd-cgroup is not supported: Husk manages cgroupfs directly")
            }
            if cl.global("rootless") == "true" {
                throw HuskError(.unsupported, "--rootless is not supported: husk-runc must run as root")
            }
            let rootPath = cl.global("root") ?? "/run/husk-runc"
            if Files.clean(Files.absolute(rootPath)) == "/" {
                throw HuskError(.invalidArgument, "--root must not be /")
            }
            let root = RuntimeRoot(rootPath)
            switch cl.command {
            case "create": try create(cl, root)
            case "start": try Container.load(cl.args[0], root: root).start(warn: { Log.shared.warn($0) })
            case "state": FileHandleOut.stdout(try Container.load(cl.args[0], root: root).state().json() + "\n")
            case "kill": try kill(cl, root)
            case "delete": try delete(cl, root)
            case "run": return try run(cl, root)
            case "list": try list(cl, root)
            case "spec": try spec(cl)
            case "features": FileHandleOut.stdout(try prettyJSON(Features.current()) + "\n")
            case "pause": try Container.load(cl.args[0], root: root).pause()
            case "resume": try Container.load(cl.args[0], root: root).resume()
            case "ps": try ps(cl, root)
            case "exec": return try exec(cl, root)
            case "update": try update(cl, root)
            case "events": try events(cl, root)
            default: throw HuskError(.invalidArgument, "no command given")
            }
            return 0
        } catch {
            Log.shared.error("\(error)")
            return 1
        }
    }

    static func createOptions(_ cl: ParsedCommandLine) throws(HuskError) -> Container.CreateOptions {
        if cl.flag("no-pivot") {
            throw HuskError(.unsupported, "--no-pivot is not supported: the container root always gets pivot_root")
        }
        var o = Container.CreateOptions()
        o.pidFile = cl.value("pid-file")
        if let path = cl.value("console-socket") { o.consoleSocket = try connectConsole(path) }
        o.newKeyring = !cl.flag("no-new-keyring")
        o.warn = { Log.shared.warn($0) }
        o.ignoreMissingControllers = ignoreMissingControllers(cl)
        o.preserveFDs = try preservedFDs(cl)
        return o
    }

    /// Connects to the caller's console socket (a listening unix stream socket, as go-runc's).
    static func connectConsole(_ path: String) throws(HuskError) -> FD {
        do {
            return try UnixSocket.connect(path)
        } catch {
            throw HuskError(.invalidArgument, "--console-socket: cannot connect to \(path): \(error.errno.text)")
        }
    }

    static func preservedFDs(_ cl: ParsedCommandLine) throws(HuskError) -> [FD] {
        guard let n = cl.value("preserve-fds") else { return [] }
        guard let count = Int(n), count >= 0 else {
            throw HuskError(.invalidArgument, "--preserve-fds: \"\(n)\" is not a number of fds")
        }
        var out: [FD] = []
        for i in 0..<count {
            let fd = dup(Int32(3 + i))
            if fd < 0 { throw HuskError(.invalidArgument, "--preserve-fds \(count): fd \(3 + i) is not open") }
            out.append(FD(adopting: fd))
        }
        return out
    }

    static func ignoreMissingControllers(_ cl: ParsedCommandLine) -> Bool {
        if cl.globals["ignore-missing-controllers"] != nil { return true }
        guard let v = getenv("HUSK_RUNC_IGNORE_MISSING_CONTROLLERS") else { return false }
        return ["1", "true", "yes"].contains(String(cString: v))
    }

    static func create(_ cl: ParsedCommandLine, _ root: RuntimeRoot) throws(HuskError) {
        _ = try Container.create(id: cl.args[0], bundle: cl.value("bundle") ?? ".", root: root, options: createOptions(cl))
    }

    static func run(_ cl: ParsedCommandLine, _ root: RuntimeRoot) throws(HuskError) -> Int32 {
        var options = try createOptions(cl)
        let bundle = cl.value("bundle") ?? "."
        if cl.flag("detach") {
            let (container, process) = try Container.create(id: cl.args[0], bundle: bundle, root: root, options: options)
            do throws(HuskError) {
                try container.startReporting(process, warn: options.warn)
                do {
                    try process.waitExec()
                } catch {
                    throw HuskError(.invalidArgument, "cannot start container \(container.id): \(error)")
                }
            } catch {
                try? container.delete(force: true, warn: options.warn)
                throw error
            }
            return 0
        }
        // A terminal without --console-socket: the pty is relayed here (as runc run).
        let console = ForegroundConsole()
        options.foregroundConsole = console
        let status = try Container.runForeground(
            id: cl.args[0], bundle: bundle, root: root, options: options, signals: RuncSignals.forwarding,
            keep: cl.flag("keep"),
            wait: { process in
                guard let pair = console.pair else { return Container.waitForwarding(process.pidfd, signals: RuncSignals.forwarding) }
                guard let master = pair.receiveMaster() else {
                    Log.shared.error("run: no terminal came back from the container")
                    try? process.pidfd.signal(SIGKILL)
                    return Container.waitForwarding(process.pidfd, signals: nil)
                }
                return relayTerminal(master: master, process: process, signals: RuncSignals.forwarding)
            })
        return status.code
    }

    static func kill(_ cl: ParsedCommandLine, _ root: RuntimeRoot) throws(HuskError) {
        // As runc: the container first (a missing one is the error to report), then the signal.
        let container = try Container.load(cl.args[0], root: root)
        let name = cl.args.count > 1 ? cl.args[1] : "SIGTERM"
        guard let sig = Signals.parse(name) else { throw HuskError(.invalidArgument, "unknown signal \"\(name)\"") }
        try container.kill(sig, all: cl.flag("all"))
    }

    static func delete(_ cl: ParsedCommandLine, _ root: RuntimeRoot) throws(HuskError) {
        let c: Container
        do {
            c = try Container.load(cl.args[0], root: root)
        } catch where error.code == .notFound && cl.flag("force") {
            return  // as runc: delete --force of a missing container succeeds
        }
        try c.delete(force: cl.flag("force"), warn: { Log.shared.warn($0) })
    }

    static func list(_ cl: ParsedCommandLine, _ root: RuntimeRoot) throws(HuskError) {
        let states = root.ids().compactMap { try? Container.load($0, root: root).state() }
        if cl.flag("quiet") {
            for s in states { FileHandleOut.stdout(s.id + "\n") }
            return
        }
        switch cl.value("format") ?? "table" {
        case "json":
            // As runc: owner filled in, and `null` when there is no container.
            let items = states.map { s -> String in
                var s = s
                s.owner = s.owner.isEmpty ? "root" : s.owner
                return s.json(indent: nil)
            }
            FileHandleOut.stdout((items.isEmpty ? "null" : JSONText.array(items)) + "\n")
        case "table":
            var rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
            for s in states {
                rows.append([s.id, "\(s.pid)", s.status.rawValue, s.bundle, s.created, s.owner.isEmpty ? "root" : s.owner])
            }
            FileHandleOut.stdout(table(rows))
        case let f:
            throw HuskError(.invalidArgument, "--format: \"\(f)\" is not table or json")
        }
    }

    /// runc ps: the container's pids as JSON, or `ps` (default `-ef`) cut to the lines of its
    /// processes, header kept.
    static func ps(_ cl: ParsedCommandLine, _ root: RuntimeRoot) throws(HuskError) {
        let c = try Container.load(cl.args[0], root: root)
        let pids = c.processes()
        switch cl.value("format") ?? "table" {
        case "json":
            FileHandleOut.stdout("[" + pids.map(String.init).joined(separator: ",") + "]\n")
        case "table":
            let options = cl.args.count > 1 ? Array(cl.args.dropFirst()) : ["-ef"]
            // ps's output is read whole, then it is reaped; its errors go to our stderr.
            let output: [UInt8]
            let status: ExitStatus
            do {
                let (r, w) = try makePipe()
                var plan = SpawnPlan.host(argv: ["ps"] + options, env: ["PATH=/usr/bin:/bin", "LC_ALL=C"])
                plan.stdio = [nil, w, nil]
                let p = try Spawner.spawn(plan)
                plan.stdio = [nil, nil, nil]
                _ = consume w
                output = try r.readAll()
                status = try p.pidfd.wait()
            } catch {
                throw HuskError(.system, "cannot run ps", cause: error)
            }
            guard status.code == 0 else { throw HuskError(.system, "ps \(options.joined(separator: " ")) failed with status \(status.code)") }
            let lines = String(decoding: output, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            guard let header = lines.first, let column = header.split(separator: " ").firstIndex(of: "PID") else {
                throw HuskError(.invalidArgument, "ps \(options.joined(separator: " ")): no PID column in its output")
            }
            let wanted = Set(pids)
            var out = String(header) + "\n"
            for line in lines.dropFirst() {
                let fields = line.split(separator: " ")
                if column < fields.count, let pid = Int32(fields[column]), wanted.contains(pid) { out += line + "\n" }
            }
            FileHandleOut.stdout(out)
        case let f:
            throw HuskError(.invalidArgument, "--format: \"\(f)\" is not table or json")
        }
    }

    static func spec(_ cl: ParsedCommandLine) throws(HuskError) {
        if cl.flag("rootless") { throw HuskError(.unsupported, "spec --rootless: rootless containers are not supported") }
        let path = Files.absolute(cl.value("bundle") ?? ".") + "/config.json"
        if Files.exists(path) { throw HuskError(.alreadyExists, "File \(path) exists. Remove it first") }
        let text = try prettyJSON(Spec.runtimeDefault()) + "\n"
        do {
            try Files.writeAtomically(path, Array(text.utf8), mode: 0o644)
        } catch {
            throw HuskError(.system, "cannot write \(path)", cause: error)
        }
    }
}

func table(_ rows: [[String]]) -> String {
    guard let first = rows.first else { return "" }
    var widths = [Int](repeating: 0, count: first.count)
    for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
    var out = ""
    for r in rows {
        var line = ""
        for (i, c) in r.enumerated() {
            line += c
            if i < r.count - 1 { line += String(repeating: " ", count: widths[i] - c.count + 4) }
        }
        out += line + "\n"
    }
    return out
}

func prettyJSON(_ value: some Encodable) throws(HuskError) -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .withoutEscapingSlashes]
    do {
        return String(decoding: try e.encode(value), as: UTF8.self)
    } catch {
        throw HuskError(.internalError, "cannot encode JSON: \(error)")
    }
}


// MARK: - update, events

extension Runc {
    /// runc's units.RAMInBytes: a number with an optional binary suffix (k, m, g, t, p, with
    /// optional i and b), or -1.
    static func ramBytes(_ s: String, flag: String) throws(HuskError) -> Int64 {
        if s == "-1" { return -1 }
        var digits = Substring(s.lowercased())
        if digits.hasSuffix("b") { digits = digits.dropLast() }
        if digits.hasSuffix("i") { digits = digits.dropLast() }
        var mult: Double = 1
        if let last = digits.last, let i = "kmgtp".firstIndex(of: last) {
            mult = pow(1024, Double("kmgtp".distance(from: "kmgtp".startIndex, to: i) + 1))
            digits = digits.dropLast()
        }
        guard let v = Double(digits.filter { $0 != " " }), v >= 0 else {
            throw HuskError(.invalidArgument, "--\(flag): \"\(s)\" is not a size (such as 512k, 100m, 1g, or -1)")
        }
        return Int64(v * mult)
    }

    static func update(_ cl: ParsedCommandLine, _ root: RuntimeRoot) throws(HuskError) {
        let c = try Container.load(cl.args[0], root: root)
        var r = Spec.Resources()
        if let file = cl.value("resources") {
            let bytes: [UInt8]
            do {
                if file == "-" {
                    bytes = try FD(adopting: dup(0)).readAll()
                } else {
                    guard let b = try Files.read(file) else { throw HuskError(.invalidArgument, "--resources: \(file): No such file or directory") }
                    bytes = b
                }
            } catch {
                throw HuskError(.invalidArgument, "--resources: cannot read \(file)", cause: error)
            }
            do {
                r = try JSONDecoder().decode(Spec.Resources.self, from: Data(bytes))
            } catch {
                throw HuskError(.invalidArgument, "--resources \(file): \(JSONPath.describe(error))")
            }
        } else {
            func int(_ flag: String) throws(HuskError) -> Int64? {
                guard let v = cl.value(flag) else { return nil }
                guard let n = Int64(v) else { throw HuskError(.invalidArgument, "--\(flag): \"\(v)\" is not a number") }
                return n
            }
            func uint(_ flag: String) throws(HuskError) -> UInt64? {
                guard let v = cl.value(flag) else { return nil }
                guard let n = UInt64(v) else { throw HuskError(.invalidArgument, "--\(flag): \"\(v)\" is not a positive number") }
                return n
            }
            for f in ["l3-cache-schema", "mem-bw-schema"] where cl.value(f) != nil {
                throw HuskError(.unsupported, "--\(f): Intel RDT is not supported")
            }
            var cpu = Spec.Resources.CPU()
            cpu.shares = try uint("cpu-share")
            cpu.period = try uint("cpu-period")
            cpu.quota = try int("cpu-quota")
            cpu.realtimePeriod = try uint("cpu-rt-period")
            cpu.realtimeRuntime = try int("cpu-rt-runtime")
            cpu.cpus = cl.value("cpuset-cpus")
            cpu.mems = cl.value("cpuset-mems")
            if cpu != .init() { r.cpu = cpu }
            var mem = Spec.Resources.Memory()
            mem.limit = try cl.value("memory").map { v throws(HuskError) in try ramBytes(v, flag: "memory") }
            mem.reservation = try cl.value("memory-reservation").map { v throws(HuskError) in try ramBytes(v, flag: "memory-reservation") }
            mem.swap = try cl.value("memory-swap").map { v throws(HuskError) in try ramBytes(v, flag: "memory-swap") }
            mem.kernel = try cl.value("kernel-memory").map { v throws(HuskError) in try ramBytes(v, flag: "kernel-memory") }
            mem.kernelTCP = try cl.value("kernel-memory-tcp").map { v throws(HuskError) in try ramBytes(v, flag: "kernel-memory-tcp") }
            if mem != .init() { r.memory = mem }
            if let p = try int("pids-limit") {
                var pids = Spec.Resources.Pids()
                pids.limit = p
                r.pids = pids
            }
            if let w = try uint("blkio-weight") {
                var b = Spec.Resources.BlockIO()
                b.weight = UInt16(clamping: w)
                r.blockIO = b
            }
        }
        for w in try c.update(r, ignoreMissing: ignoreMissingControllers(cl)) { Log.shared.warn(w) }
    }

    static func events(_ cl: ParsedCommandLine, _ root: RuntimeRoot) throws(HuskError) {
        let c = try Container.load(cl.args[0], root: root)
        if c.status == .stopped { throw HuskError(.invalidState, "container \(c.id) is not running") }
        if cl.flag("stats") {
            FileHandleOut.stdout(try compactJSON(c.stats()) + "\n")
            return
        }
        let text = cl.value("interval") ?? "5s"
        guard let interval = goDuration(text), interval > 0 else {
            throw HuskError(.invalidArgument, "--interval: \"\(text)\" is not a duration (such as 5s, 500ms)")
        }
        var ooms = c.oomKills
        var next = Clock.monotonicSeconds()
        while c.status != .stopped {
            let now = Clock.monotonicSeconds()
            if now >= next {
                if let s = try? c.stats() { FileHandleOut.stdout(try compactJSON(s) + "\n") }
                next = now + interval
            }
            let o = c.oomKills
            if o > ooms {
                FileHandleOut.stdout(try compactJSON(.object(["type": .string("oom"), "id": .string(c.id)])) + "\n")
                ooms = o
            }
            usleep(UInt32(min(0.1, max(0.001, next - Clock.monotonicSeconds())) * 1_000_000))
        }
    }
}

func compactJSON(_ value: JSONValue) throws(HuskError) -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    do {
        return String(decoding: try e.encode(value), as: UTF8.self)
    } catch {
        throw HuskError(.internalError, "cannot encode JSON: \(error)")
    }
}

/// A Go duration ("5s", "500ms", "1m30s") in seconds.
func goDuration(_ s: String) -> Double? {
    let units: [(String, Double)] = [("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600)]
    var rest = Substring(s)
    var total = 0.0
    guard !rest.isEmpty else { return nil }
    while !rest.isEmpty {
        let num = rest.prefix { $0.isNumber || $0 == "." }
        guard !num.isEmpty, let v = Double(num) else { return nil }
        rest = rest.dropFirst(num.count)
        guard let (u, m) = units.first(where: { rest.hasPrefix($0.0) && !(($0.0 == "m") && rest.hasPrefix("ms")) }) else { return nil }
        rest = rest.dropFirst(u.count)
        total += v * m
    }
    return total
}
