// spawn.c — the parent side of the child-side executor (see cshim_spawn.h): clone3 and the
// result protocol (reading the child's reports, reaping a child that failed).
//
// cshim_spawn(), cshim_spawn_continue() and cshim_spawn_wait_exec() run in the parent (any
// thread of a Swift process). One block runs in the child: the `pid == 0` branch after
// clone3 in cshim_spawn(), which only fills a struct on the stack and calls cshim_child_main
// (spawn_child.c), which never returns. The rest of the child's code is in spawn_child.c,
// spawn_rootfs.c, spawn_process.c and spawn_hooks.c, with their shared declarations in
// spawn_internal.h (not in include/: Swift does not see it).
#if defined(__linux__)
#ifndef _GNU_SOURCE
#error "CShim needs _GNU_SOURCE"
#endif
#include "spawn_internal.h"
#include "cshim_syscall.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

// MARK: - Parent side

struct clone_args_v2 {
    uint64_t flags;
    uint64_t pidfd;
    uint64_t child_tid;
    uint64_t parent_tid;
    uint64_t exit_signal;
    uint64_t stack;
    uint64_t stack_size;
    uint64_t tls;
    uint64_t set_tid;
    uint64_t set_tid_size;
    uint64_t cgroup;
};

static int read_msg(int fd, struct child_msg *m) {
    char *p = (char *)m;
    size_t got = 0;
    while (got < sizeof(*m)) {
        ssize_t n = read(fd, p + got, sizeof(*m) - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        if (n == 0) return got == 0 ? 0 : -1;
        got += (size_t)n;
    }
    return 1;
}

static void reap(int pidfd) {
    siginfo_t info;
    while (syscall(SYS_waitid, P_PIDFD, pidfd, &info, WEXITED, NULL) < 0 && errno == EINTR) {
    }
}

static int set_failure(struct cshim_spawn_result *r, int stage, int err, const char *detail) {
    r->stage = stage;
    r->error = err ? err : EIO;
    cshim_child_copy(r->detail, sizeof(r->detail), detail ? detail : "");
    return r->error;
}

static int spawn_outcome(const struct cshim_spawn_plan *plan, struct cshim_spawn_result *result);

static int write_proc_file(pid_t pid, const char *name, const char *text, size_t len) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    // An id map must be written with one write(2).
    ssize_t w = write(fd, text, len);
    int e = w == (ssize_t)len ? 0 : (w < 0 ? errno : EIO);
    close(fd);
    return e;
}

// The parent's part of a new user namespace: the id maps, then what the child could no
// longer raise from inside (rlimits, a lower oom_score_adj). Returns 0 or an errno, with
// the file that failed in *what.
static int setup_user_namespace(const struct cshim_spawn_plan *plan, pid_t pid, const char **what) {
    int e;
    if ((e = write_proc_file(pid, "uid_map", plan->uid_map, strlen(plan->uid_map))) != 0) {
        *what = "uid_map";
        return e;
    }
    if (plan->gid_map && (e = write_proc_file(pid, "gid_map", plan->gid_map, strlen(plan->gid_map))) != 0) {
        *what = "gid_map";
        return e;
    }
    if (plan->set_oom_score_adj) {
        char buf[16];
        int n = snprintf(buf, sizeof buf, "%d", plan->oom_score_adj);
        if ((e = write_proc_file(pid, "oom_score_adj", buf, (size_t)n)) != 0) {
            *what = "oom_score_adj";
            return e;
        }
    }
    for (size_t i = 0; i < plan->nrlimits; i++) {
        struct rlimit rl = {(rlim_t)plan->rlimits[i].soft, (rlim_t)plan->rlimits[i].hard};
        if (prlimit(pid, (__rlimit_resource_t)plan->rlimits[i].resource, &rl, NULL) < 0) {
            *what = "rlimits";
            return errno;
        }
    }
    return 0;
}

