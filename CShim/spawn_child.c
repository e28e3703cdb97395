// spawn_child.c — the child-side executor's sequence (cshim_child_main), its reports to the
// parent and the async-signal-safe string helpers the other spawn files share (see
// spawn_internal.h).
//
// Everything in this file runs in the cloned child, between clone3 and execve, except
// cshim_child_len/append/copy, which the parent uses too (spawn.c, spawn_hooks.c). The child
// is a copy of a multithreaded process made by a raw clone3, so glibc's view of threads and
// locks is stale there: only raw system calls and async-signal-safe functions are allowed (no
// malloc, no stdio, no locale, no glibc set*id wrappers, which would try to signal threads
// that do not exist in the child). Strings are built on the stack.
#if defined(__linux__)
#ifndef _GNU_SOURCE
#error "CShim needs _GNU_SOURCE"
#endif
#include "spawn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

// MARK: - Async-signal-safe string helpers

size_t cshim_child_len(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

// Appends src to dst (capacity cap), always NUL-terminated. Returns 0, or -1 if truncated.
int cshim_child_append(char *dst, size_t cap, const char *src) {
    size_t n = cshim_child_len(dst);
    size_t m = cshim_child_len(src);
    if (n + m + 1 > cap) return -1;
    memcpy(dst + n, src, m + 1);
    return 0;
}

void cshim_child_copy(char *dst, size_t cap, const char *src) {
    if (cap == 0) return;
    dst[0] = 0;
    size_t m = cshim_child_len(src);
    if (m >= cap) m = cap - 1;
    memcpy(dst, src, m);
    dst[m] = 0;
}

// "/proc/self/fd/<fd>" into buf.
const char *cshim_child_fd_path(char buf[64], int fd) {
    char digits[16];
    int n = 0;
    unsigned int v = (unsigned int)fd;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < 15);
    memcpy(buf, "/proc/self/fd/", 14);
    int i = 14;
    while (n) buf[i++] = digits[--n];
    buf[i] = 0;
    return buf;
}

// MARK: - Reporting

