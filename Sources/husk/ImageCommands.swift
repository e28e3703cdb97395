import ArgumentParser
import FoundationEssentials
import HuskImage
import HuskJSON
import HuskOptions
import HuskPod
import HuskSystem
import Synchronization

struct Pull: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Copy an image from the image sources into the store.")

    @OptionGroup var globals: GlobalOptions
    @Option(name: .long, help: "Always, IfNotPresent or Never (default: Kubernetes' default for the reference).")
    var policy: String?
    @Option(name: .long, help: "Registry credentials USER:PASSWORD for this pull (before the auth file's).")
    var creds: String?
    @Option(name: .long, help: "The platform to pick from an index, OS/ARCH[/VARIANT] (default: this node's).")
    var platform: String?
    @Argument(help: "The image reference (busybox, docker.io/library/busybox:1.36, name@sha256:...).")
    var reference: String

    func run() throws {
        try runReporting {
            let store = try globals.store()
            let policy = try policy.map { try PullPolicy(parsing: $0) }
            let progress = Progress(terminal: Out.stderrIsTerminal)
            var credentials: JSONValue? = nil
            if let creds {
                guard let colon = creds.firstIndex(of: ":") else { throw HuskError(.invalidArgument, "--creds is USER:PASSWORD") }
                credentials = .object(["username": .string(String(creds[..<colon])), "password": .string(String(creds[creds.index(after: colon)...]))])
            }
            var chosen = Platform.host
            if let platform {
                guard let p = Platform(parsing: platform) else { throw HuskError(.invalidArgument, "--platform \(platform): expected OS/ARCH[/VARIANT], for example linux/arm64") }
                chosen = p
            }
            let registry = RegistryHelper.puller(try globals.settings(), store: store, credentials: credentials, platform: chosen) { progress.report($0) }
            let (img, pulled) = try store.ensure(reference, policy: policy, sources: try globals.sources(), registry: registry, platform: chosen) {
                progress.report($0)
            }
            progress.finish()
            let ref = try ImageReference(parsing: reference)
            if pulled {
                Out.out("Pulled \(ref) (image \(img.id))\n")
            } else {
                Out.out("Image is up to date for \(ref) (image \(img.id))\n")
            }
        }
    }
}

/// Progress of a pull on stderr. On a terminal, one line rewritten in place with the bytes and
/// the rate of the blob being copied; otherwise one line per blob copied and per layer unpacked.
final class Progress: Sendable {
    private struct State {
        var last = 0.0
        var started: [Digest: Double] = [:]
    }
    private let terminal: Bool
    private let state = Mutex(State())

    init(terminal: Bool) { self.terminal = terminal }

    func report(_ e: PullEvent) {
        let now = Clock.monotonicSeconds()
        let clear = terminal ? "\r\u{1b}[K" : ""
        switch e {
        case .resolved(let ref, let manifest, let source):
            Out.err("\(clear)resolved \(ref) to \(manifest.short) in \(source)\n")
        case .copying(let blob, let done, let total):
            let finished = done >= total
            let (due, began) = state.withLock { s -> (Bool, Double) in
                let began = s.started[blob] ?? now
                s.started[blob] = finished ? nil : began
                let due = finished || (terminal && now - s.last >= 0.1)
                if due { s.last = now }
                return (due, began)
            }
            guard due else { return }
            let rate = Self.rate(done, now - began)
            if !finished {
                Out.err("\(clear)copying \(blob.short): \(Out.size(done)) / \(Out.size(total)) (\(rate))")
            } else {
                Out.err("\(clear)copied \(blob.short): \(Out.size(total)) in \(Int((now - began) * 1000)) ms (\(rate))\n")
            }
        case .unpacked(let layer, let bytes, let seconds, let inflater):
            Out.err("\(clear)unpacked \(layer.short): \(Out.size(Int64(bytes))) in \(Int(seconds * 1000)) ms (\(Self.rate(Int64(bytes), seconds)), \(inflater))\n")
        }
    }

    static func rate(_ bytes: Int64, _ seconds: Double) -> String {
        seconds > 0.0005 ? Out.size(Int64(Double(bytes) / seconds)) + "/s" : "-"
    }

    func finish() {
        if terminal { Out.err("\r\u{1b}[K") }
    }
}