int cshim_spawn(const struct cshim_spawn_plan *plan, struct cshim_spawn_result *result) {
    memset(result, 0, sizeof(*result));
    result->pid = -1;
    result->pidfd = -1;
    result->report_fd = -1;
    if (plan->cwd == NULL || plan->argv == NULL || plan->argv[0] == NULL || plan->envp == NULL)
        return set_failure(result, CSHIM_STAGE_SETUP, EINVAL, "the plan needs cwd, argv and envp");

    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) return set_failure(result, CSHIM_STAGE_PIPE, errno, "pipe2");

    // Block every signal so no handler of the parent runs in the child before it resets them.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);

    // The pid namespace of the child is taken from this thread's pid_for_children; switch
    // it for the clone and back (per-thread state; allowed in a threaded process).
    int saved_pidns = -1;
    if (plan->pid_ns_fd >= 0) {
        saved_pidns = open("/proc/thread-self/ns/pid_for_children", O_RDONLY | O_CLOEXEC);
        if (saved_pidns < 0 || setns(plan->pid_ns_fd, CLONE_NEWPID) < 0) {
            int e = errno;
            if (saved_pidns >= 0) close(saved_pidns);
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            close(pipefd[0]);
            close(pipefd[1]);
            return set_failure(result, CSHIM_STAGE_PID_NAMESPACE, e, "setns");
        }
    }

    // A new user namespace: the child waits on this pipe until its id maps are written.
    int userns_sync[2] = {-1, -1};
    if (plan->uid_map != NULL && pipe2(userns_sync, O_CLOEXEC) < 0) {
        int e = errno;
        if (saved_pidns >= 0) {
            if (setns(saved_pidns, CLONE_NEWPID) < 0) abort();
            close(saved_pidns);
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        close(pipefd[0]);
        close(pipefd[1]);
        return set_failure(result, CSHIM_STAGE_PIPE, e, "pipe2");
    }

    int pidfd = -1;
    struct clone_args_v2 args;
    memset(&args, 0, sizeof(args));
    args.flags = CLONE_PIDFD | (plan->clone_flags & ~(uint64_t)CLONE_NEWCGROUP);
    args.pidfd = (uint64_t)(uintptr_t)&pidfd;
    args.exit_signal = SIGCHLD;
    if (plan->cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)plan->cgroup_fd;
    }
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid == 0) {
        struct child c;
        memset(&c, 0, sizeof(c));
        c.plan = plan;
        c.report_fd = pipefd[1];
        c.rootfd = -1;
        c.devnull_fd = -1;
        c.open_gate_fd = -1;
        c.userns_sync_fd = userns_sync[0];
        c.apparmor_fd = -1;
        if (userns_sync[1] >= 0) close(userns_sync[1]);
        cshim_child_main(&c);
    }
    int clone_errno = errno;

    if (saved_pidns >= 0) {
        // A thread stuck in another pid namespace would put every later child there.
        if (setns(saved_pidns, CLONE_NEWPID) < 0) abort();
        close(saved_pidns);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(pipefd[1]);

    if (userns_sync[0] >= 0) close(userns_sync[0]);
    if (pid < 0) {
        close(pipefd[0]);
        if (userns_sync[1] >= 0) close(userns_sync[1]);
        return set_failure(result, CSHIM_STAGE_CLONE, clone_errno, "clone3");
    }
    result->pid = (pid_t)pid;
    result->pidfd = pidfd;
    if (userns_sync[1] >= 0) {
        const char *what = NULL;
        int e = setup_user_namespace(plan, (pid_t)pid, &what);
        if (e == 0 && write(userns_sync[1], "1", 1) != 1) {
            e = errno ? errno : EPIPE;
            what = "user namespace sync";
        }
        close(userns_sync[1]);
        if (e != 0) {
            cshim_pidfd_send_signal(pidfd, SIGKILL, 0);
            reap(pidfd);
            close(pidfd);
            close(pipefd[0]);
            result->pidfd = -1;
            return set_failure(result, CSHIM_STAGE_USER_NAMESPACE, e, what);
        }
    }

    result->report_fd = pipefd[0];
    return spawn_outcome(plan, result);
}

int cshim_spawn_continue(const struct cshim_spawn_plan *plan, struct cshim_spawn_result *result) {
    result->at_hooks = 0;
    return spawn_outcome(plan, result);
}

