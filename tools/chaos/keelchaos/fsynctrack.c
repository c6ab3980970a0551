// fsynctrack: an LD_PRELOAD shim that records, for every successful fsync or fdatasync
// of a regular file, how many bytes of it were certainly durable: the file's size just
// *before* the sync began (bytes appended while the sync runs may or may not be
// covered, so they are not claimed). tools/chaos uses the record to model a power loss
// ("lose unsynced writes"): after SIGKILL, every segment file is cut back to its last
// recorded size, which removes only bytes that were never fsynced.
//
// One line per sync, appended with O_APPEND to the file named by $KEELCHAOS_FSYNC_LOG:
//
//     <size-before-sync> <inode> <path>\n
//
// The line is written before the sync call returns to the program, so the program can
// never act on a sync (acknowledge a write) whose record is missing. Without
// $KEELCHAOS_FSYNC_LOG the shim only forwards the calls.
//
// $KEELCHAOS_FSYNC_DELAY_US (optional) makes every sync of a regular file take that much
// longer, as on a slow disk: written-but-unsynced bytes then exist for long enough that a
// SIGKILL finds some, and "lose unsynced writes" has something to lose.
//
// Build: cc -O2 -shared -fPIC -o fsynctrack.so fsynctrack.c -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int log_fd = -1;
static long delay_us = 0;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void) {
    real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    const char *path = getenv("KEELCHAOS_FSYNC_LOG");
    if (path != NULL && path[0] != '\0') {
        log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    }
    const char *delay = getenv("KEELCHAOS_FSYNC_DELAY_US");
    if (delay != NULL) {
        long us = strtol(delay, NULL, 10);
        if (us > 0 && us <= 10 * 1000 * 1000) delay_us = us;
    }
}

static void slow_disk(int fd) {
    struct stat st;
    if (delay_us == 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
    struct timespec ts = {delay_us / 1000000, (delay_us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/// What the caller needs to record after a successful sync: filled before the sync.
struct pending {
    int regular;
    long long size;
    unsigned long long inode;
    char path[PATH_MAX];
};

static void prepare(int fd, struct pending *p) {
    struct stat st;
    p->regular = 0;
    if (log_fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, p->path, sizeof p->path - 1);
    if (n <= 0) return;
    p->path[n] = '\0';
    p->size = (long long)st.st_size;
    p->inode = (unsigned long long)st.st_ino;
    p->regular = 1;
}

static void record(const struct pending *p) {
    if (!p->regular) return;
    char line[PATH_MAX + 64];
    int n = snprintf(line, sizeof line, "%lld %llu %s\n", p->size, p->inode, p->path);
    if (n > 0 && n < (int)sizeof line) {
        ssize_t ignored = write(log_fd, line, (size_t)n);
        (void)ignored;
    }
}

int fsync(int fd) {
    pthread_once(&once, init);
    slow_disk(fd);
    struct pending p;
    prepare(fd, &p);
    int result = real_fsync(fd);
    if (result == 0) record(&p);
    return result;
}

int fdatasync(int fd) {
    pthread_once(&once, init);
    slow_disk(fd);
    struct pending p;
    prepare(fd, &p);
    int result = real_fdatasync(fd);
    if (result == 0) record(&p);
    return result;
}
