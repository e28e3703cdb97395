import GRPCCore
import GRPCNIOTransportHTTP2Posix
import HuskImage
import HuskPod
import HuskSystem

/// `husk serve`: CRI v1's RuntimeService and ImageService over gRPC on a unix socket.
///
/// Every method is served twice: as `runtime.v1` and as `runtime.v1alpha2`. The v1alpha2
/// messages of the RPCs both versions have are wire-identical, and containerd 1.6/1.7 serve both
/// for older kubelets and crictls; the same handlers are registered under the second package
/// (Generated/api.alias.swift).
///
/// The daemon owns no pod and keeps no state that is not on disk (DESIGN §3, CRI mode):
/// stopping it stops serving and nothing else.
public final class CRIServer: Sendable {
    public static let packages = ["runtime.v1", "runtime.v1alpha2"]
    /// kubelet and crictl send messages of up to 16 MiB (cri-semantics.md §1).
    static let maxRequestBytes = 16 << 20

    public let config: CRIConfiguration
    private let socket: CRISocket
    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    private let streams: StreamServer

    /// Claims the socket path (refusing a live one, replacing a stale one) and prepares the
    /// services; nothing listens before `run`.
    public init(config: CRIConfiguration) throws {
        self.config = config
        var options = ImageStoreOptions()
        if let cap = config.settings.maxLayerSize { options.maxLayerBytes = cap }
        let store = try ImageStore(root: config.settings.root, options: options)
        socket = try CRISocket(path: config.socketPath)

        var transportConfig = HTTP2ServerTransport.Posix.Config.defaults
        transportConfig.rpc.maxRequestPayloadSize = Self.maxRequestBytes
        let transport = HTTP2ServerTransport.Posix(
            address: .unixDomainSocket(path: config.socketPath), transportSecurity: .plaintext, config: transportConfig)

        let sessions = StreamSessions(settings: config.settings)
        streams = try StreamServer(address: config.streamAddress, idleTimeout: config.streamIdleTimeout) { request, proto, conn in
            sessions.run(request, proto: proto, conn: conn)
        }
        let runtime = RuntimeService(config: config, streams: streams)
        let images = ImageService(config: config, store: store)
        var router = RPCRouter<HTTP2ServerTransport.Posix>()
        runtime.registerMethods(with: &router)
        images.registerMethods(with: &router)
        for package in Self.packages.dropFirst() {
            runtime.registerMethods(with: &router, package: package)
            images.registerMethods(with: &router, package: package)
        }
        server = GRPCServer(transport: transport, router: router)
    }

    /// Serves until `shutdown()`, then returns once the RPCs under way have finished; the
    /// socket file is removed on the way out. `listening` is called once the socket accepts
    /// connections.
    public func run(listening: @Sendable () -> Void = {}) async throws {
        defer { socket.remove() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.server.serve() }
            do {
                _ = try await server.listeningAddress
                try socket.listening()
            } catch {
                server.beginGracefulShutdown()
                try await group.waitForAll()
                throw error
            }
            listening()
            try await group.waitForAll()
        }
    }

    /// Stops accepting connections and RPCs; `run` returns when those under way are done.
    public func shutdown() {
        streams.close()
        server.beginGracefulShutdown()
    }

    /// Removes the socket file now (a forced exit, when `run` will not return).
    /// The streaming server's base URL (`http://127.0.0.1:<port>`).
    public var streamURL: String { streams.baseURL }

    public func removeSocket() {
        socket.remove()
    }
}

extension MethodDescriptor {
    /// The same method in another package: `runtime.v1.ImageService/PullImage` in
    /// `runtime.v1alpha2` is `runtime.v1alpha2.ImageService/PullImage`.
    public func inPackage(_ package: String) -> MethodDescriptor {
        MethodDescriptor(service: ServiceDescriptor(package: package, service: service.service), method: method, type: type)
    }
}
