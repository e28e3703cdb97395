import HuskJSON
import HuskPod
import HuskSystem
import Testing

/// The control socket's messages (PodClient.swift): every request and reply through its JSON
/// and back, the bytes on the wire (a supervisor and a command line of the same build must
/// agree, and these are the bytes they always sent), bad requests, attach frames.
struct ControlProtocolTests {
    static let requests: [ControlRequest] = [
        .stop(grace: nil),
        .stop(grace: 0),
        .stop(grace: 30),
        .exec(container: "app", argv: ["sh", "-c", "echo \"hi\""], tty: false),
        .exec(container: "app", argv: ["sh"], tty: true),
        .exec(container: nil, argv: ["true"], tty: false),
        .attach(container: "app", stdin: true),
        .attach(container: "app", stdin: false),
        .attach(container: nil, stdin: false),
        .runtime(call: "startContainer", body: .object(["id": .string("abc")])),
        .runtime(call: "podSandboxStatus", body: .object([:])),
    ]

    @Test("every request survives its JSON, as text too", arguments: requests)
    func requestRoundTrip(_ r: ControlRequest) throws {
        #expect(try ControlRequest(json: r.json) == r)
        let line = r.line
        #expect(line.last == 10 && line.filter { $0 == 10 }.count == 1)
        #expect(try ControlRequest(json: JSONParser.parse(line.dropLast())) == r)
    }

    @Test("the request bytes are the ones the command line always sent")
    func requestBytes() {
        func text(_ r: ControlRequest) -> String { String(decoding: r.line, as: UTF8.self) }
        #expect(text(.stop(grace: nil)) == #"{"grace":null,"op":"stop"}"# + "\n")
        #expect(text(.stop(grace: 0)) == #"{"grace":0,"op":"stop"}"# + "\n")
        #expect(text(.exec(container: "c", argv: ["ls", "/"], tty: false)) == #"{"argv":["ls","/"],"container":"c","op":"exec"}"# + "\n")
        #expect(text(.exec(container: "c", argv: ["sh"], tty: true)) == #"{"argv":["sh"],"container":"c","op":"exec","tty":true}"# + "\n")
        #expect(text(.attach(container: "c", stdin: false)) == #"{"container":"c","op":"attach","stdin":false}"# + "\n")
        #expect(text(.runtime(call: "startContainer", body: .object(["id": .string("c1")])))
                == #"{"body":{"id":"c1"},"call":"startContainer","op":"runtime"}"# + "\n")
    }

