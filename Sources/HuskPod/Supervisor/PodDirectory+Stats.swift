import HuskRuntime
import HuskSystem

/// The cgroup figures of one running container (`husk stats`).
public struct ContainerStats: Sendable {
    public var pod: PodView
    public var container: ContainerState
    public var instance: Instance
    public var figures: CgroupStats
}

extension PodDirectory {
    /// The figures of every running container of `pods` (its latest instance; pods that are
    /// looked after and have not finished), in order, read from their cgroups
    /// (`Engine.stats`).
    public static func stats(_ pods: [PodView]) throws(HuskError) -> [ContainerStats] {
        guard let mount = (try? Cgroup2Mount.discover()) ?? nil else { throw HuskError(.unsupported, "no cgroup2 hierarchy is mounted") }
        var out: [ContainerStats] = []
        for p in pods where p.supervisorAlive && !p.state.finished {
            for c in p.state.containers {
                guard let i = c.latest, i.state == .running else { continue }
                let figures = Engine.stats(mount.group(p.paths.cgroup + "/" + c.name))
                out.append(ContainerStats(pod: p, container: c, instance: i, figures: figures))
            }
        }
        return out
    }
}
