import Foundation
import HuskImage
import HuskSystem
import Testing

/// imagePullPolicy exactly as pod-semantics §7 (issue 3, "Done means" 3; checklist 13-15).
@Suite("Pull policy", .enabled(if: Host.canTestImages, Host.imageSkipReason))
struct PullPolicyTests {
    enum Situation: String, CaseIterable, Sendable {
        /// The store has never seen the image; the source has it.
        case absent
        /// The store has it; the source has the same and is unreadable from now on (so using it
        /// shows as a failure).
        case present
        /// The store has the old image; the source's tag now names a newer one.
        case sourceChanged
        /// The store has it; the source no longer has the tag.
        case sourceLacks
    }

    struct Expect: Sendable {
        var reason: ImageError.Reason? = nil  // a failure
        var message: String? = nil
        var version: String? = nil  // "v1" or "v2": which image the store then returns
        var pulled: Bool = false
    }

    static func expectation(_ policy: PullPolicy?, _ ref: String, _ s: Situation) -> Expect {
        let effective = policy ?? PullPolicy.defaultFor(ref)
        switch (effective, s) {
        case (.never, .absent):
            return Expect(reason: .errImageNeverPull, message: "Container image \"\(ref)\" is not present with pull policy of Never")
        case (.never, _), (.ifNotPresent, .present), (.ifNotPresent, .sourceChanged), (.ifNotPresent, .sourceLacks):
            return Expect(version: "v1")
        case (.ifNotPresent, .absent), (.always, .absent):
            return Expect(version: "v1", pulled: true)
        case (.always, .present):
            return Expect(reason: .storeError)  // it read the (unreadable) source: that is the point
        case (.always, .sourceChanged):
            return Expect(version: "v2", pulled: true)
        case (.always, .sourceLacks):
            let full = try! ImageReference(parsing: ref)
            return Expect(reason: .errImagePull, message: "Failed to pull image \"\(ref)\": \(full) not found in any image source")
        }
    }

    static let policies: [PullPolicy?] = [.always, .ifNotPresent, .never, nil]

    @Test("every policy (and the default) in every situation", arguments: policies, Situation.allCases)
    func matrix(policy: PullPolicy?, situation: Situation) throws {
        // Both kinds of default: x:1.0 -> IfNotPresent, x (latest) -> Always.
        for (ref, tag) in [("app:1.0", "1.0"), ("app", "latest")] {
            let scratch = Scratch()
            defer { scratch.cleanup() }
            var w = try LayoutWriter(scratch.path + "/layout")
            func image(_ version: String) -> [UInt8] {
                var t = TarWriter()
                t.addFile("version", version)
                return t.finish()
            }
            try w.addImage(tag: tag, layers: [.init(tar: image("v1"))])
            let source = try LayoutSource(path: w.path)
            let store = try ImageStore(root: scratch.path + "/root")
            if situation != .absent {
                _ = try store.ensure(ref, policy: .always, sources: [source])
            }
            switch situation {
            case .absent: break
            case .present:
                try "{not json".write(toFile: w.path + "/index.json", atomically: false, encoding: .utf8)
            case .sourceChanged:
                var v2 = try LayoutWriter(scratch.path + "/layout")
                try v2.addImage(tag: tag, layers: [.init(tar: image("v2"))])
            case .sourceLacks:
                var other = try LayoutWriter(scratch.path + "/layout")
                try other.addImage(tag: "other", layers: [.init(tar: image("v3"))])
            }
            let e = Self.expectation(policy, ref, situation)
            do {
                let (img, pulled) = try store.ensure(ref, policy: policy, sources: [source])
                #expect(e.reason == nil, "\(ref) \(situation): expected \(e.reason?.rawValue ?? "")")
                #expect(pulled == e.pulled, "\(ref) \(situation): pulled \(pulled)")
                let version = try String(contentsOfFile: try store.snapshotPaths(img)[0] + "/version", encoding: .utf8)
                #expect(version == e.version, "\(ref) \(situation)")
            } catch let error as ImageError {
                #expect(e.reason == error.reason, "\(ref) \(situation): \(error)")
                if let m = e.message { #expect(error.message.hasPrefix(m), "\(ref) \(situation): \(error.message)") }
            }
        }
    }

    @Test("the CLI says the reason and the exact message")
    func cliMessages() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var w = try LayoutWriter(scratch.path + "/layout")
        var t = TarWriter()
        t.addFile("f", "x")
        try w.addImage(tag: "1.0", layers: [.init(tar: t.finish())])
        let husk = HuskCLI(scratch, sources: [w.path])
        let never = husk("pull", "--policy", "Never", "app:1.0")
        #expect(never.status == 1)
        #expect(never.stderr == "husk: ErrImageNeverPull: Container image \"app:1.0\" is not present with pull policy of Never\n")
        let missing = husk("pull", "app:2.0")
        #expect(missing.stderr.hasPrefix("husk: ErrImagePull: Failed to pull image \"app:2.0\": docker.io/library/app:2.0 not found in any image source (\(w.path))"), "\(missing.stderr)")
        let bad = husk("pull", "Bad/Name")
        #expect(bad.stderr.hasPrefix("husk: InvalidImageName: Failed to apply default image tag \"Bad/Name\""), "\(bad.stderr)")
        #expect(husk("pull", "app:1.0").stdout.hasPrefix("Pulled docker.io/library/app:1.0"))
        #expect(husk("pull", "app:1.0").stdout.hasPrefix("Image is up to date for docker.io/library/app:1.0"))
    }

