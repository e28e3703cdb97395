import HuskPod
import HuskSPDY
import HuskSystem
import NIOCore
import NIOWebSocket

// One upgraded streaming connection: the event loop reads and writes frames (`SPDYHandler`);
// the session (exec, attach, port-forward) runs on plain threads that block on its streams,
// as the pumps between a process's pipes and the client do anyway (STYLE §6.11).

/// A stream the client opened (SYN_STREAM), answered at once with an empty SYN_REPLY.
final class SPDYStream: @unchecked Sendable {  // `chunks`, `ended`, `finished` under `m`
    let id: UInt32
    let headers: SPDYHeaders
    private let connection: SPDYConnection
    private let m = Monitor()
    private var chunks: [[UInt8]] = []
    private var ended = false
    private var finished = false

    init(id: UInt32, headers: SPDYHeaders, connection: SPDYConnection) {
        self.id = id
        self.headers = headers
        self.connection = connection
    }

    /// `streamType`: error, stdin, stdout, stderr, resize, data.
    var type: String { headers["streamtype"] ?? "" }

    /// Loop side: data from the client; `fin` (or nil data with fin) ends its side.
    func deliver(_ data: [UInt8], fin: Bool) {
        m.locked {
            if !data.isEmpty && !ended { chunks.append(data) }
            if fin { ended = true }
            m.broadcast()
        }
    }

    /// Loop side: the client reset the stream or the connection ended.
    func end() {
        m.locked {
            ended = true
            finished = true
            m.broadcast()
        }
    }

    /// The client's next bytes; nil once it has closed its side (or the stream is gone).
    func read() -> [UInt8]? {
        m.locked {
            while chunks.isEmpty && !ended { m.wait() }
            return chunks.isEmpty ? nil : chunks.removeFirst()
        }
    }

    /// Sends `bytes` (in frames of at most 32 KiB) and waits until they are on the socket;
    /// false when the stream or the connection is gone.
    @discardableResult
    func write(_ bytes: [UInt8]) -> Bool {
        guard !m.locked({ finished }) else { return false }
        var at = 0
        while at < bytes.count {
            let n = min(32 << 10, bytes.count - at)
            guard connection.send(.data(stream: id, fin: false, Array(bytes[at..<(at + n)]))) else { return false }
            at += n
        }
        return true
    }

    /// Ends our side (an empty DATA frame with FIN), once.
    func close() {
        let first = m.locked { () -> Bool in
            defer { finished = true }
            return !finished
        }
        if first { _ = connection.send(.data(stream: id, fin: true, [])) }
    }

    var isFinished: Bool { m.locked { finished } }
}

/// The connection's streams and its writer. Frames go out on the event loop, in order: the
/// header compressor is one zlib stream for the whole connection.
final class SPDYConnection: @unchecked Sendable {  // `codec` on the loop; the rest under `m`
    let channel: any Channel
    let codec = SPDYCodec()
    /// nil: SPDY/3.1. Else the connection is a WebSocket of kubelet's channel protocol
    /// (`v5.channel.k8s.io` down to `channel.k8s.io`) with this version: its streams are the
    /// fixed channels, made at the upgrade, and each message is one channel byte and data.
    let webSocketVersion: Int?
    private let m = Monitor()
    private var streams: [UInt32: SPDYStream] = [:]
    private var fresh: [SPDYStream] = []
    private var lastID: UInt32 = 0
    private var closed = false

    init(channel: any Channel) {
        self.channel = channel
        webSocketVersion = nil
    }

    /// The channels of kubelet's remotecommand WebSocket protocol (wsstream).
    static let webSocketChannels = ["stdin", "stdout", "stderr", "error", "resize"]

    /// A WebSocket connection of `version` whose streams are the channels `options` asks for
    /// (error always, resize with a terminal), ready for the session at once.
    init(webSocket channel: any Channel, version: Int, options: StreamOptions) {
        self.channel = channel
        webSocketVersion = version
        let wanted = [options.stdin, options.stdout, options.stderr, true, options.tty]
        for (n, type) in Self.webSocketChannels.enumerated() where wanted[n] {
            let s = SPDYStream(id: UInt32(n), headers: SPDYHeaders([("streamtype", [type])]), connection: self)
            streams[UInt32(n)] = s
            fresh.append(s)
        }
    }

