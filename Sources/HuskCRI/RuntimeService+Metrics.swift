import GRPCCore
import HuskJSON
import HuskPod
import HuskRuntime
import HuskSystem

// The CRI metrics RPCs (ListMetricDescriptors, ListPodSandboxMetrics, StreamPodSandboxMetrics),
// which kubelet's /metrics/cadvisor reads with the PodAndContainerStatsFromCRI gate: cAdvisor's
// names and help texts, containerd 2.2's label keys (pod, namespace, container, id, image, then
// a metric's own), every group always on as containerd has them. Values come from the cgroup
// files (as ContainerStats) and the pod's network from /proc/<pause>/net/dev. kubelet takes the
// descriptors once and drops a metric whose labels do not match its keys: both come from one table.
extension RuntimeService {
    struct MetricSpec: Sendable {
        var name: String
        var help: String
        var type: Runtime_V1_MetricType
        var extraKeys: [String] = []
    }

    static let metricLabelKeys = ["pod", "namespace", "container", "id", "image"]

    static let containerMetrics: [MetricSpec] = [
        .init(name: "container_cpu_usage_seconds_total", help: "Cumulative cpu time consumed in seconds.", type: .counter),
        .init(name: "container_cpu_user_seconds_total", help: "Cumulative user cpu time consumed in seconds.", type: .counter),
        .init(name: "container_cpu_system_seconds_total", help: "Cumulative system cpu time consumed in seconds.", type: .counter),
        .init(name: "container_cpu_cfs_periods_total", help: "Number of elapsed enforcement period intervals.", type: .counter),
        .init(name: "container_cpu_cfs_throttled_periods_total", help: "Number of throttled period intervals.", type: .counter),
        .init(name: "container_cpu_cfs_throttled_seconds_total", help: "Total time duration the container has been throttled.", type: .counter),
        .init(name: "container_memory_usage_bytes", help: "Current memory usage in bytes, including all memory regardless of when it was accessed",
              type: .gauge),
        .init(name: "container_memory_working_set_bytes", help: "Current working set in bytes.", type: .gauge),
        .init(name: "container_memory_rss", help: "Size of RSS in bytes.", type: .gauge),
        .init(name: "container_memory_cache", help: "Number of bytes of page cache memory.", type: .gauge),
        .init(name: "container_memory_mapped_file", help: "Size of memory mapped files in bytes.", type: .gauge),
        .init(name: "container_memory_swap", help: "Container swap usage in bytes.", type: .gauge),
        .init(name: "container_memory_max_usage_bytes", help: "Maximum memory usage recorded in bytes", type: .gauge),
        .init(name: "container_memory_failures_total", help: "Cumulative count of memory allocation failures.", type: .counter,
              extraKeys: ["failure_type", "scope"]),
        .init(name: "container_oom_events_total", help: "Count of out of memory events observed for the container", type: .counter),
        .init(name: "container_processes", help: "Number of processes running inside the container.", type: .gauge),
        .init(name: "container_threads_max", help: "Maximum number of threads allowed inside the container, infinity if value is zero",
              type: .gauge),
        .init(name: "container_last_seen", help: "Last time a container was seen by the exporter", type: .gauge),
    ]

    static let networkMetrics: [MetricSpec] = [
        .init(name: "container_network_receive_bytes_total", help: "Cumulative count of bytes received", type: .counter, extraKeys: ["interface"]),
        .init(name: "container_network_receive_packets_total", help: "Cumulative count of packets received", type: .counter, extraKeys: ["interface"]),
        .init(name: "container_network_receive_packets_dropped_total", help: "Cumulative count of packets dropped while receiving",
              type: .counter, extraKeys: ["interface"]),
        .init(name: "container_network_receive_errors_total", help: "Cumulative count of errors encountered while receiving",
              type: .counter, extraKeys: ["interface"]),
        .init(name: "container_network_transmit_bytes_total", help: "Cumulative count of bytes transmitted", type: .counter,
              extraKeys: ["interface"]),
        .init(name: "container_network_transmit_packets_total", help: "Cumulative count of packets transmitted", type: .counter,
              extraKeys: ["interface"]),
        .init(name: "container_network_transmit_packets_dropped_total", help: "Cumulative count of packets dropped while transmitting",
              type: .counter, extraKeys: ["interface"]),
        .init(name: "container_network_transmit_errors_total", help: "Cumulative count of errors encountered while transmitting",
              type: .counter, extraKeys: ["interface"]),
    ]

    static var allMetrics: [MetricSpec] { containerMetrics + networkMetrics }

    func listMetricDescriptors(
        request: Runtime_V1_ListMetricDescriptorsRequest, context: ServerContext
    ) async throws -> Runtime_V1_ListMetricDescriptorsResponse {
        var r = Runtime_V1_ListMetricDescriptorsResponse()
        r.descriptors = Self.allMetrics.map { m in
            var d = Runtime_V1_MetricDescriptor()
            d.name = m.name
            d.help = m.help
            d.labelKeys = Self.metricLabelKeys + m.extraKeys
            return d
        }
        return r
    }

    func listPodSandboxMetrics(
        request: Runtime_V1_ListPodSandboxMetricsRequest, context: ServerContext
    ) async throws -> Runtime_V1_ListPodSandboxMetricsResponse {
        let settings = config.settings
        let all = try await Blocking.run { [self] () -> [Runtime_V1_PodSandboxMetrics] in
            SandboxClient.ids(settings).compactMap { sid in
                let client = SandboxClient(settings: settings, id: sid)
                guard let record = try? client.record(), let state = try? client.state(), Self.ready(state, client) else { return nil }
                return self.metrics(of: client, record: record, pausePid: state.pausePid)
            }
        }
        var r = Runtime_V1_ListPodSandboxMetricsResponse()
        r.podMetrics = all
        return r
    }

