import Foundation
import Testing

/// The fuzz targets' seeds and every input a fuzzer once crashed on (Tests/Fuzz/TARGET), run
/// through the targets of husk-fuzz as a plain build makes it (issue 16, "Fuzzing"):
/// `Scripts/fuzz.sh` fuzzes from the same seeds.
@Suite("Fuzz targets: seeds and past findings replayed")
struct FuzzReplayTests {
    static let fuzzPath = (huskRuncPath as NSString).deletingLastPathComponent + "/husk-fuzz"
    static let seeds: String = {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().path
        dir += "/Fuzz"
        return dir
    }()

    @Test("every seed and past finding of each target runs through it without a crash",
          arguments: ["manifest", "json", "oci", "reference", "quantity", "hpack", "grpc", "tar", "spdy"])
    func replay(target: String) throws {
        let dir = Self.seeds + "/" + target
        let inputs = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(!inputs.isEmpty, "no seeds in \(dir)")
        let r = run([Self.fuzzPath, target, dir], timeout: 120)
        #expect(r.status == 0, "husk-fuzz \(target): \(r.stderr.suffix(2000))")
        #expect(r.stdout.contains("\(inputs.count) inputs, no crash"), "\(r.stdout)")
    }
}
