import FoundationEssentials
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// runc-style logging: errors and warnings on stderr, and in `--log FILE` as logrus writes
/// them (`--log-format json`: `{"level":"error","msg":"...","time":"..."}`; text:
/// `time="..." level=error msg="..."`), which containerd's shim reads back on failure.
final class Log: @unchecked Sendable {  // configured once in main before any concurrency
    static let shared = Log()

    private var file: FD?
    private var format: LogFormat = .text
    private var debugEnabled = false

    func configure(path: String?, format: LogFormat, debug: Bool) {
        self.format = format
        self.debugEnabled = debug
        if let path, !path.isEmpty {
            file = try? FD.open(path, O_WRONLY | O_CREAT | O_APPEND, mode: 0o644)
        }
    }

    func error(_ message: String) {
        FileHandleOut.stderr("husk-runc: \(message)\n")
        record("error", message)
    }

    func warn(_ message: String) {
        FileHandleOut.stderr("husk-runc: warning: \(message)\n")
        record("warning", message)
    }

    func debug(_ message: String) {
        guard debugEnabled else { return }
        record("debug", message)
    }

    private func record(_ level: String, _ message: String) {
        guard let file else { return }
        let time = Clock.rfc3339Nano()
        let line: String
        switch format {
        case .json:
            struct Entry: Encodable {
                let level: String
                let msg: String
                let time: String
            }
            let data = (try? JSONEncoder().encode(Entry(level: level, msg: message, time: time))) ?? Data()
            line = String(decoding: data, as: UTF8.self) + "\n"
        case .text:
            var escaped = ""
            for ch in message {
                if ch == "\\" || ch == "\"" { escaped.append("\\") }
                escaped.append(ch)
            }
            line = "time=\"\(time)\" level=\(level) msg=\"\(escaped)\"\n"
        }
        try? file.writeAll(Array(line.utf8))
    }
}

enum FileHandleOut {
    static func stdout(_ s: String) { Output.write(s, to: 1) }
    static func stderr(_ s: String) { Output.write(s, to: 2) }
}

enum LogFormat: String {
    case text, json
}
