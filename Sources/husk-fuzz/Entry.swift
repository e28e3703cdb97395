import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

#if HUSK_LIBFUZZER
/// libFuzzer's entry: the target is named by HUSK_FUZZ_TARGET (Scripts/fuzz.sh sets it).
let target: @Sendable ([UInt8]) -> Void = {
    let name = String(cString: getenv("HUSK_FUZZ_TARGET") ?? strdup("")!)
    guard let t = FuzzTargets.all[name] else {
        fatalError("HUSK_FUZZ_TARGET must be one of \(FuzzTargets.all.keys.sorted().joined(separator: ", ")), not \"\(name)\"")
    }
    return t
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    target(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// SwiftPM links an executable's `main` to `<module>_main` (for its tests); here that is
/// libFuzzer's driver.
@_cdecl("husk_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var values = argv
    return LLVMFuzzerRunDriver(&count, &values) { data, size in fuzzOne(data, size) }
}
#else
/// Without libFuzzer: `husk-fuzz TARGET PATH...` runs each file (or each file of a directory)
/// through the target once: corpora and past crashes as regression inputs.
@main
struct Replay {
    static func main() {
        let args = CommandLine.arguments
        guard args.count >= 3, let target = FuzzTargets.all[args[1]] else {
            Output.writeAll(2, Array("usage: husk-fuzz \(FuzzTargets.all.keys.sorted().joined(separator: "|")) PATH...\n".utf8))
            exit(2)
        }
        var count = 0
        for path in args.dropFirst(2) {
            let files = Files.list(path).map { $0.sorted().map { path + "/" + $0 } } ?? [path]
            for file in files {
                guard let bytes = (try? Files.read(file)) ?? nil else { continue }
                target(bytes)
                count += 1
            }
        }
        Output.writeAll(1, Array("husk-fuzz \(args[1]): \(count) inputs, no crash\n".utf8))
    }
}
#endif
