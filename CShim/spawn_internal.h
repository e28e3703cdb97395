// spawn_internal.h — what the files of the child-side executor share (spawn.c,
// spawn_child.c, spawn_rootfs.c, spawn_process.c, spawn_hooks.c). Private to CShim: it is not
// in include/, so Swift does not see it, and every function here is hidden (not exported).
//
// Everything declared here runs in the cloned child, between clone3 and execve, and is
// async-signal-safe (raw system calls only: no malloc, no stdio, no locks);
// cshim_child_len/append/copy are used by the parent too.
#ifndef CSHIM_SPAWN_INTERNAL_H
#define CSHIM_SPAWN_INTERNAL_H
#if defined(__linux__)
#include "cshim_spawn.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#define SYS_fsconfig 431
#define SYS_fsmount 432
#define SYS_move_mount 429
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

/// Not exported from CShim, and called directly (no PLT) in the child.
#define CSHIM_HIDDEN __attribute__((visibility("hidden")))

// MARK: - Messages from the child

// MSG_PID: the container is a second child (pid in `error`), the first one exits.
enum { MSG_ERROR = 1, MSG_READY = 2, MSG_HOOKS = 3, MSG_PID = 4 };

struct child_msg {
    int32_t kind;
    int32_t stage;
    int32_t error;
    char detail[512];
};

// State of the child, all on its stack.
struct child {
    const struct cshim_spawn_plan *plan;
    int report_fd;
    int rootfd;       // O_PATH fd of the (self-bound) rootfs, before pivot_root
    int devnull_fd;   // O_PATH fd of the host's /dev/null, verified char 1:3
    int open_gate_fd; // the gate after it opened (a FIFO: failures write 'E' there), or -1
    int sysctls_done; // written already, in the rootfs before its read-only paths
    int userns_sync_fd; // read end of the pipe the parent writes once the id maps are set, or -1
    int apparmor_fd;    // /proc/thread-self/attr/apparmor/exec, opened while the host's /proc is there
    char exe[PATH_MAX];
};

// MARK: - spawn_child.c

// The child's whole sequence, from clone3 to execve (or _exit on a failure).
CSHIM_HIDDEN __attribute__((noreturn)) void cshim_child_main(struct child *c);

// Async-signal-safe string helpers (the parent uses them too).
CSHIM_HIDDEN size_t cshim_child_len(const char *s);
CSHIM_HIDDEN int cshim_child_append(char *dst, size_t cap, const char *src);
CSHIM_HIDDEN int cshim_overlay_context(const char *const *lower, size_t nlower, const char *upper, const char *work, int plus);
CSHIM_HIDDEN int cshim_overlay_mount(const char *const *lower, size_t nlower, const char *upper, const char *work);
CSHIM_HIDDEN void cshim_child_copy(char *dst, size_t cap, const char *src);
CSHIM_HIDDEN const char *cshim_child_fd_path(char buf[64], int fd);

// A message to the parent over the report pipe; a failure reports and exits 127.
CSHIM_HIDDEN void cshim_child_report(struct child *c, int kind, int stage, int err, const char *detail);
CSHIM_HIDDEN __attribute__((noreturn)) void cshim_child_fail(struct child *c, int stage, int err, const char *detail);

// MARK: - spawn_rootfs.c

CSHIM_HIDDEN long cshim_child_openat2(int dirfd, const char *path, uint64_t flags, uint64_t resolve);
CSHIM_HIDDEN void cshim_child_setup_rootfs(struct child *c);
CSHIM_HIDDEN void cshim_child_pivot_root(struct child *c);

// MARK: - spawn_process.c

CSHIM_HIDDEN void cshim_child_write_sysctls(struct child *c);
CSHIM_HIDDEN void cshim_child_apply_bounding(struct child *c);
CSHIM_HIDDEN void cshim_child_apply_caps(struct child *c);
CSHIM_HIDDEN void cshim_child_load_seccomp(struct child *c);
CSHIM_HIDDEN void cshim_child_set_user(struct child *c);
CSHIM_HIDDEN void cshim_child_lookup_exe(struct child *c);
CSHIM_HIDDEN int cshim_child_open_console(struct child *c);
CSHIM_HIDDEN void cshim_child_close_fds_except(const int *keep, size_t nkeep);

// MARK: - spawn_hooks.c

CSHIM_HIDDEN int cshim_child_read_hook_state(int fd, char *buf);
CSHIM_HIDDEN void cshim_child_run_hooks(struct child *c, const char *kind, const struct cshim_hook *hooks, size_t n,
                                        const char *state, int after_gate);

#endif
#endif
