import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// Writes a container's output in the CRI log format (pod-semantics §12):
/// `<RFC3339Nano> <stdout|stderr> <P|F> <content>\n`, one record per line; the first 16 KiB of
/// longer lines, and output without a trailing newline when it is flushed, become `P` records.
public final class CRILogWriter: @unchecked Sendable {  // used from the event loop thread only
    public static let maxLine = 16 * 1024

    private let fd: FD
    private let path: String
    private var pending: [String: [UInt8]] = ["stdout": [], "stderr": []]
    /// Bytes of records that could not be written since the last report (a full disk).
    private var lost = 0
    private var losing = false
    /// Told when records start to be lost (with why) and when they can be written again
    /// (with how many bytes were lost): what the pod's events say. Called on the writer's
    /// thread.
    public var onLoss: ((_ message: String) -> Void)?

    public init(path: String) throws(HuskError) {
        do {
            try Files.makeDirectories(String(path[..<path.lastIndex(of: "/")!]), mode: 0o755)
            fd = try FD.open(path, O_WRONLY | O_CREAT | O_APPEND, mode: 0o640)
            self.path = path
        } catch {
            throw HuskError(.system, "cannot open the log \(path)", cause: error)
        }
    }

    /// Adds output of one stream; complete lines are written at once.
    public func append(_ stream: String, _ bytes: ArraySlice<UInt8>) {
        var buf = pending[stream, default: []]
        buf.append(contentsOf: bytes)
        var start = 0
        var records: [UInt8] = []
        let ts = Array(Clock.rfc3339Nano().utf8)
        var i = 0
        while i < buf.count {
            if buf[i] == 10 {
                record(&records, ts, stream, "F", buf[start..<i])
                start = i + 1
            } else if i - start == Self.maxLine {
                // A line longer than 16 KiB: its first 16 KiB are a partial record, as
                // containerd's redirectLogs (a line of exactly 16 KiB is still one F record).
                record(&records, ts, stream, "P", buf[start..<i])
                start = i
            }
            i += 1
        }
        pending[stream] = Array(buf[start...])
        if !records.isEmpty { write(records) }
    }

    /// Writes whole records or none: a write cut short (ENOSPC, EDQUOT, EIO) is truncated
    /// back, so the file never holds half a record that the next one would be glued to. What
    /// could not be written is counted and reported (issue 16 #5).
    private func write(_ records: [UInt8]) {
        do {
            try fd.appendWhole(records)
            if losing {
                losing = false
                onLoss?("\(lost) bytes of output were lost: \(path) could not be written")
                lost = 0
            }
        } catch {
            lost += records.count
            if !losing {
                losing = true
                onLoss?("output is being lost: \(path): \(error.errno.text)")
            }
        }
    }

    /// Takes over the part-lines `other` holds (ReopenContainerLog: they go to the new file).
    public func takePending(from other: CRILogWriter) {
        for (stream, bytes) in other.pending where !bytes.isEmpty { pending[stream, default: []].append(contentsOf: bytes) }
        other.pending = ["stdout": [], "stderr": []]
    }

    /// Writes what is left of a stream as a partial record (the stream closed without a
    /// newline).
    public func flush(_ stream: String) {
        guard let rest = pending[stream], !rest.isEmpty else { return }
        var records: [UInt8] = []
        record(&records, Array(Clock.rfc3339Nano().utf8), stream, "P", rest[...])
        pending[stream] = []
        write(records)
    }

    private func record(_ out: inout [UInt8], _ ts: [UInt8], _ stream: String, _ tag: String, _ content: ArraySlice<UInt8>) {
        out.append(contentsOf: ts)
        out.append(32)
        out.append(contentsOf: Array(stream.utf8))
        out.append(32)
        out.append(contentsOf: Array(tag.utf8))
        out.append(32)
        out.append(contentsOf: content)
        out.append(10)
    }
}

/// Reads CRI log files back (`husk logs`): records joined across `P` parts.
public enum CRILogReader {
    public struct Line: Sendable, Equatable {
        public var timestamp: String
        public var stream: String
        /// The content, with a newline when the record completed a line (F).
        public var content: [UInt8]
    }

    /// Parses complete records of `bytes`; returns them and how many bytes were consumed
    /// (a trailing incomplete record is left for later, when following a file).
    public static func parse(_ bytes: [UInt8]) -> (lines: [Line], consumed: Int) {
        var out: [Line] = []
        var i = 0
        var consumed = 0
        while let nl = bytes[i...].firstIndex(of: 10) {
            let rec = bytes[i..<nl]
            i = nl + 1
            consumed = i
            let parts = rec.split(separator: 32, maxSplits: 3, omittingEmptySubsequences: false)
            guard parts.count >= 3 else { continue }
            let ts = String(decoding: parts[0], as: UTF8.self)
            let stream = String(decoding: parts[1], as: UTF8.self)
            let tags = String(decoding: parts[2], as: UTF8.self)
            var content = parts.count > 3 ? Array(parts[3]) : []
            if tags.split(separator: ":").first == "F" { content.append(10) }
            out.append(Line(timestamp: ts, stream: stream, content: content))
        }
        return (out, consumed)
    }
}