struct Images: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the images in the store.")

    @OptionGroup var globals: GlobalOptions
    @Option(name: .shortAndLong, help: "table or json") var output: OutputFormat = .table
    @Flag(name: .shortAndLong, help: "Print image IDs only.") var quiet = false
    @Flag(name: .long, help: "Show the repo digest (the manifest's, as the registry or layout named it), as crictl images --digests.") var digests = false

    func run() throws {
        try runReporting {
            let images = try globals.store().images()
            if quiet {
                Out.out(images.map { $0.id.description + "\n" }.joined())
                return
            }
            switch output {
            case .json, .yaml:
                struct Item: Encodable {
                    let id: String
                    let repoTags: [String]
                    let repoDigests: [String]
                    let size: String
                    let pulledAt: String
                }
                let items = images.map {
                    Item(id: $0.id.description, repoTags: $0.repoTags, repoDigests: $0.repoDigests, size: String($0.size), pulledAt: $0.pulledAt)
                }
                struct List: Encodable { let images: [Item] }
                Out.out(try Out.json(List(images: items)))
            case .table:
                var rows = [["IMAGE", "TAG"] + (digests ? ["DIGEST"] : []) + ["IMAGE ID", "SIZE"]]
                for img in images {
                    let tags = img.repoTags.isEmpty ? [img.repoDigests.first.map { String($0.split(separator: "@")[0]) + ":<none>" } ?? "<none>:<none>"] : img.repoTags
                    for t in tags {
                        let colon = t.lastIndex(of: ":")!
                        let repo = String(t[..<colon])
                        // crictl's DIGEST: the first 13 hex digits of the repo digest of this repository.
                        let digest = img.repoDigests.first { $0.hasPrefix(repo + "@") }.map { String($0.split(separator: ":").last?.prefix(13) ?? "") } ?? "<none>"
                        rows.append([repo, String(t[t.index(after: colon)...])] + (digests ? [digest] : []) + [img.id.short, Out.size(img.size)])
                    }
                }
                Out.out(Out.table(rows))
            }
        }
    }
}

struct ImageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image", abstract: "Look at images.", subcommands: [Inspect.self])

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print an image's record and configuration as JSON.")

        @OptionGroup var globals: GlobalOptions
        @Argument(help: "Reference, image ID or ID prefix.") var image: String

        func run() throws {
            try runReporting {
                guard let img = try globals.store().image(matching: image) else {
                    throw ImageError(reason: .notFound, message: "no such image: \(image)")
                }
                Out.out(try Out.json(img))
            }
        }
    }
}

struct Rmi: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove images (by reference or ID); refused while a container uses one.")

    @OptionGroup var globals: GlobalOptions
    @Argument(help: "References or image IDs.") var images: [String]

    func run() throws {
        try runReporting {
            let store = try globals.store()
            for text in images {
                let r = try store.remove(text)
                if r.untaggedOnly {
                    Out.out("Untagged: \(text)\n")
                } else {
                    Out.out("Deleted: \(r.removed.id)\n")
                }
                if !r.gc.failures.isEmpty {
                    throw ImageError(
                        reason: .storeError,
                        message: "\(text): its files were only partly removed (husk gc tries again): \(r.gc.failures.joined(separator: "; "))")
                }
            }
        }
    }
}

struct GC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Remove what crashes orphaned: pods whose state is gone (cgroups, mounts, addresses, data, logs, image leases), then unreferenced blobs and snapshots and what crashed pulls left.",
        discussion: "Pods that still have a state, lost or not, are left to husk rm.")

    @OptionGroup var globals: GlobalOptions

    func run() throws {
        try runReporting {
            for line in PodDirectory.collectGarbage(try globals.settings()) { Out.out(line + "\n") }
            let r = try globals.store().gc()
            for b in r.blobs { Out.out("removed blob \(b)\n") }
            for s in r.snapshots { Out.out("removed snapshot \(s)\n") }
            for l in r.leftovers { Out.out("removed leftover \(l)\n") }
            Out.out("gc: \(r.blobs.count) blobs (\(Out.size(r.bytes))), \(r.snapshots.count) snapshots, \(r.leftovers.count) leftovers removed\n")
            if !r.failures.isEmpty {
                throw ImageError(reason: .storeError, message: "could not remove: \(r.failures.joined(separator: "; "))")
            }
        }
    }
}
