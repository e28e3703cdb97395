// keeper.c — the keeper of one Husk pod: the parent of the pod's supervisor, so that a crash of
// the supervisor loses neither a container nor an exit code nor a line of output (DESIGN §3).
//
//   husk-keeper STATE_DIR SUPERVISOR_ARGV...
//
// It is a child subreaper. It runs the supervisor with one end of a SOCK_SEQPACKET pair as
// fd 3 (HUSK_KEEPER_FD=3) and then:
//  - holds the fds the supervisor gives it ("H <id>" + SCM_RIGHTS: a container's output pipes,
//    so that a container writing while no supervisor reads blocks instead of dying of SIGPIPE)
//    until told to drop them ("D <id>");
//  - reaps every other process that comes to it (the pod's processes, orphaned when the
//    supervisor died) and writes how it ended to STATE_DIR/exits/<pid>.<starttime> as
//    "<si_code> <si_status>\n", so that a new supervisor can report it;
//  - when the supervisor is killed by a signal, starts a new one (HUSK_KEEPER_LOST says how
//    the old one ended) and gives it every fd it holds ("H <id>" + fds, then "E"). Five
//    deaths each within 10 s of the start in a row: it gives up and exits 1.
//  - when the supervisor exits with a status, exits with that status (0: the pod finished).
// SIGTERM, SIGINT and SIGHUP are passed on to the supervisor.
//
// Built static with musl (Plugins/PauseBuilder) and exec'd from a sealed memfd by `husk run`.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_HELD 1024
#define MAX_FDS 4

struct held {
    char id[128];
    int fds[MAX_FDS];
    int n;
};

static struct held *held[MAX_HELD];
static const char *state_dir;
static char **sup_argv;
static pid_t sup_pid = -1;
static int conn = -1;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...) {
    char line[512];
    int n = snprintf(line, sizeof line, "husk-keeper: ");
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 2) n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(2, line, (size_t)n);
    (void)w;
}

static void drop(int k) {
    for (int j = 0; j < held[k]->n; ++j) close(held[k]->fds[j]);
    free(held[k]);
    held[k] = NULL;
}

static int find(const char *id) {
    for (int k = 0; k < MAX_HELD; ++k)
        if (held[k] && !strcmp(held[k]->id, id)) return k;
    return -1;
}

static int send_entry(int sock, const char *tag, const char *id, const int *fds, int n) {
    char msg[128];
    int len = snprintf(msg, sizeof msg, "%s %s", tag, id);
    struct iovec iov = {.iov_base = msg, .iov_len = (size_t)len};
    union {
        char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
        struct cmsghdr align;
    } u;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (n > 0) {
        mh.msg_control = u.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
    }
    ssize_t r;
    do r = sendmsg(sock, &mh, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -1 : 0;
}

// One message from the supervisor. Returns 0 at EOF.
static int receive(void) {
    char msg[128];
    union {
        char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
        struct cmsghdr align;
    } u;
    struct iovec iov = {.iov_base = msg, .iov_len = sizeof msg - 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    ssize_t r = recvmsg(conn, &mh, MSG_CMSG_CLOEXEC);
    if (r < 0) return errno == EINTR || errno == EAGAIN ? 1 : 0;
    if (r == 0) return 0;
    msg[r] = 0;
    int fds[MAX_FDS], n = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int j = 0; j < count; ++j) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + sizeof(int) * (size_t)j, sizeof fd);
            if (n < MAX_FDS) fds[n++] = fd;
            else close(fd);
        }
    }
    const char *id = msg + 2;
    if (r > 2 && msg[0] == 'H' && msg[1] == ' ') {
        int k = find(id);
        if (k >= 0) drop(k);
        for (k = 0; k < MAX_HELD && held[k]; ++k) {
        }
        struct held *h = k < MAX_HELD ? calloc(1, sizeof *h) : NULL;
        if (!h) {
            for (int j = 0; j < n; ++j) close(fds[j]);
            say("cannot hold the fds of %s", id);
            return 1;
        }
        snprintf(h->id, sizeof h->id, "%s", id);
        memcpy(h->fds, fds, sizeof(int) * (size_t)n);
        h->n = n;
        held[k] = h;
        return 1;
    }
    for (int j = 0; j < n; ++j) close(fds[j]);
    if (r > 2 && msg[0] == 'D' && msg[1] == ' ') {
        int k = find(id);
        if (k >= 0) drop(k);
    }
    return 1;
}