void cshim_child_report(struct child *c, int kind, int stage, int err, const char *detail) {
    struct child_msg m;
    memset(&m, 0, sizeof(m));
    m.kind = kind;
    m.stage = stage;
    m.error = err;
    if (detail) cshim_child_copy(m.detail, sizeof(m.detail), detail);
    const char *p = (const char *)&m;
    size_t left = sizeof(m);
    while (left > 0) {
        ssize_t w = write(c->report_fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        p += w;
        left -= (size_t)w;
    }
}

__attribute__((noreturn)) void cshim_child_fail(struct child *c, int stage, int err, const char *detail) {
    // After the gate opened, `start` may be gone from the report pipe but watches the gate
    // FIFO: an 'E' there says the program never ran.
    if (c->open_gate_fd >= 0) {
        signal(SIGPIPE, SIG_IGN);
        ssize_t w = write(c->open_gate_fd, "E", 1);
        (void)w;
    }
    cshim_child_report(c, MSG_ERROR, stage, err, detail);
    _exit(127);
}

// MARK: - The child

// In a user namespace (new or joined) the runtime's ids are not mapped: become its root, so
// that what the setup creates (mount points, /dev) has an owner there (runc's nsexec does the
// same). The capabilities stay: root of the namespace gets the permitted set.
static void become_namespace_root(struct child *c) {
    if (syscall(SYS_setresgid, 0, 0, 0) < 0) cshim_child_fail(c, CSHIM_STAGE_USER_NAMESPACE, errno, "setresgid 0 in the user namespace (is 0 mapped?)");
    if (syscall(SYS_setresuid, 0, 0, 0) < 0) cshim_child_fail(c, CSHIM_STAGE_USER_NAMESPACE, errno, "setresuid 0 in the user namespace (is 0 mapped?)");
}

// CVE-2024-21626: the working directory must be inside the container's root. A cwd reached
// through a leaked fd of the host has no path from this root, and getcwd says so.
static void cshim_child_check_cwd(struct child *c) {
    char cwd[PATH_MAX];
    long n = syscall(SYS_getcwd, cwd, sizeof(cwd));
    if (n < 0) cshim_child_fail(c, CSHIM_STAGE_CWD, errno, c->plan->cwd);
    if (cwd[0] != '/') cshim_child_fail(c, CSHIM_STAGE_CWD, EPERM, c->plan->cwd);
}

// The states the runtime sends for the hooks: the one for createContainer, then the one for
// startContainer (both `created` today; read by cshim_child_read_hook_state, spawn_hooks.c).
static char hook_state_creating[65536];
static char hook_state_created[65536];

__attribute__((noreturn)) void cshim_child_main(struct child *c) {
    const struct cshim_spawn_plan *p = c->plan;

    // Signals: nothing of the parent's may run here. Reset every handler, then unblock.
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < _NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP) continue;
        sigaction(s, &dfl, NULL);  // async-signal-safe; fails harmlessly for glibc's own signals
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    // A new user namespace: nothing is done until the parent has written its id maps.
    if (c->userns_sync_fd >= 0) {
        char b;
        ssize_t n;
        do {
            n = read(c->userns_sync_fd, &b, 1);
        } while (n < 0 && errno == EINTR);
        if (n != 1) _exit(127);  // the parent failed (and says why)
        close(c->userns_sync_fd);
        c->userns_sync_fd = -1;
        become_namespace_root(c);
    }

    // CVE-2019-5736: until execve this process is a copy of the runtime; make its /proc
    // entries (exe, mem, fd) unreachable for anything without CAP_SYS_PTRACE.
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) cshim_child_fail(c, CSHIM_STAGE_SETUP, errno, "dumpable");
    // Every inherited fd closes at exec; the plan's own fds stay usable until then.
    if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        cshim_child_fail(c, CSHIM_STAGE_SETUP, errno, "close_range");
    umask(0);

    if (p->setsid && setsid() < 0) cshim_child_fail(c, CSHIM_STAGE_SETUP, errno, "setsid");
    // Only the runtime writes hook states: its end closes here, so that its death is EOF.
    if (p->hooks_fd >= 0 && p->hooks_peer_fd >= 0) close(p->hooks_peer_fd);

    if (p->set_oom_score_adj && p->uid_map == NULL) {  // else set by the parent
        int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (fd < 0) cshim_child_fail(c, CSHIM_STAGE_OOM_SCORE_ADJ, errno, "/proc/self/oom_score_adj");
        char buf[16];
        int v = p->oom_score_adj, n = 0, neg = v < 0;
        unsigned int u = neg ? (unsigned int)(-v) : (unsigned int)v;
        char tmp[16];
        do {
            tmp[n++] = (char)('0' + u % 10);
            u /= 10;
        } while (u && n < 15);
        int k = 0;
        if (neg) buf[k++] = '-';
        while (n) buf[k++] = tmp[--n];
        if (write(fd, buf, (size_t)k) != k)
            cshim_child_fail(c, CSHIM_STAGE_OOM_SCORE_ADJ, errno, "/proc/self/oom_score_adj");
        close(fd);
    }

    // Join existing namespaces (the pid namespace was entered by the parent thread); a user
    // namespace comes first in the list, so that the others are joined as its root.
    for (size_t i = 0; i < p->njoins; i++) {
        if (setns(p->joins[i].fd, p->joins[i].nstype) < 0) cshim_child_fail(c, CSHIM_STAGE_SETNS, errno, "setns");
    }
    for (size_t i = 0; i < p->njoins; i++)
        if (p->joins[i].nstype & CLONE_NEWUSER) become_namespace_root(c);
    if (p->unshare_flags && unshare((int)p->unshare_flags) < 0) cshim_child_fail(c, CSHIM_STAGE_SETNS, errno, "unshare");
    if (p->unshare_flags & CLONE_NEWPID) {
        // A pid namespace the joined user namespace owns applies to children only: the
        // container is a second child, the runtime's own (CLONE_PARENT) and PID 1 there.
        // This one reports its pid and exits (runc's nsexec forks the same way).
        struct {
            uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
        } args;
        memset(&args, 0, sizeof(args));
        args.flags = CLONE_PARENT;
        long pid = syscall(SYS_clone3, &args, sizeof(args));
        if (pid < 0) cshim_child_fail(c, CSHIM_STAGE_PID_NAMESPACE, errno, "clone3 (PID 1 of the new pid namespace)");
        if (pid > 0) {
            cshim_child_report(c, MSG_PID, 0, (int)pid, NULL);
            _exit(0);
        }
        if (p->setsid && setsid() < 0) cshim_child_fail(c, CSHIM_STAGE_SETUP, errno, "setsid");
    }
    // A container without a mount namespace of its own was entered by chroot: so is an exec.
    if (p->enter_root_fd >= 0) {
        if (fchdir(p->enter_root_fd) < 0 || chroot(".") < 0 || chdir("/") < 0)
            cshim_child_fail(c, CSHIM_STAGE_PIVOT_ROOT, errno, "the container's root");
        close(p->enter_root_fd);
    }
    // /dev/null of the mount namespace the container is set up in (joined or a copy of the
    // runtime's), for masking: opened before the rootfs hides the host's /dev. A node of
    // another mount namespace could not be bound here.
    if (p->nmasked > 0) {
        c->devnull_fd = open("/dev/null", O_PATH | O_CLOEXEC | O_NOFOLLOW);
        if (c->devnull_fd < 0) cshim_child_fail(c, CSHIM_STAGE_MASKED_PATHS, errno, "/dev/null");
        struct stat st;
        if (fstat(c->devnull_fd, &st) < 0) cshim_child_fail(c, CSHIM_STAGE_MASKED_PATHS, errno, "/dev/null");
        if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != 1 || minor(st.st_rdev) != 3)
            cshim_child_fail(c, CSHIM_STAGE_MASKED_PATHS, ENOTTY, "/dev/null");
    }

    // The AppArmor attribute file, opened now: the container's /proc (if any) is not the
    // runtime's, and the file belongs to this task, so writing it later through the fd works.
    if (p->apparmor_profile != NULL) {
        c->apparmor_fd = open("/proc/thread-self/attr/apparmor/exec", O_WRONLY | O_CLOEXEC);
        if (c->apparmor_fd < 0 && errno == ENOENT) c->apparmor_fd = open("/proc/thread-self/attr/exec", O_WRONLY | O_CLOEXEC);
        if (c->apparmor_fd < 0) cshim_child_fail(c, CSHIM_STAGE_APPARMOR, errno, p->apparmor_profile);
    }
    // Inside the target cgroup (CLONE_INTO_CGROUP) a new cgroup namespace is rooted there.
    if (p->unshare_cgroupns && unshare(CLONE_NEWCGROUP) < 0)
        cshim_child_fail(c, CSHIM_STAGE_CGROUP_NAMESPACE, errno, "unshare");

    if (p->rootfs != NULL) cshim_child_setup_rootfs(c);
    // The runtime's hooks (prestart, createRuntime) run now, then the createContainer ones.
    if (p->hooks_fd >= 0) {
        cshim_child_report(c, MSG_HOOKS, 0, 0, NULL);
        if (cshim_child_read_hook_state(p->hooks_fd, hook_state_creating) < 0 ||
            cshim_child_read_hook_state(p->hooks_fd, hook_state_created) < 0)
            _exit(127);  // the runtime gave up (its own error is what the caller sees)
        close(p->hooks_fd);
        cshim_child_run_hooks(c, "createContainer", p->create_container_hooks, p->ncreate_container_hooks,
                              hook_state_creating, 0);
    }
    if (p->rootfs != NULL) cshim_child_pivot_root(c);

    // The container's own (empty) session keyring, so it cannot read the runtime's keys.
    if (p->session_keyring != NULL &&
        syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, p->session_keyring, 0, 0, 0) < 0 && errno != ENOSYS)
        cshim_child_fail(c, CSHIM_STAGE_KEYRING, errno, p->session_keyring);

    if (p->loopback_up) {
        // `lo` of a new network namespace starts down (containers talk over localhost).
        int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (sk < 0) cshim_child_fail(c, CSHIM_STAGE_LOOPBACK, errno, "socket");
        struct ifreq ifr;
        memset(&ifr, 0, sizeof(ifr));
        memcpy(ifr.ifr_name, "lo", 3);
        if (ioctl(sk, SIOCGIFFLAGS, &ifr) < 0) cshim_child_fail(c, CSHIM_STAGE_LOOPBACK, errno, "lo");
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(sk, SIOCSIFFLAGS, &ifr) < 0) cshim_child_fail(c, CSHIM_STAGE_LOOPBACK, errno, "lo");
        close(sk);
    }

    if (p->hostname && sethostname(p->hostname, cshim_child_len(p->hostname)) < 0)
        cshim_child_fail(c, CSHIM_STAGE_HOSTNAME, errno, p->hostname);
    if (p->domainname && setdomainname(p->domainname, cshim_child_len(p->domainname)) < 0)
        cshim_child_fail(c, CSHIM_STAGE_HOSTNAME, errno, p->domainname);
    if (!c->sysctls_done) cshim_child_write_sysctls(c);

    for (size_t i = 0; p->uid_map == NULL && i < p->nrlimits; i++) {  // else set by the parent
        struct rlimit rl = {(rlim_t)p->rlimits[i].soft, (rlim_t)p->rlimits[i].hard};
        if (syscall(SYS_prlimit64, 0, p->rlimits[i].resource, &rl, NULL) < 0) {
            char name[8];
            int r = p->rlimits[i].resource;
            name[0] = (char)('0' + (r / 10) % 10);
            name[1] = (char)('0' + r % 10);
            name[2] = 0;
            cshim_child_fail(c, CSHIM_STAGE_RLIMITS, errno, name);
        }
    }

    // A terminal of the container's own: a pty from its /dev/pts, the master to the caller.
    int console = p->console_fd;
    if (p->console_socket >= 0) console = cshim_child_open_console(c);

    // Standard streams, then the preserved fds at 3, 4, ...; everything else closes.
    if (console >= 0) {
        if (ioctl(console, TIOCSCTTY, 0) < 0) cshim_child_fail(c, CSHIM_STAGE_CONSOLE, errno, "TIOCSCTTY");
        for (int i = 0; i < 3; i++)
            if (dup2(console, i) < 0) cshim_child_fail(c, CSHIM_STAGE_CONSOLE, errno, "dup2");
    } else {
        for (int i = 0; i < 3; i++)
            if (p->stdio[i] >= 0 && p->stdio[i] != i && dup2(p->stdio[i], i) < 0)
                cshim_child_fail(c, CSHIM_STAGE_STDIO, errno, "dup2");
            else if (p->stdio[i] == i) fcntl(i, F_SETFD, 0);
    }
    // Move the fds we still need above the preserved range, then lay the preserved ones out.
    int keep[5 + 64];
    size_t nkeep = 0;
    unsigned int top = 3 + (unsigned int)p->npreserve + 64;
    int report_fd = fcntl(c->report_fd, F_DUPFD_CLOEXEC, (int)top);
    if (report_fd < 0) cshim_child_fail(c, CSHIM_STAGE_CLOSE_FDS, errno, "report pipe");
    c->report_fd = report_fd;
    keep[nkeep++] = report_fd;
    int exec_fd = -1;
    if (p->exec_fd >= 0) {
        exec_fd = fcntl(p->exec_fd, F_DUPFD_CLOEXEC, (int)top);
        if (exec_fd < 0) cshim_child_fail(c, CSHIM_STAGE_CLOSE_FDS, errno, "exec fd");
        keep[nkeep++] = exec_fd;
    }
    int gate_fd = -1;
    if (p->gate_fd >= 0) {
        gate_fd = fcntl(p->gate_fd, F_DUPFD_CLOEXEC, (int)top);
        if (gate_fd < 0) cshim_child_fail(c, CSHIM_STAGE_CLOSE_FDS, errno, "gate");
        keep[nkeep++] = gate_fd;
    }
    if (c->apparmor_fd >= 0) {
        int fd = fcntl(c->apparmor_fd, F_DUPFD_CLOEXEC, (int)top);
        if (fd < 0) cshim_child_fail(c, CSHIM_STAGE_CLOSE_FDS, errno, "apparmor");
        c->apparmor_fd = fd;
        keep[nkeep++] = fd;
    }
    if (p->npreserve > 64) cshim_child_fail(c, CSHIM_STAGE_CLOSE_FDS, EINVAL, "preserve_fds");
    int moved[64];
    for (size_t i = 0; i < p->npreserve; i++) {
        moved[i] = fcntl(p->preserve_fds[i], F_DUPFD_CLOEXEC, (int)top);
        if (moved[i] < 0) cshim_child_fail(c, CSHIM_STAGE_CLOSE_FDS, errno, "preserve_fds");
    }
    for (size_t i = 0; i < p->npreserve; i++) {
        if (dup2(moved[i], 3 + (int)i) < 0) cshim_child_fail(c, CSHIM_STAGE_CLOSE_FDS, errno, "preserve_fds");
        keep[nkeep++] = 3 + (int)i;
    }
    cshim_child_close_fds_except(keep, nkeep);

    // The working directory, entered while still privileged, as runc does (a directory only
    // the container user may enter is entered again after the switch), and checked to be
    // inside the root (CVE-2024-21626: a leaked fd must not put the cwd on the host). The
    // check runs before any seccomp filter, which may refuse getcwd to the program.
    int cwd_later = 0;
    if (chdir(p->cwd) == 0)
        cshim_child_check_cwd(c);
    else if (errno == EACCES || errno == EPERM)
        cwd_later = 1;
    else
        cshim_child_fail(c, CSHIM_STAGE_CWD, errno, p->cwd);

    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it before the drop
    // (as runc does). With no_new_privs it is the very last step before execve.
    if (!p->no_new_privs) cshim_child_load_seccomp(c);

    cshim_child_apply_bounding(c);
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) cshim_child_fail(c, CSHIM_STAGE_CAPABILITIES, errno, "keepcaps");
    cshim_child_set_user(c);
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) cshim_child_fail(c, CSHIM_STAGE_CAPABILITIES, errno, "keepcaps");
    cshim_child_apply_caps(c);
    // Dropping privileges can reset the dumpable flag; keep it off until execve.
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    if (cwd_later) {
        if (chdir(p->cwd) < 0) cshim_child_fail(c, CSHIM_STAGE_CWD, errno, p->cwd);
        cshim_child_check_cwd(c);
    }
    umask(p->umask >= 0 ? (mode_t)p->umask : 022);

    // The profile takes effect at execve; before no_new_privs, which would only allow a
    // profile stacked under the current one (runc's order).
    if (c->apparmor_fd >= 0) {
        char cmd[512] = "exec ";
        if (cshim_child_append(cmd, sizeof cmd, p->apparmor_profile) < 0)
            cshim_child_fail(c, CSHIM_STAGE_APPARMOR, ENAMETOOLONG, p->apparmor_profile);
        ssize_t n = cshim_child_len(cmd);
        if (write(c->apparmor_fd, cmd, (size_t)n) != n) cshim_child_fail(c, CSHIM_STAGE_APPARMOR, errno, p->apparmor_profile);
        close(c->apparmor_fd);
        c->apparmor_fd = -1;
    }
    if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        cshim_child_fail(c, CSHIM_STAGE_NO_NEW_PRIVS, errno, "prctl");

    if (exec_fd < 0) cshim_child_lookup_exe(c);

    if (gate_fd >= 0) {
        cshim_child_report(c, MSG_READY, 0, 0, NULL);
        char b;
        ssize_t n;
        do {
            n = read(gate_fd, &b, 1);
        } while (n < 0 && errno == EINTR);
        if (n != 1) _exit(n == 0 ? 0 : 127);  // the gate was abandoned
        c->open_gate_fd = gate_fd;
        // gate_fd stays open (CLOEXEC) until exec: a runtime watching the gate FIFO sees its
        // last writer go (POLLHUP) once the program runs, or the process died.
    }

    if (p->hooks_fd >= 0)
        cshim_child_run_hooks(c, "startContainer", p->start_container_hooks, p->nstart_container_hooks,
                              hook_state_created, 1);

    if (p->no_new_privs) cshim_child_load_seccomp(c);

    if (exec_fd >= 0) {
        syscall(SYS_execveat, exec_fd, "", (char *const *)p->argv, (char *const *)p->envp, AT_EMPTY_PATH);
        cshim_child_copy(c->exe, sizeof(c->exe), p->argv[0]);
    } else {
        execve(c->exe, (char *const *)p->argv, (char *const *)p->envp);
    }
    int err = errno;
    // After create, the runtime that read our reports may be gone: do not die of SIGPIPE,
    // and say it on stderr too.
    signal(SIGPIPE, SIG_IGN);
    if (c->open_gate_fd >= 0) {
        ssize_t w = write(c->open_gate_fd, "E", 1);
        (void)w;
    }
    cshim_child_report(c, MSG_ERROR, CSHIM_STAGE_EXEC, err, c->exe);
    {
        char msg[PATH_MAX + 128] = "husk: exec ";
        cshim_child_append(msg, sizeof(msg), c->exe);
        cshim_child_append(msg, sizeof(msg), ": ");
        cshim_child_append(msg, sizeof(msg), strerrordesc_np(err) ? strerrordesc_np(err) : "error");
        cshim_child_append(msg, sizeof(msg), "\n");
        ssize_t w = write(2, msg, cshim_child_len(msg));
        (void)w;
    }
    _exit(127);
}
#endif
