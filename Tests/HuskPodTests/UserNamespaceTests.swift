import Foundation
@testable import HuskPod
import HuskRuntime
import HuskSystem
import Testing

/// kubelet's user namespace manager (pkg/kubelet/userns, KEP-127) as Husk runs it for
/// `hostUsers: false` pods: the pool, the `userns` record, the allocation.
@Suite("User namespace ranges: kubelet's pool, record and allocation")
struct UserNamespaceTests {
    func tempDir() -> String {
        let d = NSTemporaryDirectory() + "husk-userns-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    @Test("the pool: kubelet's default without a `kubelet` entry (the last range, ending at 2^32, left out); the entry's range when subuid and subgid agree; kubelet's errors otherwise")
    func pool() throws {
        let etc = tempDir()
        defer { try? FileManager.default.removeItem(atPath: etc) }
        let d = try UserNamespaces.pool(etc: etc)
        #expect(d == UserNamespaces.Pool(first: 65536, length: 4_294_901_760))
        #expect(d.slots == 65534)
        func write(_ uid: String, _ gid: String) throws {
            try uid.write(toFile: etc + "/subuid", atomically: false, encoding: .utf8)
            try gid.write(toFile: etc + "/subgid", atomically: false, encoding: .utf8)
        }
        try write("alice:100000:65536\nkubelet:65536:655360\n", "kubelet:65536:655360\n")
        let p = try UserNamespaces.pool(etc: etc)
        #expect(p == UserNamespaces.Pool(first: 65536, length: 655_360) && p.slots == 10)
        let bad: [(String, String, String)] = [
            ("kubelet:65536:655360\n", "kubelet:131072:655360\n", "mismatched subuids and subgids for user \"kubelet\""),
            ("kubelet:100000:655360\n", "kubelet:100000:655360\n", "kubelet user assigned ID 100000 is not a multiple of 65536"),
            ("kubelet:0:655360\n", "kubelet:0:655360\n", "kubelet user assigned ID 0 must be greater or equal to 65536"),
            ("kubelet:65536:100000\n", "kubelet:65536:100000\n", "kubelet user assigned IDs length 100000 is not a multiple of 65536"),
        ]
        for (u, g, message) in bad {
            try write(u, g)
            #expect(throws: HuskError.self) { _ = try UserNamespaces.pool(etc: etc) }
            do {
                _ = try UserNamespaces.pool(etc: etc)
            } catch {
                #expect(error.message.contains(message), "\(error.message)")
            }
        }
    }

    @Test("allocation: a free range of the pool, never one a record holds, recorded in kubelet's format; a full pool is kubelet's error")
    func allocate() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let pool = UserNamespaces.Pool(first: 65536, length: 4 * 65536)
        var files: [String] = []
        var hosts: Set<UInt32> = []
        for i in 0..<4 {
            let file = dir + "/\(i)"
            let ns = try UserNamespaces.allocate(pool: pool, taken: files, file: file)
            files.append(file)
            let host = try #require(ns.hostRoot?.uid)
            #expect(host >= 65536 && host < 5 * 65536 && host % 65536 == 0)
            #expect(!hosts.contains(host), "range \(host) given twice")
            hosts.insert(host)
            let read = try #require(try UserNamespaces.read(file))
            #expect(read == ns && read.uids == [Spec.IDMapping(containerID: 0, hostID: host, size: 65536)])
            let text = String(decoding: FileManager.default.contents(atPath: file) ?? Data(), as: UTF8.self)
            #expect(text.contains("\"uidMappings\"") && text.contains("\"hostId\":\(host)") && text.contains("\"containerId\":0")
                    && text.contains("\"length\":65536"), "\(text)")
        }
        #expect(throws: HuskError.self) { _ = try UserNamespaces.allocate(pool: pool, taken: files, file: dir + "/full") }
        do {
            _ = try UserNamespaces.allocate(pool: pool, taken: files, file: dir + "/full")
        } catch {
            #expect(error.message.contains("could not find an empty slot to allocate a user namespace"))
        }
        // A released range (its record gone) is given again.
        let freed = try #require(try UserNamespaces.read(files[2])?.hostRoot?.uid)
        try FileManager.default.removeItem(atPath: files[2])
        let again = try UserNamespaces.allocate(pool: pool, taken: files, file: dir + "/again")
        #expect(again.hostRoot?.uid == freed)
    }

    @Test("a record kubelet would refuse is refused: two ranges, uid and gid apart, container id 0 unmapped")
    func badRecords() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cases = [
            (#"{"uidMappings":[{"hostId":65536,"containerId":0,"length":65536},{"hostId":131072,"containerId":65536,"length":65536}],"gidMappings":[{"hostId":65536,"containerId":0,"length":65536}]}"#, "invalid number of mappings"),
            (#"{"uidMappings":[{"hostId":65536,"containerId":0,"length":65536}],"gidMappings":[{"hostId":131072,"containerId":0,"length":65536}]}"#, "mismatched uid and gid mappings"),
            (#"{"uidMappings":[{"hostId":65536,"containerId":1,"length":65536}],"gidMappings":[{"hostId":65536,"containerId":1,"length":65536}]}"#, "UID 0 must be mapped"),
        ]
        for (text, message) in cases {
            try text.write(toFile: dir + "/userns", atomically: false, encoding: .utf8)
            do {
                _ = try UserNamespaces.read(dir + "/userns")
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.message.contains(message), "\(error.message)")
            }
        }
        #expect(try UserNamespaces.read(dir + "/none") == nil)
    }

    @Test("manifest: hostUsers false is kept in the pod record; the sandbox config carries the recorded maps, or none (refused at the sandbox) without a record")
    func sandboxConfig() throws {
        let (pod, _) = try accept("""
            apiVersion: v1
            kind: Pod
            metadata: {name: u}
            spec:
              hostUsers: false
              containers: [{name: c, image: busybox}]
            """)
        #expect(pod.spec.hostUsers == false)
        let state = tempDir()
        defer { try? FileManager.default.removeItem(atPath: state) }
        var settings = HuskSettings()
        settings.state = state
        let paths = PodPaths(settings: settings, pod: pod)
        #expect(SandboxConfigBuilder(pod: pod, paths: paths).config().userNamespace == .init(uids: [], gids: []))
        try FileManager.default.createDirectory(atPath: paths.state, withIntermediateDirectories: true)
        let ns = try UserNamespaces.allocate(pool: UserNamespaces.defaultPool, taken: [], file: paths.userNamespace)
        #expect(SandboxConfigBuilder(pod: pod, paths: paths).config().userNamespace == ns)
        var plain = pod
        plain.spec.hostUsers = true
        #expect(SandboxConfigBuilder(pod: plain, paths: paths).config().userNamespace == nil)
    }
}
