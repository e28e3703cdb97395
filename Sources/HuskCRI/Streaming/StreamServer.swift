import GRPCCore
import HuskJSON
import HuskPod
import HuskSPDY
import HuskSystem
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

// The streaming server (cri-semantics.md §5): Exec, Attach and PortForward answer with a
// one-time URL on it; the client (kubelet's proxy, crictl, critest) POSTs there, upgrades
// to SPDY/3.1 and speaks kubelet's remotecommand or port-forward protocol, or (exec and attach)
// GETs with a WebSocket upgrade and speaks kubelet's channel protocol. HTTP and WebSocket are
// SwiftNIO's; what runs after the upgrade is SPDY.swift and the sessions (StreamSessions.swift).

/// Which streaming call a URL is for (its first path segment).
enum StreamKind: String, Sendable {
    case exec, attach, portforward

    /// The sub-protocols offered in `X-Stream-Protocol-Version`, newest first.
    var protocols: [String] {
        switch self {
        case .exec, .attach: return ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"]
        case .portforward: return ["portforward.k8s.io"]
        }
    }
}

/// The streams a remotecommand client asked for in its CRI request.
struct StreamOptions: Sendable, Equatable {
    var stdin = false
    var stdout = false
    var stderr = false
    var tty = false
}

/// What a token stands for: the CRI request, validated when it was made.
enum StreamRequest: Sendable {
    case exec(sandbox: String, container: String, cmd: [String], StreamOptions)
    case attach(sandbox: String, container: String, StreamOptions)
    case portForward(sandbox: String)

    var kind: StreamKind {
        switch self {
        case .exec: return .exec
        case .attach: return .attach
        case .portForward: return .portforward
        }
    }
}

/// One-time tokens (kubelet's request cache): 8 base64url characters from 6 random bytes,
/// valid for a minute, dropped at their first use; at most 1000 pending.
final class StreamTokens: @unchecked Sendable {  // `pending` under `m`
    static let ttl = 60.0
    static let capacity = 1000
    private let m = Monitor()
    private var pending: [String: (request: StreamRequest, expires: Double)] = [:]

    func insert(_ request: StreamRequest) throws(RPCError) -> String {
        let now = Clock.monotonicSeconds()
        var rng = SystemRandomNumberGenerator()
        let token = m.locked { () -> String? in
            pending = pending.filter { $0.value.expires > now }
            guard pending.count < Self.capacity else { return nil }
            var token = ""
            repeat {
                let bytes = (0..<6).map { _ in UInt8.random(in: 0...255, using: &rng) }
                token = Base64.encode(bytes).replacingOccurrences("+", "-").replacingOccurrences("/", "_")
            } while pending[token] != nil
            pending[token] = (request, now + Self.ttl)
            return token
        }
        guard let token else {
            throw RPCError(code: .resourceExhausted, message: "maximum number of pending streaming requests (\(Self.capacity)) reached")
        }
        return token
    }

    /// The request of `token`, once: a later lookup (or one after the minute) finds nothing.
    func take(_ token: String) -> StreamRequest? {
        let now = Clock.monotonicSeconds()
        return m.locked {
            guard let e = pending.removeValue(forKey: token), e.expires > now else { return nil }
            return e.request
        }
    }
}

extension String {
    fileprivate func replacingOccurrences(_ a: Character, _ b: Character) -> String {
        String(map { $0 == a ? b : $0 })
    }
}

/// The HTTP side: listens on `--stream-address`, upgrades the requests that carry a live token
/// and hands each upgraded connection to `session` on a thread of its own.
final class StreamServer: Sendable {
    let tokens = StreamTokens()
    /// `http://host:port`, what the URLs start with.
    let baseURL: String
    private let channel: any Channel

    typealias Session = @Sendable (StreamRequest, String, SPDYConnection) -> Void

