import Foundation
import HuskRuntime
import HuskSystem
import Testing

/// husk-runc's command line as orchestrators drive it (runc's forms, issue 2 §4).
@Suite("husk-runc command line", .enabled(if: Host.canRunContainers, Host.skipReason))
struct CommandLineTests {
    @Test("--log with --log-format json records errors as containerd reads them")
    func jsonLog() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let log = scratch.path + "/log.json"
        let r = run([huskRuncPath, "--root", scratch.path + "/state", "--log", log, "--log-format", "json", "start", "nope"])
        #expect(r.status == 1)
        let line = try #require(try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").last)
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        #expect(obj["level"] == "error")
        #expect(obj["msg"] == "container does not exist: nope")
        let time = try #require(obj["time"])
        #expect(ISO8601DateFormatter().date(from: time.replacingOccurrences(of: #"\.\d+"#, with: "", options: .regularExpression)) != nil)

        let t = run([huskRuncPath, "--root", scratch.path + "/state", "--log", scratch.path + "/log.txt", "kill", "nope"])
        #expect(t.status == 1)
        let text = try String(contentsOfFile: scratch.path + "/log.txt", encoding: .utf8)
        #expect(text.hasPrefix("time=\"") && text.contains("level=error msg=\"container does not exist: nope\""), "\(text)")
    }

    @Test("spec writes a config.json that runs; it refuses to overwrite one")
    func specRuns() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let dir = scratch.path + "/b"
        try TestBundle.makeBusyboxRootfs(dir + "/rootfs")
        #expect(run([huskRuncPath, "spec", "--bundle", dir]).status == 0)
        let again = run([huskRuncPath, "spec", "--bundle", dir])
        #expect(again.status == 1 && again.stderr.contains("exists. Remove it first"))
        var json = try String(contentsOfFile: dir + "/config.json", encoding: .utf8)
        json = json.replacingOccurrences(of: "\"sh\"", with: "\"true\"")
        try json.write(toFile: dir + "/config.json", atomically: false, encoding: .utf8)
        let r = Runc(scratch)("run", "--bundle", dir, uniqueID())
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.isEmpty, "the default spec warns: \(r.stderr)")
    }

    @Test("features lists only what is implemented")
    func features() throws {
        let r = run([huskRuncPath, "features"])
        #expect(r.status == 0)
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(obj["ociVersionMin"] as? String == "1.0.0")
        let linux = try #require(obj["linux"] as? [String: Any])
        #expect((linux["namespaces"] as? [String])?.contains("user") == true)
        #expect((linux["namespaces"] as? [String])?.contains("time") == false)
        #expect((linux["cgroup"] as? [String: Bool])?["v2"] == true)
        #expect((linux["cgroup"] as? [String: Bool])?["systemd"] == false)
        #expect(obj["hooks"] as? [String] == ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"])
    }

    @Test("usage errors are one line and exit 1", arguments: [
        (["frobnicate"], "unknown command \"frobnicate\""),
        (["create"], "create: missing container id"),
        (["start", "a", "b"], "start: unexpected argument \"b\""),
        (["create", "--bogus", "x"], "unknown flag --bogus for create"),
        (["--systemd-cgroup", "list"], "--systemd-cgroup is not supported"),
        (["--root", "/", "list"], "--root must not be /"),
        (["kill", "x", "SIGNOPE"], "container does not exist"),
        (["--log-format", "xml", "list"], "--log-format: \"xml\" is not text or json"),
    ])
    func usageErrors(args: [String], message: String) {
        let r = run([huskRuncPath, "--root", "/tmp/husk-test-usage-\(getpid())"] + args)
        #expect(r.status == 1, "\(args): \(r.status)")
        #expect(r.stderr.contains(message), "\(args): \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
        try? FileManager.default.removeItem(atPath: "/tmp/husk-test-usage-\(getpid())")
    }
}
