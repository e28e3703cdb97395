// Dropping the resident pages of the executable's code and read-only data (the idle pod
// supervisor, DESIGN §3). In C, so that no code outside this file runs between the drop and
// the return: Swift's string handling, spread over the binary, would map back megabytes with
// the kernel's 64 KiB fault-around.
#include "cshim_syscall.h"

#include <fcntl.h>
#include <pthread.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

// Pages of [start, end) that are present and still the file's (pagemap bit 63 present, bit 61
// file page) are dropped; private copies (relocated before mprotect) stay.
static size_t drop_file_pages(int pagemap, uintptr_t start, uintptr_t end, size_t page) {
    size_t total = 0;
    uint64_t entries[512];
    uintptr_t run = 0;
    for (uintptr_t addr = start; addr < end;) {
        size_t n = (end - addr) / page;
        if (n > 512) n = 512;
        ssize_t got = pread(pagemap, entries, n * 8, (off_t)(addr / page * 8));
        if (got != (ssize_t)(n * 8)) return total;
        for (size_t i = 0; i < n; i++, addr += page) {
            int droppable = (entries[i] >> 63 & 1) && (entries[i] >> 61 & 1);
            if (droppable && !run) run = addr;
            if (!droppable && run) {
                if (madvise((void *)run, addr - run, MADV_DONTNEED) == 0) total += addr - run;
                run = 0;
            }
        }
    }
    if (run && madvise((void *)run, end - run, MADV_DONTNEED) == 0) total += end - run;
    return total;
}

size_t cshim_trim_executable(void) {
    // Free heap memory back to the kernel first, from every malloc arena (glibc walks them
    // all and also returns whole free pages inside them): a pull done by a thread leaves MiBs.
    malloc_trim(0);
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return 0;
    exe[len] = 0;
    int maps = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (maps < 0) return 0;
    static char buf[1 << 16];  // the maps of a supervisor are a few KiB
    size_t used = 0;
    ssize_t r;
    while (used < sizeof buf - 1 && (r = read(maps, buf + used, sizeof buf - 1 - used)) > 0) used += (size_t)r;
    close(maps);
    buf[used] = 0;
    int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t total = 0;
    for (char *line = buf; line && *line;) {
        char *next = strchr(line, '\n');
        if (next) *next++ = 0;
        // "start-end perms offset dev inode   path"
        char *dash = strchr(line, '-');
        char *sp = dash ? strchr(dash, ' ') : NULL;
        char *path = strchr(line, '/');
        if (dash && sp && path && strcmp(path, exe) == 0) {
            uintptr_t start = (uintptr_t)strtoull(line, NULL, 16);
            uintptr_t end = (uintptr_t)strtoull(dash + 1, NULL, 16);
            const char *perms = sp + 1;
            if (end > start && strncmp(perms, "r-xp", 4) == 0) {
                if (madvise((void *)start, end - start, MADV_DONTNEED) == 0) total += end - start;
            } else if (end > start && strncmp(perms, "r--p", 4) == 0 && pagemap >= 0) {
                total += drop_file_pages(pagemap, start, end, page);
            }
        }
        line = next;
    }
    if (pagemap >= 0) close(pagemap);
    return total;
}

void cshim_malloc_one_arena(void) {
    mallopt(M_ARENA_MAX, 1);
}

void cshim_malloc_trim(void) {
    malloc_trim(0);
}

size_t cshim_trim_stack(size_t margin) {
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return 0;
    void *addr = NULL;
    size_t size = 0;
    int ok = pthread_attr_getstack(&attr, &addr, &size) == 0;
    pthread_attr_destroy(&attr);
    if (!ok || !addr) return 0;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)addr + page - 1) & ~(uintptr_t)(page - 1);
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    if (margin < 512) margin = 512;  // the ABI's red zone, and then some
    if (sp < lo + margin) return 0;
    uintptr_t end = (sp - margin) & ~(uintptr_t)(page - 1);
    if (end <= lo) return 0;
    // The main thread's range reaches below what its stack ever grew to: madvise skips
    // the unmapped part (ENOMEM) after dropping the mapped one.
    madvise((void *)lo, end - lo, MADV_DONTNEED);
    return end - lo;
}
