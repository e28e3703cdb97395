import Foundation
import Testing

@Suite("Pods: smoke", .enabled(if: Host.canRunPods, Host.podSkipReason))
struct PodSmokeTests {
    @Test("a one-container pod starts with -d, runs, stops with its grace and is removed without a trace")
    func startStopRemove() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: smoke
            spec:
              terminationGracePeriodSeconds: 2
              containers:
              - name: main
                image: busybox:1.36
                command: ["sh", "-c", "echo started; exec sleep 1000"]
            """)
        #expect(r.status == 0, "husk run -d: \(r.stderr)")
        let uid = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(uid.count == 36)
        let pod = husk.wait("smoke") { $0.stateKind("main") == "running" }
        #expect(pod?.phase == "Running")
        let stop = husk("stop", "smoke")
        #expect(stop.status == 0, "\(stop.stderr)")
        let done = husk.inspect("smoke")
        // sleep as PID 1 of its pid namespace ignores SIGTERM: SIGKILL after the grace (§6).
        #expect(done?.exitCode("main") == 137)
        #expect(done?.phase == "Failed")
        #expect(husk("logs", "smoke").stdout == "started\n")
    }
}
