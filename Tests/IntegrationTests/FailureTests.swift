import Foundation
import HuskRuntime
import HuskSystem
import Testing

/// Bad input gets a clear error naming the stage and the cause, and leaves nothing behind
/// (issue 2; engineering rule 4).
@Suite("Create failures", .enabled(if: Host.canRunContainers, Host.skipReason))
struct FailureTests {
    func expectFails(_ bundle: TestBundle, in scratch: Scratch, message: String,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        let runc = Runc(scratch)
        let id = uniqueID()
        for verb in ["create", "run"] {
            let r = verb == "create" ? runc.create(id, bundle: bundle.path) : runc("run", "--bundle", bundle.path, id)
            #expect(r.status == 1, "\(verb) did not fail: \(r.status) \(r.stderr)", sourceLocation: sourceLocation)
            #expect(r.stderr.contains(message), "\(verb): expected \"\(message)\" in: \(r.stderr)", sourceLocation: sourceLocation)
            #expect(r.stderr.split(separator: "\n").count == 1, "more than one line: \(r.stderr)", sourceLocation: sourceLocation)
            expectGone(id, runc: runc, sourceLocation: sourceLocation)
            #expect(runc("list", "-q").stdout.isEmpty, sourceLocation: sourceLocation)
        }
    }

    @Test("a missing entrypoint names the exec stage and the cause")
    func missingEntrypoint() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var bundle = try TestBundle(in: scratch)
        try bundle.command(["/bin/nope"])
        expectFails(bundle, in: scratch, message: "exec: /bin/nope: No such file or directory")
        try bundle.command(["nope"])
        expectFails(bundle, in: scratch, message: "exec: \"nope\": executable file not found in $PATH")
        try bundle.command(["/etc/passwd"])
        expectFails(bundle, in: scratch, message: "exec: /etc/passwd: Permission denied")
    }

    @Test("a bad rootfs is refused before anything is created")
    func badRootfs() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var bundle = try TestBundle(in: scratch)
        bundle.spec.root?.path = "no-such-rootfs"
        try bundle.write()
        expectFails(bundle, in: scratch, message: "root.path: \(bundle.path)/no-such-rootfs: No such file or directory")
        bundle.spec.root?.path = "config.json"
        try bundle.write()
        expectFails(bundle, in: scratch, message: "root.path: \(bundle.path)/config.json: not a directory")
    }

    @Test("an invalid config.json names the JSON path of the bad field")
    func invalidConfig() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let bundle = try TestBundle(in: scratch)
        try bundle.write()
        var json = try String(contentsOfFile: bundle.path + "/config.json", encoding: .utf8)
        json = json.replacingOccurrences(of: "\"args\" : [\n      \"true\"\n    ]", with: "\"args\" : [\"sh\", 5]")
        try json.write(toFile: bundle.path + "/config.json", atomically: false, encoding: .utf8)
        expectFails(bundle, in: scratch, message: "config.json: process.args[1]: expected a string, found a number")

        try "{\"ociVersion\": \"1.0.2\", \"process\": {\"cwd\": \"/\"}}".write(
            toFile: bundle.path + "/config.json", atomically: false, encoding: .utf8)
        expectFails(bundle, in: scratch, message: "process.user: required field is missing")

        try "{\"ociVersion\": \"1.0.2\",".write(toFile: bundle.path + "/config.json", atomically: false, encoding: .utf8)
        expectFails(bundle, in: scratch, message: "config.json: not valid JSON")

        var b2 = try TestBundle(in: scratch, name: "b2")
        b2.spec.linux?.namespaces?.append(Spec.Namespace(type: "bogus"))
        b2.spec.process?.rlimits?.append(Spec.Rlimit(type: "RLIMIT_BOGUS", hard: 1, soft: 1))
        try b2.write()
        expectFails(b2, in: scratch, message: "linux.namespaces[6].type: unknown namespace type \"bogus\"")
        expectFails(b2, in: scratch, message: "process.rlimits[1].type: unknown rlimit \"RLIMIT_BOGUS\"")
    }

    @Test("a failing mount names the mount stage and its destination")
    func badMount() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var bundle = try TestBundle(in: scratch)
        bundle.spec.mounts?.append(Spec.Mount(destination: "/data", type: "bind", source: scratch.path + "/absent", options: ["bind"]))
        try bundle.write()
        expectFails(bundle, in: scratch, message: "mount: \(scratch.path)/absent: No such file or directory")
    }
}
