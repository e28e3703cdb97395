/// A failure to get or use an image, with the reason kubelet reports for it.
public struct ImageError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Kubernetes' waiting reasons for image problems (pkg/kubelet/images/types.go).
    public enum Reason: String, Sendable {
        case invalidImageName = "InvalidImageName"
        case errImageNeverPull = "ErrImageNeverPull"
        case errImagePull = "ErrImagePull"
        case imagePullBackOff = "ImagePullBackOff"
        case imageInspectError = "ImageInspectError"
        /// Not a kubelet reason: a local failure of the store (disk, permissions).
        case storeError = "ImageStoreError"
        case notFound = "ImageNotFound"
        case inUse = "ImageInUse"
    }

    public var reason: Reason
    public var message: String

    public init(reason: Reason, message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { "\(reason.rawValue): \(message)" }
}
