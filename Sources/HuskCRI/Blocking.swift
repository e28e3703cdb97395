import GRPCCore
import HuskPod

/// Work that blocks (file system walks, pulls, anything that waits on the kernel) runs on a
/// thread of its own, never on Swift concurrency's cooperative pool: two blocked pool threads
/// would stall every RPC on this two-core machine (STYLE §6.11). What it throws comes back as
/// the gRPC error its kind calls for (CRIError.from).
enum Blocking {
    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws(RPCError) -> T {
        do {
            return try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
                Threads.spawn("husk-serve-io") {
                    c.resume(with: Result { try body() })
                }
            }
        } catch {
            throw CRIError.from(error)
        }
    }
}
