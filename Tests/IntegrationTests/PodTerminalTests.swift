import Foundation
import Testing

/// Terminals (issue 5 §7): `husk exec -t` gives the command a pty of the container's own,
/// as crictl exec -t / kubectl exec -t do through the runtime's console socket; `husk attach`
/// to a container's own streams, with `stdin` and `tty` from its spec.
@Suite("Pods: terminals, exec -t and attach", .enabled(if: Host.canRunPods, Host.podSkipReason))
struct PodTerminalTests {
    static let pod = """
        apiVersion: v1
        kind: Pod
        metadata: {name: term}
        spec:
          containers:
          - {name: c, image: "busybox:1.36", command: [sleep, "1000"]}
          - name: tty
            image: "busybox:1.36"
            tty: true
            stdin: true
            command: [sh, -c, "tty; while read line; do echo got $line; done; echo bye; exit 3"]
          - name: pipe
            image: "busybox:1.36"
            stdin: true
            stdinOnce: true
            command: [sh, -c, "while read line; do echo piped $line; echo err $line >&2; done; exit 4"]
          - {name: talker, image: "busybox:1.36", command: [sh, -c, "while true; do echo tick; sleep 0.05; done"]}
        """

    @Test("exec -t: a pty from the container's own /dev/pts is the command's terminal (stdin, stdout, stderr; controlling tty); -i passes input; the exit status is passed through")
    func execTTY() throws {
        let scratch = Scratch("execTTY")
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        #expect(husk.start(Self.pod).status == 0)
        let r = husk("exec", "-t", "term", "-c", "c", "--", "sh", "-c",
                     "tty; readlink /proc/self/fd/1; readlink /proc/self/fd/2; cat /proc/self/stat | cut -d' ' -f7; ls /dev/pts; exit 4")
        #expect(r.status == 4, "\(r)")
        let lines = r.stdout.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        #expect(lines.first == "/dev/pts/0", "ttyname resolves inside the container: \(lines)")
        #expect(lines.count > 2 && lines[1] == "/dev/pts/0" && lines[2] == "/dev/pts/0", "stdout and stderr too: \(lines)")
        #expect(lines.count > 3 && lines[3] != "0", "a controlling terminal (tty_nr): \(lines)")
        #expect(r.stdout.contains("\r\n"), "a terminal's line discipline (onlcr)")
        // Input through the pty: the shell reads a line, the terminal echoes it.
        let i = IntegrationTests.run([huskPath] + husk.globals + ["exec", "-i", "-t", "term", "-c", "c", "--", "sh"],
                                     stdin: "echo in-$((6*7)); exit 6\n")
        #expect(i.status == 6, "\(i)")
        #expect(i.stdout.contains("in-42"), "\(i.stdout)")
        // The container's own processes do not see the pty.
        #expect(husk("exec", "term", "-c", "c", "--", "ls", "/dev/pts").stdout.split(whereSeparator: \.isNewline).allSatisfy { $0 == "ptmx" })
    }

    func attach(_ husk: PodHusk, _ args: [String], stdin: String? = nil) -> RunResult {
        IntegrationTests.run([huskPath] + husk.globals + ["attach"] + args, stdin: stdin, timeout: 30)
    }

    @Test("attach -i -t to a tty: true container: its terminal (a pty of its own, in the CRI log as stdout), input echoed and read, the end of input a ^D, the container's exit status")
    func attachTTY() throws {
        let scratch = Scratch("attachTTY")
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        #expect(husk.start(Self.pod).status == 0)
        let r = attach(husk, ["-i", "-t", "term", "-c", "tty"], stdin: "hello\n")
        #expect(r.status == 3, "the container's exit status: \(r)")
        #expect(r.stdout.contains("got hello"), "\(r.stdout)")
        #expect(r.stdout.contains("bye"), "\(r.stdout)")
        // The log has the terminal's output, as stdout records.
        let log = readText(husk.logDir + "/" + ((try? FileManager.default.contentsOfDirectory(atPath: husk.logDir))?.first ?? "") + "/tty/0.log")
        #expect(log.contains(" stdout F /dev/pts/0\r"), "\(log)")
        #expect(log.contains(" stdout F got hello\r"), "\(log)")
        #expect(!log.contains(" stderr "))
    }

