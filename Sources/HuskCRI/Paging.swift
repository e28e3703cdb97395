import GRPCCore

/// The Stream* RPCs (StreamPodSandboxes, StreamContainers, StreamImages, the stats ones): the
/// List RPC's reply with the same filter, sent in parts so no message nears gRPC's size limit.
enum Paging {
    static let size = 100

    /// Writes `items` in messages of at most `size` (one empty message when there are none).
    static func write<Item, Message: Sendable>(
        _ items: [Item], to response: RPCWriter<Message>, _ make: ([Item]) -> Message
    ) async throws {
        var start = 0
        repeat {
            try await response.write(make(Array(items[start..<min(start + size, items.count)])))
            start += size
        } while start < items.count
    }
}
