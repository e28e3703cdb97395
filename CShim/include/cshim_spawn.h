// cshim_spawn.h — the child-side executor (DESIGN §3).
//
// Swift builds a flat spawn plan (every string, list and BPF program already in memory);
// cshim_spawn() clones the child with clone3(CLONE_PIDFD | CLONE_INTO_CGROUP | CLONE_NEW*),
// and the child — running only async-signal-safe C and raw system calls, never Swift — sets
// up namespaces, mounts, the root, devices, masks, ids, capabilities and seccomp, optionally
// waits at a start gate, and execs. A failure in the child comes back to the parent as
// (stage, errno, detail) over a CLOEXEC pipe; EOF on that pipe means execve succeeded.
#ifndef CSHIM_SPAWN_H
#define CSHIM_SPAWN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Where in the child a failure happened. Keep in sync with SpawnStage in Swift.
enum cshim_stage {
    CSHIM_STAGE_NONE = 0,
    CSHIM_STAGE_PIPE = 1,
    CSHIM_STAGE_CLONE = 2,
    CSHIM_STAGE_PID_NAMESPACE = 3,
    CSHIM_STAGE_SETUP = 4,          // signals, dumpable, fds, session
    CSHIM_STAGE_STDIO = 5,
    CSHIM_STAGE_SETNS = 6,
    CSHIM_STAGE_CGROUP_NAMESPACE = 7,
    CSHIM_STAGE_OOM_SCORE_ADJ = 8,
    CSHIM_STAGE_ROOT_PROPAGATION = 9,
    CSHIM_STAGE_ROOTFS = 10,
    CSHIM_STAGE_MOUNT = 11,
    CSHIM_STAGE_DEVICES = 12,
    CSHIM_STAGE_MASKED_PATHS = 13,
    CSHIM_STAGE_READONLY_PATHS = 14,
    CSHIM_STAGE_PIVOT_ROOT = 15,
    CSHIM_STAGE_READONLY_ROOT = 16,
    CSHIM_STAGE_HOSTNAME = 17,
    CSHIM_STAGE_RLIMITS = 18,
    CSHIM_STAGE_CLOSE_FDS = 19,
    CSHIM_STAGE_SECCOMP = 20,
    CSHIM_STAGE_CAPABILITIES = 21,
    CSHIM_STAGE_USER = 22,
    CSHIM_STAGE_CWD = 23,
    CSHIM_STAGE_NO_NEW_PRIVS = 24,
    CSHIM_STAGE_LOOKUP = 25,         // finding the executable (PATH search)
    CSHIM_STAGE_GATE = 26,
    CSHIM_STAGE_EXEC = 27,
    CSHIM_STAGE_SYSCTL = 28,
    CSHIM_STAGE_CONSOLE = 29,
    CSHIM_STAGE_KEYRING = 30,
    CSHIM_STAGE_LOOPBACK = 31,
    CSHIM_STAGE_HOOK = 32,
    CSHIM_STAGE_USER_NAMESPACE = 33, // writing the id maps of a new user namespace
    CSHIM_STAGE_APPARMOR = 34,
};

/// Flags of one mount entry.
#define CSHIM_MOUNT_BIND            0x01  // source is a host path bound at the target
#define CSHIM_MOUNT_NO_SYMLINK      0x02  // refuse if the target is a symlink (proc, sysfs)
#define CSHIM_MOUNT_REMOUNT         0x04  // bind: remount with `flags` afterwards (ro, nosuid...)
#define CSHIM_MOUNT_RECURSIVE_RO    0x08  // apply MOUNT_ATTR_RDONLY recursively (rro)
#define CSHIM_MOUNT_TARGET_FILE     0x10  // create the target as a file, not a directory

struct cshim_mount {
    const char *_Nullable source;   // host path for binds, fs source otherwise
    const char *_Nonnull target;    // absolute path inside the rootfs
    const char *_Nullable fstype;   // NULL for binds
    const char *_Nullable data;     // fs-specific options
    unsigned long flags;            // MS_* flags without propagation bits
    unsigned long propagation;      // MS_SHARED/SLAVE/PRIVATE/UNBINDABLE [| MS_REC], or 0
    unsigned int options;           // CSHIM_MOUNT_*
    // bind: a detached copy of the source made by the caller with open_tree(OPEN_TREE_CLONE)
    // (a volume subPath resolved inside its volume), attached with move_mount; or -1. (An
    // O_PATH fd would not do: the child's new mount namespace cannot bind a mount of the
    // caller's.)
    int source_fd;
};

struct cshim_device {
    const char *_Nonnull path;      // absolute path inside the rootfs
    unsigned int mode;              // S_IFCHR/S_IFBLK/S_IFIFO | permission bits
    unsigned int major;
    unsigned int minor;
    unsigned int uid;
    unsigned int gid;
    int must_match;                 // a file already at path must be this device (linux.devices)
};

struct cshim_symlink {
    const char *_Nonnull target;    // what the link points to
    const char *_Nonnull path;      // absolute path inside the rootfs
};