    @Test("a runtime call's failure keeps HuskError's code; base64 of output survives any bytes")
    func runtimeReplies() throws {
        let r = try ControlReply(json: JSONParser.parse(Array(#"{"code":"invalidState","error":"not running"}"#.utf8)))
        #expect(r == .failed(code: "invalidState", message: "not running"))
        #expect(HuskError.Code(named: "invalidState") == .invalidState && HuskError.Code(named: "bogus") == nil)
        let bytes: [UInt8] = Array(0...255) + [0, 1]
        for n in 0..<6 { #expect(Base64.decode(Base64.encode(bytes.prefix(n))) == Array(bytes.prefix(n))) }
        #expect(Base64.decode(Base64.encode(bytes)) == bytes)
        #expect(Base64.encode(Array("hi\n".utf8)) == "aGkK" && Base64.decode("aGk=") == Array("hi".utf8))
        #expect(Base64.decode("a*==") == nil && Base64.decode("aG=k") == nil)
    }

    @Test("defaults: no container is the first app container, no tty or stdin is false, no grace the pod's")
    func requestDefaults() throws {
        #expect(try ControlRequest(json: JSONParser.parse(Array(#"{"op":"stop"}"#.utf8))) == .stop(grace: nil))
        #expect(try ControlRequest(json: JSONParser.parse(Array(#"{"op":"exec","argv":["x"]}"#.utf8))) == .exec(container: nil, argv: ["x"], tty: false))
        #expect(try ControlRequest(json: JSONParser.parse(Array(#"{"op":"attach","container":null}"#.utf8))) == .attach(container: nil, stdin: false))
    }

    static let badRequests: [(String, String)] = [
        (#"[1]"#, "bad request: a request is a JSON object, not an array"),
        (#"{}"#, #"bad request: no "op""#),
        (#"{"op":7}"#, #"bad request: "op" must be a string, not a number"#),
        (#"{"op":"dance"}"#, #"unknown request "dance": the ops are stop, exec, attach and runtime"#),
        (#"{"op":"exec"}"#, "exec needs a command"),
        (#"{"op":"exec","argv":[]}"#, "exec needs a command"),
        (#"{"op":"exec","argv":["ls",1]}"#, #"bad request: "argv" must be an array of strings"#),
        (#"{"op":"exec","argv":["ls"],"container":3}"#, #"bad request: "container" must be a string, not a number"#),
        (#"{"op":"exec","argv":["ls"],"tty":"yes"}"#, #"bad request: "tty" must be true or false, not a string"#),
        (#"{"op":"attach","stdin":1}"#, #"bad request: "stdin" must be true or false, not a number"#),
        (#"{"op":"stop","grace":2.5}"#, #"bad request: "grace" must be a whole number of seconds, at least 0, not 2.5"#),
        (#"{"op":"stop","grace":-1}"#, #"bad request: "grace" must be a whole number of seconds, at least 0, not -1"#),
        (#"{"op":"stop","grace":"10"}"#, #"bad request: "grace" must be a whole number of seconds, at least 0, not "10""#),
    ]

    @Test("a bad request is refused with what is wrong with it", arguments: badRequests)
    func badRequest(_ t: (String, String)) throws {
        let doc = try JSONParser.parse(Array(t.0.utf8))
        #expect(throws: HuskError.self) { try ControlRequest(json: doc) }
        do {
            _ = try ControlRequest(json: doc)
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message == t.1)
        }
    }

    static let replies: [ControlReply] = [.ok, .exitCode(0), .exitCode(137), .exitCode(-1), .terminal, .attached(tty: true), .attached(tty: false), .error("container c is not running"),
        .value(.object(["exitCode": .number(2), "stdout": .string("aGkK")])), .value(.object([:])),
        .failed(code: "notFound", message: "container \"x\" not found in sandbox s"),
    ]

    @Test("every reply survives its JSON", arguments: replies)
    func replyRoundTrip(_ r: ControlReply) throws {
        #expect(try ControlReply(json: r.json) == r)
        #expect(try ControlReply(json: JSONParser.parse(r.line.dropLast())) == r)
    }

    @Test("the reply bytes are the ones the supervisor always sent; an unknown reply is an error")
    func replyBytes() throws {
        func text(_ r: ControlReply) -> String { String(decoding: r.line, as: UTF8.self) }
        #expect(text(.ok) == #"{"ok":true}"# + "\n")
        #expect(text(.exitCode(3)) == #"{"exitCode":3}"# + "\n")
        #expect(text(.terminal) == #"{"tty":true}"# + "\n")
        #expect(text(.attached(tty: false)) == #"{"attached":true,"tty":false}"# + "\n")
        #expect(text(.error("no")) == #"{"error":"no"}"# + "\n")
        #expect(throws: HuskError.self) { try ControlReply(json: .object(["what": .bool(true)])) }
    }

    @Test("attach frames: output and the exit code, complete ones taken, a partial one left for more bytes")
    func frames() {
        let exit = AttachFrame.exit(42).bytes
        #expect(exit == [UInt8(ascii: "E"), 0, 0, 0, 15] + Array(#"{"exitCode":42}"#.utf8))
        #expect(AttachFrame.output(stream: 2, [1, 2, 3]).bytes == [2, 0, 0, 0, 3, 1, 2, 3])
        #expect(AttachFrame.bytes(1, [9][...]) == AttachFrame.output(stream: 1, [9]).bytes)
        let all = AttachFrame.output(stream: 1, Array("out".utf8)).bytes + AttachFrame.output(stream: 2, []).bytes + exit
        var buffer = Array(all.dropLast(4))
        #expect(AttachFrame.take(from: &buffer) == [.output(stream: 1, Array("out".utf8)), .output(stream: 2, [])])
        #expect(buffer == Array(exit.dropLast(4)))
        buffer += all.suffix(4)
        #expect(AttachFrame.take(from: &buffer) == [.exit(42)])
        #expect(buffer.isEmpty)
        // A last frame that does not say how the container ended: 0.
        var odd = AttachFrame.bytes(UInt8(ascii: "E"), Array("{}".utf8))
        #expect(AttachFrame.take(from: &odd) == [.exit(0)])
    }
}
