/* floor: the least any durable sendmail can do (issue 8).
 *
 * Reads the whole message from stdin, writes it to a new file with a unique
 * name in DIR (argv[1]), fsyncs the file and then the directory (so the new
 * name survives a power cut too), and exits 0. Every other argument (-t -i,
 * recipients) is ignored, so it can stand in for `sendmail -t -i` anywhere,
 * including PHP's sendmail_path. Built with gcc -O2 by bench/run.sh.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: floor DIR [ignored sendmail arguments]\n");
        return 64;
    }
    const char *dir = argv[1];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char path[4096];
    /* Unique: pid + nanoseconds; O_EXCL turns a clash into an error. */
    snprintf(path, sizeof path, "%s/%ld.%09ld.%d", dir, (long)ts.tv_sec, ts.tv_nsec, (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror("floor: open");
        return 73;
    }
    char buf[65536];
    for (;;) {
        ssize_t r = read(0, buf, sizeof buf);
        if (r == 0)
            break;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            perror("floor: read");
            return 74;
        }
        if (write_all(fd, buf, (size_t)r) < 0) {
            perror("floor: write");
            return 74;
        }
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        perror("floor: fsync");
        return 74;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0) {
        perror("floor: fsync dir");
        return 74;
    }
    close(dfd);
    return 0;
}