    /// Binds `address` (`host:port`, `[v6]:port`; port 0 picks a free one). An upgraded
    /// connection with no frame either way for `idleTimeout` seconds is closed.
    init(address: String, idleTimeout: Double = 4 * 3600, session: @escaping Session) throws {
        let (host, port) = try Self.split(address)
        let tokens = self.tokens
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes))
                    let encoder = HTTPResponseEncoder()
                    let ops = channel.pipeline.syncOperations
                    try ops.addHandler(decoder)
                    try ops.addHandler(encoder)
                    try ops.addHandler(StreamHTTPHandler(tokens: tokens, decoder: decoder, encoder: encoder, idleTimeout: idleTimeout,
                                                         session: session))
                }
            }
        channel = try bootstrap.bind(host: host, port: port).wait()
        let bound = channel.localAddress?.port ?? port
        baseURL = "http://" + (host.contains(":") ? "[\(host)]" : host) + ":\(bound)"
    }

    static func split(_ address: String) throws -> (String, Int) {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
              (0...65535).contains(port)
        else {
            throw HuskError(.invalidArgument, "--stream-address \(address): want host:port (127.0.0.1:0 picks a free port)")
        }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "127.0.0.1" : host, port)
    }

    /// A one-time URL for `request`.
    func url(for request: StreamRequest) throws(RPCError) -> String {
        baseURL + "/" + request.kind.rawValue + "/" + (try tokens.insert(request))
    }

    func close() {
        channel.close(promise: nil)
    }
}

