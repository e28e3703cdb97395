import CShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Calls `body`; a result of -1 becomes a thrown `SystemCallError` with the errno read right
/// after the call. EINTR is retried only when `retryOnInterrupt` (idempotent calls).
@discardableResult
@inline(__always)
public func syscall<T: FixedWidthInteger>(
    _ call: String, _ object: @autoclosure () -> String = "", retryOnInterrupt: Bool = true, _ body: () -> T
) throws(SystemCallError) -> T {
    while true {
        let r = body()
        if r != -1 { return r }
        let e = Glibc.errno
        if e == EINTR && retryOnInterrupt { continue }
        throw SystemCallError(call, object(), Errno(rawValue: e))
    }
}

/// strerrordesc_np without locale: the English text of an errno.
func strerrordesc(_ value: CInt) -> UnsafePointer<CChar>? {
    cshim_strerror(value)
}

/// The errno of the calling thread.
public var currentErrno: Errno { Errno(rawValue: Glibc.errno) }