    /// Loop side: one whole WebSocket message from the client. stdin and resize carry data;
    /// v5's channel 255 closes the channel its byte names (stdin's end).
    func received(webSocketMessage message: [UInt8]) {
        guard let channel = message.first else { return }
        if channel == 255, (webSocketVersion ?? 0) >= 5 {
            if let target = message.dropFirst().first { m.locked { streams[UInt32(target)] }?.deliver([], fin: true) }
            return
        }
        guard channel == 0 || channel == 4 else { return }
        m.locked { streams[UInt32(channel)] }?.deliver(Array(message.dropFirst()), fin: false)
    }

    /// A WebSocket frame written and waited for; false when the connection is gone.
    private func send(webSocket frame: WebSocketFrame) -> Bool {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(frame, promise: promise)
        do {
            try promise.futureResult.wait()
            return true
        } catch {
            return false
        }
    }

    // MARK: The session's side (plain threads; never the loop)

    /// The next stream the client opens, or nil when `deadline` (monotonic seconds) passes or
    /// the connection ends first.
    func nextStream(until deadline: Double?) -> SPDYStream? {
        m.locked {
            while fresh.isEmpty && !closed {
                if let d = deadline, Clock.monotonicSeconds() >= d { return nil }
                m.wait(until: deadline)
            }
            return fresh.isEmpty ? nil : fresh.removeFirst()
        }
    }

    var isClosed: Bool { m.locked { closed } }

    /// Writes a frame and waits until it is on the socket; false when the connection is gone.
    func send(_ frame: SPDYFrame) -> Bool {
        if m.locked({ closed }) { return false }
        if webSocketVersion != nil {
            // A stream's data is a message on its channel; an end or a reset has no message
            // (wsstream sends none); GOAWAY is the WebSocket close (1000, normal).
            switch frame {
            case .data(let id, _, let bytes) where !bytes.isEmpty:
                return send(webSocket: WebSocketFrame(fin: true, opcode: .binary, data: ByteBuffer(bytes: [UInt8(truncatingIfNeeded: id)] + bytes)))
            case .goAway:
                return send(webSocket: WebSocketFrame(fin: true, opcode: .connectionClose, data: ByteBuffer(bytes: [0x03, 0xe8])))
            default:
                return true
            }
        }
        let promise = channel.eventLoop.makePromise(of: Void.self)
        channel.eventLoop.execute { [self] in
            channel.writeAndFlush(ByteBuffer(bytes: codec.encode(frame)), promise: promise)
        }
        do {
            try promise.futureResult.wait()
            return true
        } catch {
            return false
        }
    }

    /// Resets the streams we did not close (CANCEL), says GOAWAY and closes the socket, as
    /// apimachinery's connection Close does.
    func close() {
        let open = m.locked { () -> [SPDYStream] in
            if closed { return [] }
            return streams.values.filter { !$0.isFinished }.sorted { $0.id < $1.id }
        }
        for s in open { _ = send(.rstStream(stream: s.id, status: SPDYFrame.cancel)) }
        let last = m.locked { lastID }
        _ = send(.goAway(lastGood: last, status: 0))
        ended()
        channel.close(promise: nil)
    }

    // MARK: The loop's side

    /// A frame from the client.
    func received(_ frame: SPDYFrame) {
        switch frame {
        case .synStream(let id, _, let flags, let headers):
            let accepted = m.locked { () -> SPDYStream? in
                // Client streams are odd and increasing (SPDY §2.3.2).
                guard !closed, id & 1 == 1, id > lastID else { return nil }
                lastID = id
                let s = SPDYStream(id: id, headers: headers, connection: self)
                streams[id] = s
                return s
            }
            guard let s = accepted else {
                write(.rstStream(stream: id, status: SPDYFrame.protocolError))
                return
            }
            write(.synReply(stream: id, flags: 0, headers: SPDYHeaders()))
            if flags & SPDYFrame.flagFin != 0 { s.deliver([], fin: true) }
            m.locked {
                fresh.append(s)
                m.broadcast()
            }
        case .data(let id, let fin, let data):
            m.locked { streams[id] }?.deliver(data, fin: fin)
        case .rstStream(let id, _):
            m.locked { streams[id] }?.end()
        case .ping(let id):
            if id & 1 == 1 { write(.ping(id)) }  // the client's: echo it (SPDY §2.6.5)
        case .goAway:
            ended()
        case .synReply, .headers, .settings, .windowUpdate, .unknown:
            // Flow control is not enforced: client-go's SPDY never sends WINDOW_UPDATE
            // (cri-semantics.md §5), so neither side may wait for one.
            break
        }
    }