struct cshim_rlimit {
    int resource;
    uint64_t soft;
    uint64_t hard;
};

struct cshim_ns_join {
    int fd;                         // a /proc/<pid>/ns/<x> fd or a pidfd
    int nstype;                     // CLONE_NEW* mask
};

struct cshim_sysctl {
    const char *_Nonnull path;      // relative to /proc/sys, e.g. "net/ipv4/ip_forward"
    const char *_Nonnull value;
};

/// A runtime-spec hook: path, argv (NULL-terminated; NULL: just the path), envp
/// (NULL-terminated; NULL: empty), timeout in seconds (0: none).
struct cshim_hook {
    const char *_Nonnull path;
    const char *_Nullable const *_Nullable argv;
    const char *_Nullable const *_Nullable envp;
    int timeout;
};

struct cshim_spawn_plan {
    // Namespaces.
    uint64_t clone_flags;           // CLONE_NEW* to create (CLONE_NEWCGROUP is done by unshare)
    int unshare_cgroupns;           // create a cgroup namespace once inside the cgroup
    const struct cshim_ns_join *_Nullable joins;
    size_t njoins;
    int pid_ns_fd;                  // pid namespace (fd or pidfd) to create the child in, or -1
    // A new user namespace (CLONE_NEWUSER in clone_flags): the parent writes these to
    // /proc/<pid>/uid_map and gid_map ("inside outside count" lines), and sets the child's
    // rlimits and oom_score_adj from outside (raising them needs the host's privileges),
    // before the child goes past its first instruction. NULL: no maps to write.
    const char *_Nullable uid_map;
    const char *_Nullable gid_map;
    // Namespaces the child unshares after its joins (never CLONE_NEWPID): a user namespace
    // joined by path must own them, so they cannot be made by clone3.
    uint64_t unshare_flags;
    int cgroup_fd;                  // cgroup2 directory to clone into, or -1

    // Standard streams: dup2'd onto 0, 1, 2 when >= 0; inherited otherwise.
    int stdio[3];
    int setsid;
    int console_fd;                 // pty slave: controlling terminal and /dev/console, or -1
    // Or a unix socket: the child opens a pty in its own /dev/pts (after the root is set up
    // or the mount namespace joined), sends the master over it (SCM_RIGHTS, like runc's
    // --console-socket), and takes the slave as controlling terminal and stdio; with a new
    // root the slave is also bound over /dev/console. Needs setsid. -1: none.
    int console_socket;

    // Hooks (runtime-spec config.md). When hooks_fd >= 0 the child stops after its mounts,
    // before pivot_root, reports it (cshim_spawn returns with at_hooks set), and reads from
    // hooks_fd two states ([u32 length][JSON] each: createContainer's, then startContainer's) before it goes
    // on: it runs the createContainer hooks there, and the startContainer hooks after the
    // gate, just before exec, each with its state on stdin.
    int hooks_fd;
    int hooks_peer_fd;              // the runtime's end of hooks_fd, closed in the child
    const struct cshim_hook *_Nullable create_container_hooks;
    size_t ncreate_container_hooks;
    const struct cshim_hook *_Nullable start_container_hooks;
    size_t nstart_container_hooks;
    // Window size of that pty (process.consoleSize); 0 leaves the kernel's default.
    unsigned short console_rows, console_cols;

    int oom_score_adj;
    int set_oom_score_adj;

    // Root filesystem (skipped when rootfs is NULL, e.g. a joined mount namespace).
    const char *_Nullable rootfs;   // absolute host path
    // When set, an overlay is mounted at rootfs first, inside the child's mount namespace
    // (nothing appears in the host's mount table): lower dirs topmost first.
    const char *_Nullable const *_Nullable overlay_lower;
    size_t noverlay_lower;
    const char *_Nullable overlay_upper;
    const char *_Nullable overlay_work;
    // A root mounted by the parent (cshim_overlay_idmapped), attached at rootfs instead of the
    // overlay above; or -1.
    int rootfs_mount_fd;
    unsigned long root_propagation; // applied to "/" first; default MS_SLAVE|MS_REC
    int rootfs_readonly;
    // No mount namespace of its own (the runtime's is inherited, runtime-spec config-linux.md):
    // the propagation of "/" is left alone, the rootfs's self-bind is made rprivate so nothing
    // below it reaches the host's peers, and the root is entered with chroot (pivot_root would
    // move the host's root). The caller unmounts the bind when the container goes.
    int rootfs_chroot;
    // An exec into such a container: after joining its namespaces, chroot into this directory
    // (an O_PATH fd on /proc/<init>/root), or -1.
    int enter_root_fd;
    const struct cshim_mount *_Nullable mounts;
    size_t nmounts;
    int setup_dev;                  // create standard device nodes and /dev symlinks
    const struct cshim_device *_Nullable devices;
    size_t ndevices;
    const struct cshim_symlink *_Nullable symlinks;
    size_t nsymlinks;
    const char *_Nullable const *_Nullable masked_paths;
    size_t nmasked;
    const char *_Nullable const *_Nullable readonly_paths;
    size_t nreadonly;

