import Testing

@testable import HuskCRI
@testable import HuskSPDY

// SPDY/3.1 framing and header compression (cri-semantics.md §5), without a socket.
@Suite("SPDY/3.1 frames")
struct SPDYTests {
    /// Adler-32, as zlib puts the dictionary's in the stream (a client with another dictionary
    /// could not read our header blocks).
    static func adler32(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        for x in bytes {
            a = (a + UInt32(x)) % 65521
            b = (b + a) % 65521
        }
        return b << 16 | a
    }

    @Test("the header dictionary is SPDY/3's: 1423 bytes, Adler-32 3821447106")
    func dictionary() {
        #expect(SPDYDictionary.count == 1423)
        #expect(Self.adler32(UnsafeBufferPointer(start: SPDYDictionary.bytes, count: SPDYDictionary.count)) == 3_821_447_106)
    }

    @Test("every frame type goes through encode and decode; header blocks across one zlib stream per direction")
    func roundTrip() throws {
        let client = SPDYCodec(), server = SPDYCodec()
        let h = SPDYHeaders([("streamtype", ["stdout"]), ("port", ["80"]), ("multi", ["a", "b"])])
        let frames: [SPDYFrame] = [
            .synStream(stream: 1, associated: 0, flags: SPDYFrame.flagFin, headers: h),
            .synStream(stream: 3, associated: 0, flags: 0, headers: h),  // the second block reuses the zlib state
            .synReply(stream: 3, flags: 0, headers: SPDYHeaders()),
            .data(stream: 3, fin: false, Array("hello".utf8)),
            .data(stream: 3, fin: true, []),
            .rstStream(stream: 5, status: SPDYFrame.cancel),
            .ping(7), .goAway(lastGood: 5, status: 0),
            .headers(stream: 3, flags: 0, headers: h),
            .windowUpdate(stream: 0, delta: 65536), .settings,
        ]
        var wire: [UInt8] = []
        for f in frames { wire += client.encode(f) }
        var at = 0
        var back: [SPDYFrame] = []
        while let f = try server.decode(wire, at: &at) { back.append(f) }
        #expect(at == wire.count)
        #expect(back == frames)
    }

    @Test("a frame cut short waits for the rest; a wrong version and a bad header block are errors")
    func partialAndBad() throws {
        let codec = SPDYCodec()
        let wire = codec.encode(.data(stream: 1, fin: false, [1, 2, 3]))
        var at = 0
        #expect(try SPDYCodec().decode(Array(wire.dropLast()), at: &at) == nil)
        #expect(at == 0)
        var v2 = SPDYCodec().encode(.ping(1))
        v2[1] = 2
        #expect(throws: SPDYError.self) { _ = try SPDYCodec().decode(v2, at: &at) }
        // SYN_STREAM whose header block is not zlib with the dictionary.
        let bad: [UInt8] = [0x80, 3, 0, 1, 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]
        at = 0
        #expect(throws: SPDYError.self) { _ = try SPDYCodec().decode(bad, at: &at) }
        // A block that claims more than it holds.
        #expect(throws: SPDYError.self) { _ = try SPDYHeaders(block: [0, 0, 0, 1, 0, 0, 0, 9, 65]) }
    }

    @Test("tokens are 8 base64url characters, used once")
    func tokens() throws {
        let t = StreamTokens()
        let token = try t.insert(.portForward(sandbox: "s"))
        #expect(token.count == 8)
        #expect(token.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
        #expect(t.take(token)?.kind == .portforward)
        #expect(t.take(token) == nil)
    }

    @Test("the error stream's status: kubelet's metav1.Status for v4, text before")
    func status() {
        #expect(RemoteCommand.status(.exited(0, cmd: ["true"]), version: 4) == #"{"metadata":{},"status":"Success"}"#)
        #expect(RemoteCommand.status(.exited(0, cmd: ["true"]), version: 3) == nil)
        let failed = RemoteCommand.status(.exited(3, cmd: ["sh", "-c", "exit 3"]), version: 4) ?? ""
        #expect(failed.contains(#""reason":"NonZeroExitCode""#))
        #expect(failed.contains(#"{"message":"3","reason":"ExitCode"}"#))
        #expect(failed.contains("command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"))
        #expect(RemoteCommand.status(.exited(3, cmd: ["x"]), version: 2)?.hasPrefix("command terminated") == true)
    }

    @Test("--stream-address forms")
    func address() throws {
        #expect(try StreamServer.split("127.0.0.1:0") == ("127.0.0.1", 0))
        #expect(try StreamServer.split("[::1]:10010") == ("::1", 10010))
        #expect(try StreamServer.split(":10010") == ("127.0.0.1", 10010))
        #expect(throws: (any Error).self) { _ = try StreamServer.split("localhost") }
        #expect(throws: (any Error).self) { _ = try StreamServer.split("host:70000") }
    }
}