    @Test("attach -i to a stdin: true container: stdout and stderr apart, stdinOnce closes its stdin when the input ends; attach without -i follows the output; -i without stdin: true is refused")
    func attachPipes() throws {
        let scratch = Scratch("attachPipe")
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        #expect(husk.start(Self.pod).status == 0)
        let r = attach(husk, ["-i", "term", "-c", "pipe"], stdin: "a\nb\n")
        #expect(r.status == 4, "\(r)")
        #expect(r.stdout == "piped a\npiped b\n", "\(r)")
        #expect(r.stderr == "err a\nerr b\n", "\(r)")
        // Output only: what the container writes from now on.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: huskPath)
        p.arguments = husk.globals + ["attach", "term", "-c", "talker"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        // Until three lines came (the talker ticks every 0.1 s; husk's start-up on a loaded
        // machine is not the subject here), at most 10 s.
        var got = Data()
        let deadline = Date().addingTimeInterval(10)
        while got.filter({ $0 == 10 }).count < 3 && Date() < deadline {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            got += chunk
        }
        p.terminate()
        p.waitUntilExit()
        got += out.fileHandleForReading.readDataToEndOfFile()
        let text = String(decoding: got, as: UTF8.self)
        #expect(text.split(separator: "\n").count >= 3 && text.split(separator: "\n").allSatisfy { $0 == "tick" }, "\(text)")
        let refused = attach(husk, ["-i", "term", "-c", "c"])
        #expect(refused.status != 0 && refused.stderr.contains("stdin: true"), "\(refused)")
        // The restarted instance has a stdin of its own again.
        _ = husk.wait("term") { $0.stateKind("pipe") == "running" }
        let noTTY = attach(husk, ["-i", "-t", "term", "-c", "pipe"], stdin: "")
        #expect(noTTY.stderr.contains("Unable to use a TTY - container pipe did not allocate one"), "\(noTTY)")
        #expect(noTTY.status == 4, "\(noTTY)")
    }

    @Test("after kill -9 of the supervisor a tty container is adopted with its terminal (held by the keeper) and can be attached to")
    func attachAfterCrash() throws {
        let scratch = Scratch("attachCrash")
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        #expect(husk.start(Self.pod).status == 0)
        let uid = husk.podUIDs.first ?? ""
        let pidFile = husk.state + "/pods/\(uid)/supervisor.pid"
        let old = Int32((try? String(contentsOfFile: pidFile, encoding: .utf8))?.trimmed ?? "") ?? 0
        #expect(old > 0 && kill(old, SIGKILL) == 0)
        var new: Int32 = 0
        for _ in 0..<500 where new == 0 || new == old {
            usleep(10_000)
            new = Int32((try? String(contentsOfFile: pidFile, encoding: .utf8))?.trimmed ?? "") ?? 0
        }
        #expect(new != old)
        let adopted = husk.wait("term") { $0.stateKind("tty") == "running" }
        #expect(adopted?.container("tty")?["restartCount"] as? Int == 0, "the same instance: adopted, not restarted")
        let r = attach(husk, ["-i", "-t", "term", "-c", "tty"], stdin: "again\n")
        #expect(r.status == 3, "\(r)")
        #expect(r.stdout.contains("got again"), "\(r.stdout)")
        // The exit is in the status by the time attach returns: as the state, or as lastState
        // once the container was restarted.
        let c = husk.inspect("term")?.container("tty")
        let terminated = ((c?["state"] as? [String: Any])?["terminated"] ?? (c?["lastState"] as? [String: Any])?["terminated"]) as? [String: Any]
        #expect(terminated?["exitCode"] as? Int == 3, "\(String(describing: c))")
    }
}