static void spawn(const char *lost) {
    // What the old supervisor sent before it died is still queued: take it first.
    if (conn >= 0) {
        while (receive()) {
        }
        close(conn);
        conn = -1;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        say("socketpair: %s", strerror(errno));
        exit(1);
    }
    pid_t pid = fork();
    if (pid < 0) {
        say("fork: %s", strerror(errno));
        exit(1);
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (dup2(sv[1], 3) < 0) _exit(127);
        setenv("HUSK_KEEPER_FD", "3", 1);
        if (lost) setenv("HUSK_KEEPER_LOST", lost, 1);
        execv(sup_argv[0], sup_argv);
        _exit(127);
    }
    close(sv[1]);
    conn = sv[0];
    sup_pid = pid;
    // Everything held goes to the new supervisor, then the end mark.
    for (int k = 0; k < MAX_HELD; ++k)
        if (held[k]) send_entry(conn, "H", held[k]->id, held[k]->fds, held[k]->n);
    send_entry(conn, "E", "-", NULL, 0);
}

// Field 22 of /proc/<pid>/stat: the start time that makes <pid> unique.
static unsigned long long start_time(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    // After ")": field 3 is the first; field 22 is the 20th.
    int field = 2;
    for (; *p && field < 22; ++p)
        if (*p == ' ') ++field;
    return strtoull(p, NULL, 10);
}

static void record_exit(pid_t pid, unsigned long long start, int code, int status) {
    char dir[4096], tmp[4200], path[4200], line[64];
    snprintf(dir, sizeof dir, "%s/exits", state_dir);
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/%d.%llu", dir, (int)pid, start);
    snprintf(tmp, sizeof tmp, "%s/.%d.%llu", dir, (int)pid, start);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return;
    int len = snprintf(line, sizeof line, "%d %d\n", code, status);
    ssize_t w = write(fd, line, (size_t)len);
    (void)w;
    close(fd);
    rename(tmp, path);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: husk-keeper STATE_DIR SUPERVISOR_ARGV...\n");
        return 2;
    }
    state_dir = argv[1];
    sup_argv = argv + 2;
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        say("signalfd: %s", strerror(errno));
        return 1;
    }
    spawn(NULL);
    double started = now(), restart_at = 0;
    int quick_deaths = 0, exit_code = -1;
    char lost[128] = "";
    for (;;) {
        struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = conn, .events = POLLIN}};
        int timeout = -1;
        if (restart_at > 0) {
            double left = restart_at - now();
            timeout = left <= 0 ? 0 : (int)(left * 1000) + 1;
        }
        int r = poll(p, conn >= 0 ? 2 : 1, timeout);
        if (r < 0 && errno != EINTR) return 1;
        if (restart_at > 0 && now() >= restart_at) {
            restart_at = 0;
            spawn(lost);
            started = now();
            continue;
        }
        if (conn >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            if (!receive()) {
                close(conn);
                conn = -1;
            }
        }
        if (!(p[0].revents & POLLIN)) continue;
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == sizeof si) {
            if (si.ssi_signo != SIGCHLD) {
                if (sup_pid > 0) kill(sup_pid, (int)si.ssi_signo);
                continue;
            }
        }
        for (;;) {
            siginfo_t info = {0};
            if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0 || info.si_pid == 0) break;
            pid_t pid = info.si_pid;
            unsigned long long start = pid == sup_pid ? 0 : start_time(pid);
            siginfo_t done = {0};
            if (waitid(P_PID, (id_t)pid, &done, WEXITED) < 0) break;
            if (pid != sup_pid) {
                record_exit(pid, start, done.si_code, done.si_status);
                continue;
            }
            sup_pid = -1;
            if (done.si_code == CLD_EXITED) {
                exit_code = done.si_status;
                continue;
            }
            // Killed: a new supervisor takes over (at once the first time, then after 0.1 s,
            // 0.2 s, ... when it keeps dying young).
            quick_deaths = now() - started < 10 ? quick_deaths + 1 : 1;
            snprintf(lost, sizeof lost, "killed by signal %d%s", done.si_status, done.si_code == CLD_DUMPED ? " (core dumped)" : "");
            if (quick_deaths >= 5) {
                say("the supervisor died 5 times within 10 s of its start; giving up (last: %s)", lost);
                exit_code = 1;
                continue;
            }
            say("the supervisor was %s; starting a new one", lost);
            restart_at = now() + (quick_deaths <= 1 ? 0 : 0.1 * (double)(1 << (quick_deaths - 2)));
        }
        if (exit_code >= 0 && sup_pid < 0) {
            for (int k = 0; k < MAX_HELD; ++k)
                if (held[k]) drop(k);
            return exit_code;
        }
    }
}
