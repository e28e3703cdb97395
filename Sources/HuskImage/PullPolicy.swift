/// `imagePullPolicy` of a container (pod-semantics §7).
public enum PullPolicy: String, Sendable, CaseIterable, Codable {
    case always = "Always"
    case ifNotPresent = "IfNotPresent"
    case never = "Never"

    /// Kubernetes' default when the field is empty (pkg/apis/core/v1/defaults.go): Always when
    /// the tag is `latest`, written or implied (no tag and no digest), else IfNotPresent. So
    /// `busybox` and `x:latest@sha256:...` are Always, `x:1.0` and `x@sha256:...` IfNotPresent.
    public static func defaultFor(_ written: String) -> PullPolicy {
        guard let ref = try? ImageReference(parsing: written) else { return .ifNotPresent }
        let explicitTag = ref.digest == nil || written.split(separator: "@").first.map {
            $0.split(separator: "/").last?.contains(":") ?? false
        } ?? false
        if ref.tag == ImageReference.defaultTag && explicitTag { return .always }
        return .ifNotPresent
    }

    /// Parses a policy as written in a manifest or on the command line.
    public init(parsing text: String) throws(ImageError) {
        guard let p = PullPolicy(rawValue: text) else {
            throw ImageError(reason: .invalidImageName, message: "unknown image pull policy \"\(text)\" (Always, IfNotPresent or Never)")
        }
        self = p
    }
}
