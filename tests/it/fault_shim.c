/* An LD_PRELOAD shim for tests/it/faults.rs: makes the real programs' system
 * calls fail while a control file says so.
 *
 * FAULT_CTL names the control file. While it is absent every call goes
 * straight to the kernel. While it exists, each of its lines is a rule:
 *
 *     fsync  ERRNO  PATTERN     fsync(2) and fdatasync(2)
 *     write  ERRNO  PATTERN     write, pwrite, pwrite64, writev, pwritev
 *     sleep  fast   -           a relative sleep of at most 1 ms (nanosleep,
 *                               clock_nanosleep) returns at once
 *
 * ERRNO is EIO or ENOSPC. PATTERN is matched against the path of the file
 * descriptor (readlink of /proc/self/fd/N): a substring, or a suffix when it
 * ends in '$'. Every injected fault appends one line ("OP PATH") to
 * FAULT_CTL.hits, so a test can show that its fault really happened.
 *
 * Pass-through and the shim's own work use raw system calls, so nothing here
 * recurses into an intercepted function.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* The control file's rules for OP, or 0 when none applies to FD. */
static int fault_for(const char *op, int fd)
{
    const char *ctl = getenv("FAULT_CTL");
    if (!ctl)
        return 0;
    int c = syscall(SYS_openat, AT_FDCWD, ctl, O_RDONLY | O_CLOEXEC);
    if (c < 0)
        return 0;
    char rules[4096];
    long n = syscall(SYS_read, c, rules, sizeof rules - 1);
    syscall(SYS_close, c);
    if (n <= 0)
        return 0;
    rules[n] = 0;

    char path[4096] = "";
    if (fd >= 0) {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        long l = syscall(SYS_readlinkat, AT_FDCWD, link, path, sizeof path - 1);
        if (l < 0)
            return 0;
        path[l] = 0;
    }

    int err = 0;
    char *save = NULL;
    for (char *line = strtok_r(rules, "\n", &save); line && !err;
         line = strtok_r(NULL, "\n", &save)) {
        char rop[16], rerr[16], pat[1024];
        if (sscanf(line, "%15s %15s %1023s", rop, rerr, pat) != 3 || strcmp(rop, op) != 0)
            continue;
        if (strcmp(op, "sleep") == 0)
            return -1; /* not logged: a busy wait sleeps thousands of times */
        size_t pl = strlen(pat), hl = strlen(path);
        int hit;
        if (pl > 0 && pat[pl - 1] == '$') {
            pl--;
            hit = hl >= pl && memcmp(path + hl - pl, pat, pl) == 0;
        } else {
            hit = strstr(path, pat) != NULL;
        }
        if (hit)
            err = strcmp(rerr, "ENOSPC") == 0 ? ENOSPC : EIO;
    }
    if (err) {
        char hits[4200], entry[4200];
        snprintf(hits, sizeof hits, "%s.hits", ctl);
        int h = syscall(SYS_openat, AT_FDCWD, hits, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (h >= 0) {
            int len = snprintf(entry, sizeof entry, "%s %s\n", op, path);
            if (len > (int)sizeof entry - 1)
                len = sizeof entry - 1;
            syscall(SYS_write, h, entry, len);
            syscall(SYS_close, h);
        }
    }
    return err;
}

static long fail(int err)
{
    errno = err;
    return -1;
}

int fsync(int fd)
{
    int err = fault_for("fsync", fd);
    return err ? fail(err) : syscall(SYS_fsync, fd);
}

int fdatasync(int fd)
{
    int err = fault_for("fsync", fd);
    return err ? fail(err) : syscall(SYS_fdatasync, fd);
}

ssize_t write(int fd, const void *buf, size_t count)
{
    int err = fault_for("write", fd);
    return err ? fail(err) : syscall(SYS_write, fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset)
{
    int err = fault_for("write", fd);
    return err ? fail(err) : syscall(SYS_pwrite64, fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset)
{
    int err = fault_for("write", fd);
    return err ? fail(err) : syscall(SYS_pwrite64, fd, buf, count, offset);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    int err = fault_for("write", fd);
    return err ? fail(err) : syscall(SYS_writev, fd, iov, iovcnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset)
{
    int err = fault_for("write", fd);
    /* The kernel takes the offset as two longs (low, high). */
    return err ? fail(err)
               : syscall(SYS_pwritev, fd, iov, iovcnt, (long)offset, (long)((unsigned long long)offset >> 32));
}

int nanosleep(const struct timespec *req, struct timespec *rem)
{
    if (req && req->tv_sec == 0 && req->tv_nsec <= 1000000 && fault_for("sleep", -1) == -1)
        return 0;
    return syscall(SYS_nanosleep, req, rem);
}

int clock_nanosleep(clockid_t clock, int flags, const struct timespec *req, struct timespec *rem)
{
    if (flags == 0 && req && req->tv_sec == 0 && req->tv_nsec <= 1000000 &&
        fault_for("sleep", -1) == -1)
        return 0;
    long r = syscall(SYS_clock_nanosleep, clock, flags, req, rem);
    /* clock_nanosleep returns the error number rather than setting errno. */
    return r == -1 ? errno : 0;
}
