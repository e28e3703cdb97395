import ArgumentParser
import HuskJSON
import HuskOptions
import HuskPod
import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Resource usage of running containers, from their cgroup files (as crictl stats).",
        discussion: """
            CPU is cpu.stat usage_usec (seconds used so far); MEM memory.current, PEAK memory.peak, WS the \
            working set (memory.current less inactive_file), PIDS pids.current. A file the host's cgroup2 \
            lacks (its controller is not enabled for Husk) shows as - and is left out of the JSON.
            """)

    @OptionGroup var globals: GlobalOptions
    @OptionGroup var selector: PodSelector
    @Option(name: .shortAndLong, help: "table or json (crictl's ListContainerStats shape, plus pids).")
    var output: OutputFormat = .table
    @Argument(help: "Only this pod (name or UID).")
    var pod: String?

    func run() throws {
        try runReporting {
            let pods = try globals.pods(pod, selector)
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            // int64 and uint64 as strings, as protobuf's JSON mapping (crictl -o json) writes them.
            let nanos = JSONValue.string(String(Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)))
            var rows = [["CONTAINER", "NAME", "CPU(s)", "MEM", "WS", "PEAK", "PIDS", "POD"]]
            var items: [JSONValue] = []
            func value(_ v: UInt64) -> JSONValue { .object(["value": .string(String(v))]) }
            func show(_ v: UInt64?, bytes: Bool = true) -> String { v.map { bytes ? Out.size(Int64(clamping: $0)) : String($0) } ?? "-" }
            for s in try PodDirectory.stats(pods) {
                let (p, c, i, f) = (s.pod, s.container, s.instance, s.figures)
                let usage = f.cpu["usage_usec"]
                rows.append([
                    String(i.id.prefix(13)), c.name, usage.map { "\($0 / 1_000_000).\(String(($0 % 1_000_000) / 10_000 + 100).dropFirst())" } ?? "-",
                    show(f.memoryCurrent), show(f.workingSet), show(f.memoryPeak), show(f.pidsCurrent, bytes: false), p.pod.metadata.name,
                ])
                var o: [String: JSONValue] = [
                    "attributes": .object([
                        "id": .string(i.id),
                        "metadata": .object(["name": .string(c.name), "attempt": .number(Double(i.attempt))]),
                        "labels": PS.labels(p, c),
                    ]),
                ]
                if let usage {
                    o["cpu"] = .object(["timestamp": nanos, "usageCoreNanoSeconds": value(usage * 1000)])
                }
                if let current = f.memoryCurrent {
                    var m: [String: JSONValue] = ["timestamp": nanos, "usageBytes": value(current)]
                    if let ws = f.workingSet { m["workingSetBytes"] = value(ws) }
                    if let peak = f.memoryPeak { m["peakBytes"] = value(peak) }
                    o["memory"] = .object(m)
                }
                if let pids = f.pidsCurrent { o["pids"] = .object(["timestamp": nanos, "current": value(pids)]) }
                items.append(.object(o))
            }
            if output != .table {
                let doc: JSONValue = .object(["stats": .array(items)])
                Out.document(doc, as: output)
                return
            }
            Out.out(Out.table(rows))
        }
    }
}
