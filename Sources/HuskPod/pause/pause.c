// pause.c — the infra process of a Husk pod: PID 1 of the pod's namespaces while containers
// come and go (pod-semantics §11). Behaves like Kubernetes' build/pause/linux/pause.c:
//   -v (any case) prints the version and exits 0;
//   a warning when it is not PID 1; SIGINT/SIGTERM exit 0; SIGCHLD reaps every exited child.
// Built static with musl (Plugins/PauseBuilder) and exec'd from a sealed memfd by the pod's
// supervisor, inside an empty read-only root, as uid/gid 65535 without capabilities.
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define VERSION "husk-3.10"

static void sigdown(int signo) {
    psignal(signo, "Shutting down, got signal");
    exit(0);
}

static void sigreap(int signo) {
    (void)signo;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; ++i) {
        if (!strcasecmp(argv[i], "-v")) {
            printf("pause.c %s\n", VERSION);
            return 0;
        }
    }
    if (getpid() != 1) fprintf(stderr, "Warning: pause should be the first process\n");

    // Seen from a container sharing its pid namespace, pause's /proc entries (root, exe,
    // fd, mem) stay closed to anything without CAP_SYS_PTRACE. exec made it dumpable again.
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    struct sigaction down = {.sa_handler = sigdown};
    if (sigaction(SIGINT, &down, NULL) < 0) return 1;
    if (sigaction(SIGTERM, &down, NULL) < 0) return 2;
    struct sigaction reap = {.sa_handler = sigreap, .sa_flags = SA_NOCLDSTOP};
    if (sigaction(SIGCHLD, &reap, NULL) < 0) return 3;

    for (;;) pause();
    fprintf(stderr, "Error: infinite loop terminated\n");
    return 42;
}
