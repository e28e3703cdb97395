import HuskSystem

/// The daemon's log: one line per event on stderr (journald or the caller keeps it),
/// `<RFC 3339 time> <message>`.
public enum CRILog {
    public static func info(_ message: String) {
        Output.write("\(Clock.rfc3339Nano()) \(message)\n", to: 2)
    }
}