    const char *_Nullable hostname;
    const char *_Nullable domainname;
    const struct cshim_sysctl *_Nullable sysctls;
    size_t nsysctls;
    const struct cshim_rlimit *_Nullable rlimits;
    size_t nrlimits;

    // Identity and privileges.
    unsigned int uid;
    unsigned int gid;
    const unsigned int *_Nullable groups;
    size_t ngroups;
    int umask;                      // -1: 0022
    int cap_last;                   // highest capability number of the kernel
    uint64_t cap_bounding;
    uint64_t cap_effective;
    uint64_t cap_permitted;
    uint64_t cap_inheritable;
    uint64_t cap_ambient;
    int no_new_privs;
    // AppArmor profile the program is confined by from its execve (written to
    // /proc/thread-self/attr/apparmor/exec before no_new_privs), or NULL.
    const char *_Nullable apparmor_profile;
    const void *_Nullable seccomp_filter; // struct sock_filter[]
    size_t seccomp_len;                   // number of instructions
    unsigned int seccomp_flags;           // SECCOMP_FILTER_FLAG_*

    // A new session keyring of this name (runc: "_ses.<id>"), or NULL to keep the caller's.
    const char *_Nullable session_keyring;

    // Fds kept open across exec (dup2'd to 3, 4, ...: LISTEN_FDS style).
    const int *_Nullable preserve_fds;
    size_t npreserve;

    // What to run.
    const char *_Nullable cwd;                  // required
    const char *_Nullable const *_Nullable argv; // required, NULL-terminated
    const char *_Nullable const *_Nullable envp; // required, NULL-terminated
    const char *_Nullable path_env;              // PATH used to find argv[0], or NULL for the default

    // Run this open executable (execveat AT_EMPTY_PATH: a sealed memfd) instead of looking
    // argv[0] up, or -1.
    int exec_fd;
    // Bring the loopback interface of the (new) network namespace up.
    int loopback_up;

    // Start gate: the child reads one byte from this fd after all setup, before exec.
    // -1 = exec at once.
    int gate_fd;
};

struct cshim_spawn_result {
    pid_t pid;
    int pidfd;
    int report_fd;                  // read end of the report pipe when the child waits at a gate
    int stage;                      // enum cshim_stage of a failure, else 0
    int error;                      // errno of a failure
    char detail[512];               // what the failing step worked on (a path, a name)
    int at_hooks;                   // the child waits for its hook states (plan.hooks_fd)
};

/// Runs the plan in a new child. Returns 0 and fills pid/pidfd; when the plan has a gate,
/// returns once the child waits there and report_fd stays open: pass it to
/// cshim_spawn_wait_exec after opening the gate. Returns a positive errno on failure with
/// stage/error/detail filled; the child is then reaped and gone.
int cshim_spawn(const struct cshim_spawn_plan *_Nonnull plan, struct cshim_spawn_result *_Nonnull result);

/// After cshim_spawn returned with at_hooks and the states were written to the plan's
/// hooks_fd: waits as cshim_spawn does (for the gate, the exec, or a failure).
int cshim_spawn_continue(const struct cshim_spawn_plan *_Nonnull plan, struct cshim_spawn_result *_Nonnull result);

/// Runs one hook with `state` on its stdin, waiting at most its timeout (then SIGKILL).
/// Returns 0 when it exited 0; else -1 with a message in err. Async-signal-safe (fork,
/// execve, poll, waitpid): usable in a spawned child and in the runtime.
int cshim_run_hook(const struct cshim_hook *_Nonnull hook, const char *_Nonnull state, size_t len,
                   char *_Nonnull err, size_t errlen);

/// After the gate was opened: waits until the child has exec'd (0) or reports its failure
/// (a positive errno, with stage/error/detail filled). Closes report_fd.
int cshim_spawn_wait_exec(struct cshim_spawn_result *_Nonnull result);

/// The overlay root of a container in a user namespace: each layer an idmapped mount through
/// `userns_fd` (so host root's files are the namespace's root's), attached over itself in a
/// short-lived child's private mount namespace (overlay takes only layers of its caller's
/// namespace before Linux 6.15), then the overlay made there with the caller's credentials
/// and returned as a detached mount in *out_fd. Returns 0 or an errno, the step in *what.
int cshim_overlay_idmapped(const char *_Nullable const *_Nonnull lower, size_t nlower, const char *_Nonnull upper,
                           const char *_Nonnull work, int userns_fd, int *_Nonnull out_fd,
                           const char *_Nullable *_Nonnull what);

/// Makes the detached mount tree `treefd` (open_tree OPEN_TREE_CLONE) an idmapped mount
/// (MOUNT_ATTR_IDMAP, recursively with `recursive`) through a user namespace with these maps
/// ("inside outside count" lines), made for the purpose by a short-lived child. Returns 0 or
/// an errno, with the step that failed in *what.
int cshim_mount_idmap(int treefd, int recursive, const char *_Nonnull uid_map, const char *_Nonnull gid_map,
                      const char *_Nullable *_Nonnull what);

#ifdef __cplusplus
}
#endif
#endif