    @Test("a pull killed with SIGKILL while copying leaves the store consistent")
    func killedPull() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        // A layer big enough that the copy takes a while: 64 MiB of random bytes.
        var t = TarWriter()
        var random = [UInt8](repeating: 0, count: 64 << 20)
        for i in stride(from: 0, to: random.count, by: 8) { random.withUnsafeMutableBytes { $0.storeBytes(of: UInt64.random(in: 0...UInt64.max), toByteOffset: i, as: UInt64.self) } }
        t.add("big", .file, content: random)
        var w = try LayoutWriter(scratch.path + "/layout")
        try w.addImage(tag: "1", layers: [.init(tar: t.finish(), compression: "")])
        let husk = HuskCLI(scratch, sources: [w.path])
        var killedWhile = ""
        for delay in [5_000, 20_000, 60_000, 150_000] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: huskPath)
            p.arguments = ["--root", husk.root, "--image-source", w.path, "pull", "big:1"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            usleep(useconds_t(delay))
            let ingest = (try? FileManager.default.contentsOfDirectory(atPath: husk.root + "/images/ingest")) ?? []
            let tmp = ((try? FileManager.default.contentsOfDirectory(atPath: husk.root + "/images/snapshots")) ?? []).filter { $0.hasPrefix(".tmp") }
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            if !ingest.isEmpty { killedWhile += "copy " } else if !tmp.isEmpty { killedWhile += "unpack " }
            // Consistent: no image, and every blob in the store is whole and verified.
            let store = husk.store
            #expect(try store.image(matching: "big:1") == nil || p.terminationReason == .exit)
            for name in (try? FileManager.default.contentsOfDirectory(atPath: store.root + "/blobs/sha256")) ?? [] {
                let fd = try FD.open(store.root + "/blobs/sha256/" + name, O_RDONLY)
                var st = stat()
                fstat(fd.raw, &st)
                #expect(try Digest.of(fd: fd, length: UInt64(st.st_size)).hex == name, "a half blob is visible: \(name)")
            }
            // A visible snapshot is whole: it is renamed into place only once complete.
            for name in (try? FileManager.default.contentsOfDirectory(atPath: store.root + "/snapshots")) ?? [] where !name.hasPrefix(".") {
                let size = (try? FileManager.default.attributesOfItem(atPath: store.root + "/snapshots/" + name + "/big")[.size] as? Int) ?? -1
                #expect(size == random.count, "a partial snapshot is visible: \(name) has \(size) bytes")
            }
            // gc removes what the dead pull left; a new pull then works.
            _ = try store.gc()
            #expect(((try? FileManager.default.contentsOfDirectory(atPath: store.root + "/ingest")) ?? []).isEmpty)
            let again = husk("pull", "--policy", "Always", "big:1")
            #expect(again.status == 0, "\(again.stderr)")
            try? FileManager.default.removeItem(atPath: husk.root)
        }
        #expect(killedWhile.contains("copy"), "no kill landed during a copy: \(killedWhile)")
    }
}
