import SystemPackage

/// The error every Husk layer throws: a stable code, a lower-case message that says what was
/// wrong and where, and the underlying cause.
public struct HuskError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is; codes can grow without breaking clients.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Sendable {
            case invalidArgument, notFound, alreadyExists, invalidState, unsupported, internalError, timeout, system
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        public static let invalidArgument = Code(.invalidArgument)
        public static let notFound = Code(.notFound)
        public static let alreadyExists = Code(.alreadyExists)
        public static let invalidState = Code(.invalidState)
        public static let unsupported = Code(.unsupported)
        public static let internalError = Code(.internalError)
        public static let timeout = Code(.timeout)
        public static let system = Code(.system)

        public var description: String { value.rawValue }

        /// The code named by `description` (nil: not a code).
        public init?(named name: String) {
            guard let v = Value(rawValue: name) else { return nil }
            value = v
        }
    }

    public var code: Code
    public var message: String
    public var cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        guard let cause else { return message }
        return "\(message): \(cause)"
    }
}

/// A failed system call: which call, on what, and the errno.
public struct SystemCallError: Error, CustomStringConvertible, Sendable, Equatable {
    public var call: String
    public var object: String
    public var errno: Errno

    public init(_ call: String, _ object: String, _ errno: Errno) {
        self.call = call
        self.object = object
        self.errno = errno
    }

    /// `<object>: <strerror> (<call>)`, e.g. `/x/rootfs: No such file or directory (open)`.
    public var description: String {
        object.isEmpty ? "\(errno.text) (\(call))" : "\(object): \(errno.text) (\(call))"
    }
}

extension Errno {
    /// The C library's message for this errno ("No such file or directory").
    public var text: String { Errno.describe(rawValue) }

    /// strerror text for a raw errno value.
    public static func describe(_ value: CInt) -> String {
        guard let p = strerrordesc(value) else { return "error \(value)" }
        return String(cString: p)
    }
}
