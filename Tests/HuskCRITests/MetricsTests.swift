import Foundation
import Testing

@testable import HuskCRI

/// The CRI metrics RPCs' tables and the pod network counters (kubelet's CRI metrics collector
/// drops a metric whose label values do not match its descriptor's keys).
@Suite("CRI metrics: descriptors and /proc/PID/net/dev")
struct MetricsTests {
    @Test("every metric has a unique cAdvisor name, a help text and containerd 2.2's label keys first")
    func descriptors() {
        let names = RuntimeService.allMetrics.map(\.name)
        #expect(Set(names).count == names.count)
        #expect(names.allSatisfy { $0.hasPrefix("container_") })
        #expect(RuntimeService.allMetrics.allSatisfy { !$0.help.isEmpty })
        #expect(RuntimeService.metricLabelKeys == ["pod", "namespace", "container", "id", "image"])
        for required in ["container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "container_memory_usage_bytes",
                         "container_memory_rss", "container_network_receive_bytes_total", "container_network_transmit_bytes_total",
                         "container_processes"] {
            #expect(names.contains(required), "\(required)")
        }
        #expect(RuntimeService.networkMetrics.allSatisfy { $0.extraKeys == ["interface"] && $0.type == .counter })
    }

    @Test("the counters of /proc/PID/net/dev per interface, in the order of the network metrics: lo's rx bytes and packets as sysfs gives them")
    func netDev() throws {
        let sysfs = { (f: String) -> UInt64 in
            UInt64((try? String(contentsOfFile: "/sys/class/net/lo/statistics/" + f, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
        }
        let before = sysfs("rx_bytes")
        let counters = RuntimeService.networkCounters(pid: getpid())
        let after = sysfs("rx_bytes")
        let lo = try #require(counters.first { $0.0 == "lo" }?.1)
        #expect(lo.count == 8)
        #expect(lo[0] >= before && lo[0] <= after, "rx bytes \(lo[0]) not within [\(before), \(after)]")
        #expect(lo[4] >= before && lo[4] <= sysfs("tx_bytes"), "lo sends what it receives")
        #expect(RuntimeService.networkCounters(pid: -1).isEmpty)
    }
}
