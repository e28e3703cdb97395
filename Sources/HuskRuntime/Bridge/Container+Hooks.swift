import CShim
import FoundationEssentials
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// runtime-spec hooks (config.md "POSIX-platform Hooks", runtime.md "Lifecycle"):
/// prestart and createRuntime run here, in the runtime's namespaces, while the container's
/// process waits before pivot_root; createContainer (before pivot_root) and startContainer
/// (after start, before the program) run in the container's process; poststart after start
/// and poststop after delete run here again. Each gets the container's state on stdin.
extension Container {
    var hooksPath: String { directory + "/hooks.json" }

    /// Runs one hook with `state` on its stdin; returns its failure, or nil.
    static func runHook(_ h: Spec.Hook, state: String) -> String? {
        let arena = Arena()
        defer { arena.release() }
        let plan = h.plan
        var c = cshim_hook(
            path: arena.string(plan.path), argv: plan.args.isEmpty ? nil : arena.stringArray(plan.args, terminated: true),
            envp: arena.stringArray(plan.env, terminated: true), timeout: Int32(clamping: plan.timeout))
        var err = [CChar](repeating: 0, count: 256)
        let bytes = Array(state.utf8)
        let r = bytes.withUnsafeBufferPointer { b in
            b.withMemoryRebound(to: CChar.self) { cshim_run_hook(&c, $0.baseAddress!, $0.count, &err, err.count) }
        }
        return r == 0 ? nil : String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Runs the hooks of one kind in order. With `stopAtFailure` the first failure is returned
    /// (the rest do not run); otherwise each failure is a warning and the rest run.
    static func runHooks(
        _ kind: String, _ hooks: [Spec.Hook], state: OCIState, stopAtFailure: Bool, warn: (String) -> Void
    ) -> String? {
        guard !hooks.isEmpty else { return nil }
        let text = state.json(indent: nil)
        for (i, h) in hooks.enumerated() {
            guard let failure = runHook(h, state: text) else { continue }
            let message = "\(kind) hook \(i) (\(h.path)): \(failure)"
            if stopAtFailure { return message }
            warn(message)
        }
        return nil
    }

    /// The hooks saved at create (the bundle may be gone by delete).
    func savedHooks() -> Spec.Hooks? {
        guard let bytes = (try? Files.read(hooksPath)) ?? nil else { return nil }
        return try? JSONDecoder().decode(Spec.Hooks.self, from: Data(bytes))
    }

    func saveHooks(_ hooks: Spec.Hooks) throws(HuskError) {
        do {
            try Files.writeAtomically(hooksPath, Array(try JSONEncoder().encode(hooks)), mode: 0o600)
        } catch {
            throw HuskError(.system, "cannot save the hooks of container \(id)", cause: error)
        }
    }

    func ociState(_ status: OCIState.Status, pid: Int32? = nil) -> OCIState {
        OCIState(
            ociVersion: record.ociVersion, id: id, pid: pid ?? record.pid, status: status, bundle: record.bundle,
            rootfs: record.rootfs, created: record.created, owner: record.owner, annotations: record.annotations)
    }
}
