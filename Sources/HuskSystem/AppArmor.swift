/// What the kernel says about AppArmor (the LSM): whether it is enabled and which profiles are
/// loaded. Husk applies a profile to a container's process at its execve
/// (`/proc/thread-self/attr/apparmor/exec`, written by the spawn executor) and never loads
/// profiles itself except the pods' default (HuskPod's `AppArmorDefault`).
public enum AppArmor {
    /// Whether AppArmor is enabled in this kernel (its module parameter says Y) and securityfs
    /// shows its profiles.
    public static var isEnabled: Bool {
        guard let on = (try? Files.readString("/sys/module/apparmor/parameters/enabled")) ?? nil, on.hasPrefix("Y") else {
            return false
        }
        return Files.exists(profilesFile)
    }

    static let profilesFile = "/sys/kernel/security/apparmor/profiles"

    /// The names of the loaded profiles ("name (mode)" lines of securityfs), or nil when they
    /// cannot be read.
    public static func loadedProfiles() -> Set<String>? {
        guard let text = (try? Files.readString(profilesFile)) ?? nil else { return nil }
        var names: Set<String> = []
        for line in text.split(separator: "\n") {
            guard let open = line.lastIndex(of: "(") else { continue }
            var name = line[..<open]
            while name.last == " " { name = name.dropLast() }
            names.insert(String(name))
        }
        return names
    }
}