    func streamPodSandboxMetrics(
        request: Runtime_V1_StreamPodSandboxMetricsRequest, response: RPCWriter<Runtime_V1_StreamPodSandboxMetricsResponse>,
        context: ServerContext
    ) async throws {
        let all = try await listPodSandboxMetrics(request: Runtime_V1_ListPodSandboxMetricsRequest(), context: context).podMetrics
        try await Paging.write(all, to: response) { part in
            var m = Runtime_V1_StreamPodSandboxMetricsResponse()
            m.podSandboxMetrics = part
            return m
        }
    }

    /// One sandbox's metrics: its network at the pod level (container "", as containerd), and
    /// each running container's from its cgroup.
    func metrics(of client: SandboxClient, record: SandboxRecord, pausePid: Int32) -> Runtime_V1_PodSandboxMetrics {
        var out = Runtime_V1_PodSandboxMetrics()
        out.podSandboxID = client.id
        let pod = record.config.metadata
        let now = CRITime.now()
        func metric(_ spec: MetricSpec, _ labels: [String], _ value: UInt64) -> Runtime_V1_Metric {
            var m = Runtime_V1_Metric()
            m.name = spec.name
            m.timestamp = now
            m.metricType = spec.type
            m.labelValues = labels
            m.value.value = value
            return m
        }
        let podLabels = [pod.name, pod.namespace, "", client.id, ""]
        for (iface, counters) in Self.networkCounters(pid: pausePid) where iface != "lo" {
            for (spec, value) in zip(Self.networkMetrics, counters) {
                out.metrics.append(metric(spec, podLabels + [iface], value))
            }
        }
        guard let mount = try? Cgroup2Mount.discover() else { return out }
        for c in records.all(client.stateDirectory) where c.state == .running {
            let g = mount.group(record.paths.cgroup + "/" + c.name)
            guard g.exists else { continue }
            let st = Engine.stats(g)
            let labels = [pod.name, pod.namespace, c.name, c.id, c.config["criImage"]?.stringValue ?? ""]
            var cm = Runtime_V1_ContainerMetrics()
            cm.containerID = c.id
            for spec in Self.containerMetrics {
                // Whole seconds (as containerd and CRI-O: the value is an integer).
                func seconds(_ usec: UInt64?) -> UInt64? { usec.map { $0 / 1_000_000 } }
                let value: UInt64?
                switch spec.name {
                case "container_cpu_usage_seconds_total": value = seconds(st.cpu["usage_usec"])
                case "container_cpu_user_seconds_total": value = seconds(st.cpu["user_usec"])
                case "container_cpu_system_seconds_total": value = seconds(st.cpu["system_usec"])
                case "container_cpu_cfs_periods_total": value = st.cpu["nr_periods"]
                case "container_cpu_cfs_throttled_periods_total": value = st.cpu["nr_throttled"]
                case "container_cpu_cfs_throttled_seconds_total": value = seconds(st.cpu["throttled_usec"])
                case "container_memory_usage_bytes": value = st.memoryCurrent
                case "container_memory_working_set_bytes": value = st.workingSet
                case "container_memory_rss": value = st.memoryStat["anon"]
                case "container_memory_cache": value = st.memoryStat["file"]
                case "container_memory_mapped_file": value = st.memoryStat["file_mapped"]
                case "container_memory_swap": value = st.swapCurrent
                case "container_memory_max_usage_bytes": value = st.memoryPeak
                case "container_memory_failures_total":
                    // cAdvisor's four series: pgfault and pgmajfault, for the container and
                    // its hierarchy (the same numbers on cgroup v2).
                    for (type, key) in [("pgfault", "pgfault"), ("pgmajfault", "pgmajfault")] {
                        guard let v = st.memoryStat[key] else { continue }
                        for scope in ["container", "hierarchy"] { cm.metrics.append(metric(spec, labels + [type, scope], v)) }
                    }
                    value = nil
                case "container_oom_events_total": value = st.memoryEvents["oom_kill"]
                case "container_processes": value = st.pidsCurrent ?? UInt64(Self.processCount(g))
                case "container_threads_max": value = st.pidsMax.map { $0 == UInt64.max ? 0 : $0 }
                case "container_last_seen": value = UInt64(max(0, now / 1_000_000_000))
                default: value = nil
                }
                if let value { cm.metrics.append(metric(spec, labels, value)) }
            }
            out.containerMetrics.append(cm)
        }
        return out
    }

    /// /proc/<pid>/net/dev of the pod's network namespace: per interface, the counters in the
    /// order of `networkMetrics` (rx bytes, packets, drop, errs; tx bytes, packets, drop, errs).
    static func networkCounters(pid: Int32) -> [(String, [UInt64])] {
        guard pid > 0, let text = (try? Files.readString("/proc/\(pid)/net/dev")) ?? nil else { return [] }
        var out: [(String, [UInt64])] = []
        for line in text.split(separator: "\n").dropFirst(2) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].trimmingSpaces()
            let f = line[line.index(after: colon)...].split(separator: " ").compactMap { UInt64($0) }
            // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets errs drop ...
            guard f.count >= 12 else { continue }
            out.append((String(name), [f[0], f[1], f[3], f[2], f[8], f[9], f[11], f[10]]))
        }
        return out
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> Substring {
        var s = self
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return s
    }
}
