// spawn_hooks.c — OCI hooks (createContainer, startContainer) for the child-side executor
// (see spawn_internal.h), and cshim_run_hook (see cshim_spawn.h).
//
// cshim_child_read_hook_state and cshim_child_run_hooks run in the cloned child, between
// clone3 and execve. cshim_run_hook runs in both: in the child (through
// cshim_child_run_hooks) and in the parent, where the runtime runs its own hooks with it. So
// all of this file is async-signal-safe: fork, execve, poll, waitpid and raw system calls;
// no malloc, no stdio, no locks; strings are built on the stack.
#if defined(__linux__)
#ifndef _GNU_SOURCE
#error "CShim needs _GNU_SOURCE"
#endif
#include "spawn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

// MARK: - Hooks

static int read_full(int fd, void *buf, size_t n) {
    char *b = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

// [u32 length][bytes] into a NUL-terminated buffer of 64 KiB.
int cshim_child_read_hook_state(int fd, char *buf) {
    uint32_t n;
    if (read_full(fd, &n, sizeof(n)) < 0 || n >= 65536) return -1;
    if (read_full(fd, buf, n) < 0) return -1;
    buf[n] = 0;
    return 0;
}

static void u_to_s(char *dst, size_t cap, unsigned long v) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < 23);
    size_t k = 0;
    while (n && k + 1 < cap) dst[k++] = tmp[--n];
    dst[k] = 0;
}

int cshim_run_hook(const struct cshim_hook *h, const char *state, size_t len, char *err, size_t errlen) {
    err[0] = 0;
    int in[2];
    if (pipe2(in, O_CLOEXEC) < 0) {
        cshim_child_copy(err, errlen, "pipe: ");
        cshim_child_append(err, errlen, strerrordesc_np(errno));
        return -1;
    }
    const char *default_argv[2] = {h->path, NULL};
    const char *empty_env[1] = {NULL};
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        // Its own process group, so that a timeout kills what it started too.
        setpgid(0, 0);
        if (dup2(in[0], 0) < 0) _exit(126);
        // Only stdin, stdout and stderr go to the hook (as Go's os/exec gives runc's).
        syscall(SYS_close_range, 3, ~0U, 0);
        execve(h->path, (char *const *)(h->argv && h->argv[0] ? (const char *const *)h->argv : default_argv),
               (char *const *)(h->envp ? (const char *const *)h->envp : empty_env));
        int e = errno;
        char msg[PATH_MAX + 96] = "hook ";
        cshim_child_append(msg, sizeof(msg), h->path);
        cshim_child_append(msg, sizeof(msg), ": ");
        cshim_child_append(msg, sizeof(msg), strerrordesc_np(e) ? strerrordesc_np(e) : "exec failed");
        cshim_child_append(msg, sizeof(msg), "\n");
        ssize_t w = write(2, msg, cshim_child_len(msg));
        (void)w;
        _exit(127);
    }
    int fork_errno = errno;
    close(in[0]);
    if (pid < 0) {
        close(in[1]);
        cshim_child_copy(err, errlen, "fork: ");
        cshim_child_append(err, errlen, strerrordesc_np(fork_errno));
        return -1;
    }
    // The state, as much as the pipe takes without waiting (a hook need not read it).
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(in[1], state + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += (size_t)w;
    }
    close(in[1]);
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    int timed_out = 0;
    if (pfd >= 0 && h->timeout > 0) {
        struct pollfd pp = {.fd = pfd, .events = POLLIN};
        int r;
        do {
            r = poll(&pp, 1, h->timeout * 1000);
        } while (r < 0 && errno == EINTR);
        if (r == 0) {
            timed_out = 1;
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
        }
    }
    if (pfd >= 0) close(pfd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    char num[24];
    if (timed_out) {
        u_to_s(num, sizeof(num), (unsigned long)h->timeout);
        cshim_child_copy(err, errlen, "timed out after ");
        cshim_child_append(err, errlen, num);
        cshim_child_append(err, errlen, " s");
        return -1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    if (WIFEXITED(status)) {
        u_to_s(num, sizeof(num), (unsigned long)WEXITSTATUS(status));
        cshim_child_copy(err, errlen, "exited with status ");
    } else {
        u_to_s(num, sizeof(num), (unsigned long)WTERMSIG(status));
        cshim_child_copy(err, errlen, "killed by signal ");
    }
    cshim_child_append(err, errlen, num);
    return -1;
}

// Runs hooks of one kind in order; the first failure fails the spawn.
void cshim_child_run_hooks(struct child *c, const char *kind, const struct cshim_hook *hooks, size_t n,
                           const char *state, int after_gate) {
    for (size_t i = 0; i < n; i++) {
        char err[256];
        if (cshim_run_hook(&hooks[i], state, cshim_child_len(state), err, sizeof(err)) == 0) continue;
        char detail[512];
        char num[24];
        u_to_s(num, sizeof(num), (unsigned long)i);
        cshim_child_copy(detail, sizeof(detail), kind);
        cshim_child_append(detail, sizeof(detail), " hook ");
        cshim_child_append(detail, sizeof(detail), num);
        cshim_child_append(detail, sizeof(detail), " (");
        cshim_child_append(detail, sizeof(detail), hooks[i].path);
        cshim_child_append(detail, sizeof(detail), "): ");
        cshim_child_append(detail, sizeof(detail), err);
        if (after_gate) {
            // The runtime that reads reports may be gone (create returned): say it on stderr
            // too, and do not die of SIGPIPE.
            signal(SIGPIPE, SIG_IGN);
            char msg[600] = "husk: ";
            cshim_child_append(msg, sizeof(msg), detail);
            cshim_child_append(msg, sizeof(msg), "\n");
            ssize_t w = write(2, msg, cshim_child_len(msg));
            (void)w;
        }
        cshim_child_fail(c, CSHIM_STAGE_HOOK, 0, detail);
    }
}
#endif
