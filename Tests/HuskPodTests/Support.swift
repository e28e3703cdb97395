import HuskJSON
import HuskPod
import HuskSystem
import Testing

// Helpers shared by the manifest and validation tests.
//
// Line numbers: `FieldError.line` is 1-based and is the line of the *value* at the problem's
// path (from the YAML node marks). A block mapping's value starts on the line of its first key
// (so a problem at `lifecycle` in `lifecycle:\n  postStart: ...` is on the postStart line). A
// problem with a field that is missing is reported on the line of its nearest parent that is
// present. The manifests below are written with that convention in mind.

/// What became of a manifest.
enum Outcome {
    case accepted(Pod, warnings: [String])
    case refused([FieldError])
    case failed(any Error)
}

/// Parses a manifest given as text (YAML, or JSON when it starts with `{`).
func outcome(_ text: String) -> Outcome {
    do {
        let (pod, warnings) = try PodManifest.parse(Array(text.utf8), file: "test.yaml")
        return .accepted(pod, warnings: warnings)
    } catch let e as ManifestError {
        return .refused(e.problems)
    } catch {
        return .failed(error)
    }
}

/// Parses a manifest that must be accepted; a refusal is thrown (and so fails the test).
func accept(_ text: String) throws -> (Pod, warnings: [String]) {
    try PodManifest.parse(Array(text.utf8), file: "test.yaml")
}

/// The problems a manifest is refused for, or nil when it is accepted.
func problems(_ text: String) -> [FieldError]? {
    switch outcome(text) {
    case .accepted: return nil
    case .refused(let list): return list
    case .failed(let e): return [FieldError(path: "<unexpected error type>", message: "\(e)")]
    }
}

/// Where a problem is: what the tests compare.
struct Spot: Hashable, Comparable, CustomStringConvertible, Sendable {
    var path: String
    var line: Int?

    init(_ path: String, _ line: Int?) {
        self.path = path
        self.line = line
    }

    init(_ e: FieldError) { self.init(e.path, e.line) }

    var description: String { "\(path.isEmpty ? "<document>" : path) @ line \(line.map(String.init) ?? "nil")" }

    static func < (a: Spot, b: Spot) -> Bool { (a.path, a.line ?? 0) < (b.path, b.line ?? 0) }
}

/// The manifest with line numbers, for failure messages.
func numbered(_ text: String) -> String {
    text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        .map { "\(String($0.offset + 1).leftPadded(3))| \($0.element)" }.joined(separator: "\n")
}

extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}

/// Kubernetes' generateName alphabet (apiserver names.go): no vowels, no 0, 1 or 3.
let generateNameAlphabet = Set("bcdfghjklmnpqrstvwxz2456789")

/// RFC 4122 version 4 UUID text: 8-4-4-4-12 lowercase hex, version 4, variant 10xx.
func isUUIDv4(_ s: String) -> Bool {
    let parts = s.split(separator: "-", omittingEmptySubsequences: false)
    guard parts.map(\.count) == [8, 4, 4, 4, 12] else { return false }
    guard s.allSatisfy({ $0 == "-" || ("0"..."9").contains($0) || ("a"..."f").contains($0) }) else { return false }
    return parts[2].first == "4" && "89ab".contains(parts[3].first!)
}
