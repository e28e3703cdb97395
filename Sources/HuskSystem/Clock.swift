#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Time helpers without Foundation: monotonic seconds and RFC 3339 timestamps.
public enum Clock {
    public static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Wall-clock time as (seconds, nanoseconds) since the epoch.
    public static func now() -> (sec: Int, nsec: Int) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return (Int(ts.tv_sec), Int(ts.tv_nsec))
    }

    /// RFC 3339 in UTC with nanoseconds, as CRI logs and runc's state use:
    /// `2016-10-06T00:17:09.669794202Z`.
    public static func rfc3339Nano(_ t: (sec: Int, nsec: Int) = now()) -> String {
        var secs = time_t(t.sec)
        var tm = tm()
        gmtime_r(&secs, &tm)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        let frac = String(t.nsec)
        let nanos = String(repeating: "0", count: 9 - frac.count) + frac
        return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T"
            + "\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(nanos)Z"
    }

    /// RFC 3339 in UTC with whole seconds, as Kubernetes writes metav1.Time:
    /// `2016-10-06T00:17:09Z`.
    public static func rfc3339(_ t: (sec: Int, nsec: Int) = now()) -> String {
        seconds(of: rfc3339Nano(t))
    }

    /// An RFC 3339 time with its fraction of a second removed.
    public static func seconds(of text: String) -> String {
        guard let dot = text.firstIndex(of: "."), let z = text.lastIndex(of: "Z"), dot < z else { return text }
        return String(text[..<dot]) + "Z"
    }
}