// Reads the child's next report from result->report_fd: ready at the gate or stopped for
// hooks (0, the fd kept), exec'd (0), or a failure (the child reaped).
static int spawn_outcome(const struct cshim_spawn_plan *plan, struct cshim_spawn_result *result) {
    int pidfd = result->pidfd;
    int fd = result->report_fd;
    result->report_fd = -1;
    struct child_msg m;
    int r = read_msg(fd, &m);
    if (r == 1 && m.kind == MSG_PID) {
        // The container is the first child's child, made ours (CLONE_PARENT): not reaped by
        // anyone but us, so its pid cannot be reused before the pidfd is open.
        pid_t second = (pid_t)m.error;
        int second_fd = cshim_pidfd_open(second, 0);
        int e = errno;
        reap(pidfd);  // the first child exits after reporting
        close(pidfd);
        if (second_fd < 0) {
            kill(second, SIGKILL);
            while (waitpid(second, NULL, __WALL) < 0 && errno == EINTR) {
            }
            close(fd);
            result->pidfd = -1;
            return set_failure(result, CSHIM_STAGE_PID_NAMESPACE, e, "pidfd_open");
        }
        result->pid = second;
        result->pidfd = pidfd = second_fd;
        r = read_msg(fd, &m);
    }
    if (r == 1 && (m.kind == MSG_READY || m.kind == MSG_HOOKS)) {
        result->report_fd = fd;
        result->at_hooks = m.kind == MSG_HOOKS;
        return 0;
    }
    close(fd);
    if (r == 0 && plan->gate_fd < 0) return 0;  // EOF: the child exec'd
    if (r == 0) {
        // No report and no exec: something killed the child during setup.
        reap(pidfd);
        close(pidfd);
        result->pidfd = -1;
        return set_failure(result, CSHIM_STAGE_SETUP, ESRCH, "the process died before reaching the start gate");
    }
    if (r < 0) {
        int e = errno;
        cshim_pidfd_send_signal(pidfd, SIGKILL, 0);
        reap(pidfd);
        close(pidfd);
        result->pidfd = -1;
        return set_failure(result, CSHIM_STAGE_SETUP, e, "report pipe");
    }
    reap(pidfd);
    close(pidfd);
    result->pidfd = -1;
    return set_failure(result, m.stage, m.error, m.detail);
}

int cshim_spawn_wait_exec(struct cshim_spawn_result *result) {
    if (result->report_fd < 0) return 0;
    struct child_msg m;
    int r = read_msg(result->report_fd, &m);
    close(result->report_fd);
    result->report_fd = -1;
    if (r == 0) return 0;
    if (r < 0) return set_failure(result, CSHIM_STAGE_EXEC, errno, "report pipe");
    // The child exits after reporting; the caller reaps it through its pidfd.
    return set_failure(result, m.stage, m.error, m.detail);
}

// MARK: - Short-lived helper children

// clone3 with every signal blocked around it, so that no handler of the caller runs in the
// child, which keeps them blocked (it makes raw calls and exits). Returns the pid to the
// parent, 0 in the child, -1 with errno.
static long clone_quiet(uint64_t flags, int *pidfd) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    struct clone_args_v2 args;
    memset(&args, 0, sizeof(args));
    args.flags = CLONE_PIDFD | flags;
    args.pidfd = (uint64_t)(uintptr_t)pidfd;
    args.exit_signal = SIGCHLD;
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid == 0) return 0;
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return pid;
}

// MARK: - Idmapped mounts

int cshim_mount_idmap(int treefd, int recursive, const char *uid_map, const char *gid_map, const char **what) {
    int sync[2];
    if (pipe2(sync, O_CLOEXEC) < 0) {
        *what = "pipe2";
        return errno;
    }
    int pidfd = -1;
    long pid = clone_quiet(CLONE_NEWUSER, &pidfd);
    if (pid == 0) {
        // The child only holds the user namespace until the parent has its fd: raw calls only.
        char b;
        close(sync[1]);
        while (read(sync[0], &b, 1) < 0 && errno == EINTR) {
        }
        _exit(0);
    }
    int clone_errno = errno;
    close(sync[0]);
    if (pid < 0) {
        close(sync[1]);
        *what = "clone3";
        return clone_errno;
    }
    int e = write_proc_file((pid_t)pid, "uid_map", uid_map, strlen(uid_map));
    if (e) *what = "uid_map";
    if (!e && (e = write_proc_file((pid_t)pid, "gid_map", gid_map, strlen(gid_map))) != 0) *what = "gid_map";
    int userns = -1;
    if (!e) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
        userns = open(path, O_RDONLY | O_CLOEXEC);
        if (userns < 0) {
            e = errno;
            *what = "the user namespace";
        }
    }
    close(sync[1]);  // the child exits
    reap(pidfd);
    close(pidfd);
    if (e) return e;
    struct {
        uint64_t attr_set, attr_clr, propagation, userns_fd;
    } attr = {0x00100000 /* MOUNT_ATTR_IDMAP */, 0, 0, (uint64_t)userns};
    unsigned int flags = AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0);
    if (syscall(SYS_mount_setattr, treefd, "", flags, &attr, sizeof(attr)) < 0) {
        e = errno;
        *what = "mount_setattr";
    }
    close(userns);
    return e;
}
// MARK: - A helper that makes an overlay for the parent

