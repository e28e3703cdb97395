import GRPCCore
import HuskImage
import HuskSystem

/// The gRPC errors `husk serve` answers with. Codes follow containerd's CRI server, which
/// kubelet and crictl are written against: wrong input is INVALID_ARGUMENT naming the field, a
/// missing object NOT_FOUND, an RPC Husk does not serve yet UNIMPLEMENTED. Never a success that
/// did not happen.
enum CRIError {
    /// A request field that is missing or wrong: `<field>: <why>`.
    static func invalidArgument(_ field: String, _ why: String) -> RPCError {
        RPCError(code: .invalidArgument, message: "\(field): \(why)")
    }

    static func notFound(_ message: String) -> RPCError {
        RPCError(code: .notFound, message: message)
    }

    /// The answer of every RPC whose translation to Husk's runtime is not written yet.
    static func notImplemented(_ rpc: String) -> RPCError {
        RPCError(code: .unimplemented, message: "husk serve: \(rpc) is not implemented yet")
    }

    /// Any error of Husk's layers as a gRPC error with the code its kind calls for.
    static func from(_ error: any Error) -> RPCError {
        switch error {
        case let e as RPCError:
            return e
        case let e as ImageError:
            return RPCError(code: code(of: e.reason), message: e.message)
        case let e as HuskError:
            return RPCError(code: code(of: e.code), message: e.description)
        default:
            return RPCError(code: .internalError, message: "\(error)")
        }
    }

    static func code(of reason: ImageError.Reason) -> RPCError.Code {
        switch reason {
        case .invalidImageName: return .invalidArgument
        case .notFound: return .notFound
        case .errImageNeverPull, .inUse: return .failedPrecondition
        case .storeError: return .internalError
        // A pull that failed on the way (a corrupt or unreadable source): containerd answers
        // such errors with UNKNOWN.
        case .errImagePull, .imagePullBackOff, .imageInspectError: return .unknown
        }
    }

    static func code(of code: HuskError.Code) -> RPCError.Code {
        switch code {
        case .invalidArgument, .unsupported: return .invalidArgument
        case .notFound: return .notFound
        case .alreadyExists: return .alreadyExists
        case .invalidState: return .failedPrecondition
        case .timeout: return .deadlineExceeded
        default: return .internalError
        }
    }
}
