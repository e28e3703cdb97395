// syscall.c — one function per system call (see cshim_syscall.h). Runs in the parent only.
#if defined(__linux__)
#ifndef _GNU_SOURCE
#error "CShim needs _GNU_SOURCE"
#endif
#include "cshim_syscall.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/signalfd.h>
#include <poll.h>
#include <unistd.h>
#include <linux/nsfs.h>
#include <linux/openat2.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

_Static_assert(CSHIM_CLONE_NEWNS == CLONE_NEWNS, "CLONE_NEWNS");
_Static_assert(CSHIM_CLONE_NEWPID == CLONE_NEWPID, "CLONE_NEWPID");
_Static_assert(CSHIM_CLONE_NEWNET == CLONE_NEWNET, "CLONE_NEWNET");
_Static_assert(CSHIM_CLONE_NEWCGROUP == CLONE_NEWCGROUP, "CLONE_NEWCGROUP");
_Static_assert(CSHIM_MS_BIND == MS_BIND, "MS_BIND");
_Static_assert(CSHIM_MS_SLAVE == MS_SLAVE, "MS_SLAVE");
_Static_assert(CSHIM_O_PATH == O_PATH, "O_PATH");
_Static_assert(CSHIM_RESOLVE_IN_ROOT == RESOLVE_IN_ROOT, "RESOLVE_IN_ROOT");

int cshim_setns(int fd, int nstype) { return setns(fd, nstype); }

int cshim_unshare(int flags) { return unshare(flags); }

int cshim_ns_get_type(int fd) { return ioctl(fd, NS_GET_NSTYPE); }

int cshim_pidfd_open(pid_t pid, unsigned int flags) { return (int)syscall(SYS_pidfd_open, pid, flags); }

int cshim_pidfd_send_signal(int pidfd, int sig, unsigned int flags) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, flags);
}

int cshim_waitid_pidfd(int pidfd, int options, pid_t *pid, int *code, int *status) {
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    int r;
    do {
        r = (int)syscall(SYS_waitid, P_PIDFD, pidfd, &info, options, NULL);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return -1;
    *pid = info.si_pid;
    *code = info.si_code;
    *status = info.si_status;
    return 0;
}

int cshim_pipe2(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int cshim_close_range(unsigned int first, unsigned int last, unsigned int flags) {
    return (int)syscall(SYS_close_range, first, last, flags);
}

int cshim_set_child_subreaper(int on) { return prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0, 0, 0, 0); }

int cshim_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
    struct open_how how = {.flags = flags, .mode = mode, .resolve = resolve};
    int r;
    do {
        r = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
    } while (r < 0 && errno == EAGAIN);  // RESOLVE_IN_ROOT may ask to retry after a rename race
    return r;
}

long cshim_xattr_size(const char *path, const char *name) { return (long)lgetxattr(path, name, NULL, 0); }

int cshim_syncfs(int fd) { return syncfs(fd); }

int cshim_mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data) {
    return mount(source, target, fstype, flags, data);
}

int cshim_umount2(const char *target, int flags) { return umount2(target, flags); }

int cshim_pivot_root(const char *new_root, const char *put_old) {
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

int cshim_open_tree(int dirfd, const char *path, unsigned int flags) {
    return (int)syscall(SYS_open_tree, dirfd, path, flags);
}

int cshim_move_mount(int from_dirfd, const char *from_path, int to_dirfd, const char *to_path, unsigned int flags) {
    return (int)syscall(SYS_move_mount, from_dirfd, from_path, to_dirfd, to_path, flags);
}

int cshim_fsopen(const char *fsname, unsigned int flags) { return (int)syscall(SYS_fsopen, fsname, flags); }

int cshim_fsconfig(int fd, unsigned int cmd, const char *key, const void *value, int aux) {
    return (int)syscall(SYS_fsconfig, fd, cmd, key, value, aux);
}

int cshim_fsmount(int fd, unsigned int flags, unsigned int attr_flags) {
    return (int)syscall(SYS_fsmount, fd, flags, attr_flags);
}

struct cshim_mount_attr {
    uint64_t attr_set;
    uint64_t attr_clr;
    uint64_t propagation;
    uint64_t userns_fd;
};

int cshim_mount_setattr(int dirfd, const char *path, unsigned int flags, uint64_t attr_set, uint64_t attr_clr) {
    struct cshim_mount_attr attr = {.attr_set = attr_set, .attr_clr = attr_clr};
    return (int)syscall(SYS_mount_setattr, dirfd, path, flags, &attr, sizeof(attr));
}

int cshim_mknodat(int dirfd, const char *path, unsigned int mode, unsigned int major_, unsigned int minor_) {
    return mknodat(dirfd, path, (mode_t)mode, makedev(major_, minor_));
}

unsigned int cshim_major(uint64_t dev) { return major((dev_t)dev); }
unsigned int cshim_minor(uint64_t dev) { return minor((dev_t)dev); }

int cshim_memfd_create(const char *name) { return (int)syscall(SYS_memfd_create, name, 1U /* MFD_CLOEXEC */); }

int cshim_set_dumpable(int dumpable) { return prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0); }

const char *cshim_strerror(int err) { return strerrordesc_np(err); }

const char *cshim_signal_name(int sig) { return sigabbrev_np(sig); }

int cshim_sigrtmin(void) { return SIGRTMIN; }
int cshim_sigrtmax(void) { return SIGRTMAX; }

int cshim_forwarded_signals_fd(void) {
    sigset_t set;
    sigemptyset(&set);
    for (int s = 1; s < 32; s++) {
        switch (s) {
        case SIGKILL: case SIGSTOP: case SIGCHLD: case SIGPIPE:
        case SIGSEGV: case SIGBUS: case SIGILL: case SIGFPE: case SIGABRT: case SIGTRAP: case SIGSYS:
            continue;
        default:
            sigaddset(&set, s);
        }
    }
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

int cshim_signalfd_read(int fd) {
    struct signalfd_siginfo info;
    ssize_t n = read(fd, &info, sizeof(info));
    if (n != (ssize_t)sizeof(info)) return -1;
    return (int)info.ssi_signo;
}

int cshim_poll2(int fd0, int fd1, int timeout_ms) {
    struct pollfd p[2] = {{.fd = fd0, .events = POLLIN}, {.fd = fd1, .events = POLLIN}};
    int r;
    do {
        r = poll(p, 2, timeout_ms);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return -1;
    if (r == 0) return 2;
    if (p[0].revents) return 0;
    return 1;
}

int cshim_cap_last_cap(void) {
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[16];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    int v = 0;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) v = v * 10 + (buf[i] - '0');
    return v;
}
#endif