// What a helper reports: an fd in the shared table, or an errno and the failed step.
struct helper_out {
    int fd;
    int error;
    const char *what;  // a string literal: the same address in the parent (no exec)
};

struct overlay_job {
    const char *const *lower;
    size_t nlower;
    const char *upper, *work;
    int userns_fd;
};

// Runs in the helper (a copy of the caller's memory, its fd table shared): raw calls only.
static void overlay_job_run(const struct overlay_job *j, struct helper_out *o) {
    if (unshare(CLONE_NEWNS) < 0) {
        o->error = errno, o->what = "unshare (mount namespace)";
        return;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        o->error = errno, o->what = "making / private";
        return;
    }
    struct {
        uint64_t attr_set, attr_clr, propagation, userns_fd;
    } attr = {0x00100000 /* MOUNT_ATTR_IDMAP */, 0, 0, (uint64_t)j->userns_fd};
    for (size_t i = 0; i < j->nlower; i++) {
        int tree = (int)syscall(SYS_open_tree, AT_FDCWD, j->lower[i], 1U /* OPEN_TREE_CLONE */ | O_CLOEXEC);
        if (tree < 0) {
            o->error = errno, o->what = "open_tree (a layer)";
            return;
        }
        if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0) {
            o->error = errno, o->what = "mount_setattr idmap (a layer; does its filesystem support idmapped mounts?)";
            close(tree);
            return;
        }
        if (syscall(SYS_move_mount, tree, "", AT_FDCWD, j->lower[i], 4U /* MOVE_MOUNT_F_EMPTY_PATH */) < 0) {
            o->error = errno, o->what = "move_mount (a layer)";
            close(tree);
            return;
        }
        close(tree);
    }
    int mnt = cshim_overlay_mount(j->lower, j->nlower, j->upper, j->work);
    if (mnt < 0) {
        o->error = -mnt, o->what = "overlay";
        return;
    }
    o->fd = mnt;
}

// Runs the job in a short-lived child that shares the caller's fd table (CLONE_FILES: the fd
// it makes is the caller's) and nothing else: not its memory, mount namespace or credentials,
// so the caller's threads are untouched. The outcome comes back over a pipe.
static int run_helper(const struct overlay_job *job, int *out_fd, const char **what) {
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        *what = "pipe2";
        return errno;
    }
    int pidfd = -1;
    long pid = clone_quiet(CLONE_FILES, &pidfd);
    if (pid == 0) {
        struct helper_out o = {-1, 0, NULL};
        overlay_job_run(job, &o);
        // The pipe is the caller's too (shared table): written, never closed here.
        ssize_t n;
        do {
            n = write(pipefd[1], &o, sizeof(o));
        } while (n < 0 && errno == EINTR);
        _exit(0);
    }
    int clone_errno = errno;
    if (pid < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        *what = "clone3";
        return clone_errno;
    }
    reap(pidfd);
    close(pidfd);
    struct helper_out o;
    ssize_t n;
    do {
        n = read(pipefd[0], &o, sizeof(o));
    } while (n < 0 && errno == EINTR);
    close(pipefd[0]);
    close(pipefd[1]);
    if (n != (ssize_t)sizeof(o)) {
        *what = "the helper process died";
        return EIO;
    }
    if (o.error) {
        *what = o.what;
        return o.error;
    }
    *out_fd = o.fd;
    return 0;
}

int cshim_overlay_idmapped(const char *const *lower, size_t nlower, const char *upper, const char *work, int userns_fd,
                           int *out_fd, const char **what) {
    struct overlay_job j = {lower, nlower, upper, work, userns_fd};
    return run_helper(&j, out_fd, what);
}

#endif