    /// A frame written from the loop, not waited for.
    func write(_ frame: SPDYFrame) {
        channel.writeAndFlush(ByteBuffer(bytes: codec.encode(frame)), promise: nil)
    }

    /// The connection is over: every stream ends and waiters wake.
    func ended() {
        let all = m.locked { () -> [SPDYStream] in
            closed = true
            m.broadcast()
            return Array(streams.values)
        }
        for s in all { s.end() }
    }
}

/// Reads frames off the upgraded socket and hands them to the connection.
final class SPDYHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    let connection: SPDYConnection
    private var buffer: [UInt8] = []

    init(connection: SPDYConnection) {
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        buffer += bytes.readBytes(length: bytes.readableBytes) ?? []
        var at = 0
        do {
            while let frame = try connection.codec.decode(buffer, at: &at) {
                connection.received(frame)
            }
        } catch {
            // A frame we cannot read: the connection cannot go on (SPDY §2.4.1).
            connection.write(.goAway(lastGood: 0, status: SPDYFrame.protocolError))
            connection.ended()
            context.close(promise: nil)
            return
        }
        if at > 0 { buffer.removeFirst(at) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.lost(context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        connection.failed(context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        connection.idle(context, event) { connection.write(.goAway(lastGood: 0, status: 0)) }
    }
}

/// The end of a connection, the same for both readers (SPDYHandler, WebSocketChannelHandler).
extension SPDYConnection {
    /// The socket closed: every stream ends.
    func lost(_ context: ChannelHandlerContext) {
        ended()
        context.fireChannelInactive()
    }

    /// The socket failed: every stream ends and the socket closes.
    func failed(_ context: ChannelHandlerContext) {
        ended()
        context.close(promise: nil)
    }

    /// No frame either way for the idle timeout (IdleStateHandler before the reader): `goodbye`
    /// says so on the wire, then the connection is closed, as containerd's stream_idle_timeout
    /// does. Any other event is passed on.
    func idle(_ context: ChannelHandlerContext, _ event: Any, goodbye: () -> Void = {}) {
        if case IdleStateHandler.IdleStateEvent.all? = event as? IdleStateHandler.IdleStateEvent {
            goodbye()
            failed(context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Reads WebSocket frames off the upgraded socket (kubelet's channel protocol) and hands whole
/// messages to the connection; answers pings, and a close with a close.
final class WebSocketChannelHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let connection: SPDYConnection
    private var message: [UInt8] = []
    private var inMessage = false

    init(connection: SPDYConnection) {
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        var payload = frame.unmaskedData
        let bytes = payload.readBytes(length: payload.readableBytes) ?? []
        switch frame.opcode {
        case .binary, .continuation:
            guard frame.opcode == .binary || inMessage else { return protocolError(context) }
            if frame.opcode == .binary { message = [] }
            message += bytes
            inMessage = !frame.fin
            if frame.fin { connection.received(webSocketMessage: message) }
        case .text:
            // Only the binary protocols are spoken (no base64.channel.k8s.io).
            protocolError(context)
        case .ping:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: ByteBuffer(bytes: bytes))), promise: nil)
        case .connectionClose:
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: ByteBuffer(bytes: Array(bytes.prefix(2))))))
                .whenComplete { _ in channel.close(promise: nil) }
            connection.ended()
        default:
            break
        }
    }

    private func protocolError(_ context: ChannelHandlerContext) {
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: ByteBuffer(bytes: [0x03, 0xea]))))
            .whenComplete { _ in channel.close(promise: nil) }
        connection.ended()
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.lost(context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        connection.failed(context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        connection.idle(context, event)
    }
}