/// One HTTP request per connection: `/exec|attach|portforward/<token>`, upgraded to SPDY/3.1
/// with the first sub-protocol the client offers that the server speaks.
final class StreamHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let tokens: StreamTokens
    let decoder: ByteToMessageHandler<HTTPRequestDecoder>
    let encoder: HTTPResponseEncoder
    let session: StreamServer.Session
    let idleTimeout: Double
    private var head: HTTPRequestHead?

    init(tokens: StreamTokens, decoder: ByteToMessageHandler<HTTPRequestDecoder>, encoder: HTTPResponseEncoder,
         idleTimeout: Double, session: @escaping StreamServer.Session) {
        self.tokens = tokens
        self.decoder = decoder
        self.encoder = encoder
        self.idleTimeout = idleTimeout
        self.session = session
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break
        case .end:
            if let h = head { serve(context, h) }
            head = nil
        }
    }

    private func fail(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ message: String, _ extra: [(String, String)] = []) {
        var headers = HTTPHeaders(extra)
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: "\(message.utf8.count + 1)")
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: message + "\n")))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }

    private func serve(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
        let parts = path.split(separator: "/").map(String.init)
        guard head.method == .GET || head.method == .POST, parts.count == 2, let kind = StreamKind(rawValue: parts[0]) else {
            return fail(context, .notFound, "404 page not found")
        }
        guard let request = tokens.take(parts[1]), request.kind == kind else {
            return fail(context, .notFound, "token not found: \(parts[1]) (it is used once and lasts a minute)")
        }
        if head.headers[canonicalForm: "Upgrade"].contains(where: { $0.lowercased() == "websocket" }) {
            return serveWebSocket(context, head, request)
        }
        // httpstream.Handshake: the client's protocols in its order, the first the server speaks.
        let offered = head.headers[canonicalForm: "X-Stream-Protocol-Version"].map { String($0) }
        guard !offered.isEmpty else {
            return fail(context, .badRequest, "unable to upgrade: X-Stream-Protocol-Version is required")
        }
        guard let chosen = offered.first(where: { kind.protocols.contains($0) }) else {
            return fail(context, .forbidden,
                        "unable to upgrade: unable to negotiate protocol: client supports \(offered), server accepts \(kind.protocols)",
                        kind.protocols.map { ("X-Accepted-Stream-Protocol-Versions", $0) })
        }
        let connection = head.headers[canonicalForm: "Connection"].map { $0.lowercased() }
        guard connection.contains("upgrade"), head.headers["Upgrade"].contains(where: { $0.lowercased() == "spdy/3.1" }) else {
            return fail(context, .badRequest, "unable to upgrade: missing upgrade headers in request: \(head.headers)")
        }
        let headers = HTTPHeaders([("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"), ("X-Stream-Protocol-Version", chosen)])
        // The 101 is encoded as it is written; then the HTTP handlers make way for SPDY's, which
        // gets whatever the decoder had read past the request.
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers))),
                              promise: nil)
        let conn = SPDYConnection(channel: context.channel)
        handOver(context, conn, request, chosen) { ops, idle in
            let spdy = SPDYHandler(connection: conn)
            try ops.addHandler(spdy, position: .after(decoder))
            try ops.addHandler(idle, position: .before(spdy))
        }
    }

    /// After the 101: `install` puts the protocol's handlers in (right after the HTTP decoder,
    /// which hands them what it read past the request; `idle` is the idle timeout's handler),
    /// the HTTP handlers go, `opened` runs, and the session starts on a thread of its own.
    private func handOver(_ context: ChannelHandlerContext, _ conn: SPDYConnection, _ request: StreamRequest, _ proto: String,
                          install: (ChannelPipeline.SynchronousOperations, IdleStateHandler) throws -> Void, opened: () -> Void = {}) {
        let ops = context.pipeline.syncOperations
        do {
            try install(ops, IdleStateHandler(allTimeout: .milliseconds(Int64(idleTimeout * 1000))))
        } catch {
            context.close(promise: nil)
            return
        }
        ops.removeHandler(encoder, promise: nil)
        ops.removeHandler(decoder, promise: nil)
        ops.removeHandler(context: context, promise: nil)
        opened()
        let session = self.session
        Threads.spawn("husk-serve-stream") { session(request, proto, conn) }
    }

    /// kubelet's WebSocket streams (wsstream, remotecommand's websocket.go): a GET upgraded
    /// with the first of the client's `Sec-WebSocket-Protocol` values the server speaks
    /// (none offered: `channel.k8s.io`'s framing); exec and attach only.
    private func serveWebSocket(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ request: StreamRequest) {
        let options: StreamOptions
        switch request {
        case .exec(_, _, _, let o), .attach(_, _, let o): options = o
        case .portForward:
            return fail(context, .badRequest, "unable to upgrade: port-forward is served over SPDY/3.1 only (portforward.k8s.io), not WebSocket")
        }
        guard head.method == .GET else {
            return fail(context, .badRequest, "unable to upgrade: a WebSocket upgrade is a GET, not \(head.method)")
        }
        let supported = ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"]
        let offered = head.headers[canonicalForm: "Sec-WebSocket-Protocol"].flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: " ") }.filter { !$0.isEmpty }
        let chosen: String?
        if offered.isEmpty {
            chosen = nil
        } else if let p = offered.first(where: { supported.contains($0) }) {
            chosen = p
        } else {
            return fail(context, .badRequest, "unable to upgrade: requested protocol(s) are not supported: \(offered); supported: \(supported)")
        }
        // The handshake's checks (Connection, version 13, the key) and Sec-WebSocket-Accept
        // come from NIOWebSocket.
        let upgrader = NIOWebSocketServerUpgrader(maxFrameSize: 1 << 20, automaticErrorHandling: false,
                                                  shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
                                                  upgradePipelineHandler: { channel, _ in channel.eventLoop.makeSucceededVoidFuture() })
        // Completed at once (shouldUpgrade's future is), on this loop: the callback runs inline.
        var built: Result<HTTPHeaders, any Error>? = nil
        upgrader.buildUpgradeResponse(channel: context.channel, upgradeRequest: head, initialResponseHeaders: HTTPHeaders())
            .assumeIsolated().whenComplete { built = $0 }
        var response: HTTPHeaders
        switch built {
        case .success(let h)?: response = h
        case .failure(let error)?: return fail(context, .badRequest, "unable to upgrade: \(error)")
        case nil: return fail(context, .internalServerError, "unable to upgrade: the WebSocket handshake did not complete")
        }
        if let chosen { response.add(name: "Sec-WebSocket-Protocol", value: chosen) }
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: response))),
                              promise: nil)
        let proto = chosen ?? "channel.k8s.io"
        let version = proto.first == "v" ? Int(String(proto.dropFirst().prefix { $0.isNumber })) ?? 1 : 1
        let conn = SPDYConnection(webSocket: context.channel, version: version, options: options)
        let channel = context.channel
        handOver(context, conn, request, proto, install: { ops, idle in
            let frames = ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 20))
            try ops.addHandler(frames, position: .after(decoder))
            try ops.addHandler(idle, position: .after(frames))
            // The encoder before the handler: the handler's own writes (pong, close) pass it.
            try ops.addHandler(WebSocketFrameEncoder(), position: .last)
            try ops.addHandler(WebSocketChannelHandler(connection: conn), position: .last)
        }, opened: {
            // wsstream's open: an empty message on the lowest channel the server writes.
            let first: UInt8 = options.stdout ? 1 : options.stderr ? 2 : 3
            channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .binary, data: ByteBuffer(bytes: [first])), promise: nil)
        })
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        String(drop { $0 == set }.reversed().drop { $0 == set }.reversed())
    }
}
