import HuskPod

/// CRI's `cgroup_parent` (kubelet's pod group, e.g. `/kubepods/burstable/pod<uid>` with the
/// cgroupfs driver). containerd makes the sandbox's group `<parent>/<sandbox id>`; Husk does
/// the same and keeps its containers' groups below it. Husk writes cgroups only in its own
/// subtree (`/husk`) and under the roots the operator allows (`--allow-cgroup-parent`,
/// `/kubepods` by default): any other parent is refused, naming the flag.
public enum CgroupParent {
    /// Why `path` is not a cgroupfs path Husk can use, or nil.
    public static func problem(_ path: String) -> String? {
        if path.hasSuffix(".slice") || path.contains(".slice/") {
            return "\"\(path)\" is a systemd slice; husk serve writes cgroups itself (cgroupfs driver): run kubelet with cgroupDriver: cgroupfs"
        }
        guard path.hasPrefix("/") else { return "\"\(path)\" is not an absolute cgroup path" }
        let trimmed = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        guard trimmed != "/" else { return "\"/\" is the root cgroup: name a group below it" }
        if trimmed.contains("//") || trimmed.split(separator: "/").contains(where: { $0 == "." || $0 == ".." }) {
            return "\"\(path)\" must be a clean path (no empty, \".\" or \"..\" parts)"
        }
        if path.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }) { return "\"\(path)\" holds a control character" }
        return nil
    }

    /// The parent to use for a sandbox (nil: none asked for, `/husk/<id>`), or
    /// INVALID_ARGUMENT for `field`.
    public static func check(_ raw: String, roots: [String], field: String) throws -> String? {
        guard !raw.isEmpty else { return nil }
        if let problem = problem(raw) { throw CRIError.invalidArgument(field, problem) }
        let path = raw.count > 1 && raw.hasSuffix("/") ? String(raw.dropLast()) : raw
        func under(_ root: String) -> Bool { path == root || path.hasPrefix(root + "/") }
        guard under("/husk") || roots.contains(where: under) else {
            let allowed = (["/husk"] + roots).joined(separator: ", ")
            throw CRIError.invalidArgument(field, "\"\(path)\" is outside the cgroups husk serve may write (\(allowed)); start it with --allow-cgroup-parent naming the root kubelet uses")
        }
        return path
    }
}
