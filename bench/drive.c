/* drive: the benchmark's process driver (bench/run.sh). No shell in the loop:
 * every run is a posix_spawn of the command with stdin opened on a message
 * file, and the clock runs from just before the spawn to the moment that
 * matters. Deliveries are seen at Postfix's smtp-sink through inotify on its
 * dump directory (`smtp-sink -d DIR/m.`): one IN_CLOSE_WRITE per message.
 *
 *   drive once RUNS WARMUP MSG -- CMD...
 *       spawn-to-exit time of CMD with stdin = MSG, RUNS times after WARMUP.
 *   drive latency RUNS MSG SINKDIR -- CMD...
 *       spawn-to-arrival time of one message at the sink, RUNS times.
 *   drive ab RUNS WARMUP MSG -- CMD1... ::: CMD2... [::: CMD3...]
 *       as `once` for several commands, alternating run by run, so that a
 *       change in background load hits each alike (A/B of builds); one
 *       result line per command, in order.
 *   drive burst PRODUCERS PER MSG SINKDIR|- EXPECT TIMEOUT_S -- CMD...
 *       PRODUCERS concurrent loops of PER sequential runs each; prints the
 *       accepted rate (all producers done) and the delivered rate (EXPECT
 *       arrivals at the sink, counted from the same start).
 *
 * Output is one line of key=value pairs (times in ms) for run.sh to parse;
 * with DRIVE_RAW=FILE set, `once` and `latency` also append every sample to
 * FILE, one per line. With DRIVE_AS=UID:GID set (and run as root), the driver
 * opens DRIVE_RAW, then drops to that user (no supplementary groups) before
 * anything else, so every CMD runs as an unprivileged caller would run it:
 * a set-id program (dma, nullmailer-queue) then really switches ids, as
 * under PHP. MSG and SINKDIR must be readable by that user.
 * A failing CMD (exit status not 0) aborts `once` and `latency` with 2 and
 * is counted in `burst`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static pid_t spawn(char **cmd, const char *msg) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, msg, O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int e = posix_spawn(&pid, cmd[0], &fa, NULL, cmd, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e != 0) {
        fprintf(stderr, "drive: cannot run %s: %s\n", cmd[0], strerror(e));
        exit(2);
    }
    return pid;
}

/* Run CMD once to completion; returns its wait status. */
static int run_one(char **cmd, const char *msg) {
    pid_t pid = spawn(cmd, msg);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) {
            perror("drive: waitpid");
            exit(2);
        }
    return st;
}

static int ok(int st) { return WIFEXITED(st) && WEXITSTATUS(st) == 0; }

static void fail_status(char **cmd, int st) {
    if (WIFEXITED(st))
        fprintf(stderr, "drive: %s exited %d\n", cmd[0], WEXITSTATUS(st));
    else
        fprintf(stderr, "drive: %s killed by signal %d\n", cmd[0], WTERMSIG(st));
    exit(2);
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* DRIVE_RAW=FILE, opened in main (before DRIVE_AS drops privileges). */
static FILE *raw_file;

static void print_stats(double *t, int n) {
    /* Also append every sample, so run.sh can pool rounds. */
    if (raw_file) {
        for (int i = 0; i < n; i++)
            fprintf(raw_file, "%.3f\n", t[i]);
        fflush(raw_file);
    }
    qsort(t, n, sizeof *t, cmp);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += t[i];
    double med = n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
    int i95 = (int)(0.95 * n + 0.999999) - 1;
    if (i95 < 0)
        i95 = 0;
    printf("runs=%d median=%.3f p95=%.3f mean=%.3f min=%.3f max=%.3f\n", n, med, t[i95], sum / n,
           t[0], t[n - 1]);
}

static int watch(const char *dir) {
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0 || inotify_add_watch(fd, dir, IN_CLOSE_WRITE) < 0) {
        perror("drive: inotify");
        exit(2);
    }
    return fd;
}

/* Count the IN_CLOSE_WRITE events waiting on fd. */
static long drain(int fd) {
    char buf[65536] __attribute__((aligned(__alignof__(struct inotify_event))));
    long n = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0)
            return n;
        for (char *p = buf; p < buf + r;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if (ev->mask & IN_CLOSE_WRITE)
                n++;
            if (ev->mask & IN_Q_OVERFLOW) {
                fprintf(stderr, "drive: inotify queue overflow\n");
                exit(2);
            }
            p += sizeof *ev + ev->len;
        }
    }
}

static int pidfd(pid_t pid) {
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) {
        perror("drive: pidfd_open");
        exit(2);
    }
    return fd;
}

static char **after_dashes(int argc, char **argv, int at) {
    if (at >= argc || strcmp(argv[at], "--") != 0 || at + 1 >= argc) {
        fprintf(stderr, "drive: expected -- CMD...\n");
        exit(64);
    }
    return argv + at + 1;
}

static int once(int argc, char **argv) {
    if (argc < 6)
        return 64;
    int runs = atoi(argv[2]), warm = atoi(argv[3]);
    const char *msg = argv[4];
    char **cmd = after_dashes(argc, argv, 5);
    for (int i = 0; i < warm; i++) {
        int st = run_one(cmd, msg);
        if (!ok(st))
            fail_status(cmd, st);
    }
    double *t = calloc(runs, sizeof *t);
    for (int i = 0; i < runs; i++) {
        double t0 = now_ms();
        int st = run_one(cmd, msg);
        t[i] = now_ms() - t0;
        if (!ok(st))
            fail_status(cmd, st);
    }
    print_stats(t, runs);
    return 0;
}

static int ab(int argc, char **argv) {
    if (argc < 6)
        return 64;
    int runs = atoi(argv[2]), warm = atoi(argv[3]);
    const char *msg = argv[4];
    char **all = after_dashes(argc, argv, 5);
    char **cmds[16];
    int n = 0;
    cmds[n++] = all;
    for (char **a = all; *a; a++)
        if (strcmp(*a, ":::") == 0) {
            *a = NULL;
            if (n == 16 || !a[1])
                return 64;
            cmds[n++] = a + 1;
        }
    double *t[16];
    for (int c = 0; c < n; c++) {
        t[c] = calloc(runs, sizeof(double));
        for (int i = 0; i < warm; i++) {
            int st = run_one(cmds[c], msg);
            if (!ok(st))
                fail_status(cmds[c], st);
        }
    }
    for (int i = 0; i < runs; i++)
        for (int c = 0; c < n; c++) {
            double t0 = now_ms();
            int st = run_one(cmds[c], msg);
            t[c][i] = now_ms() - t0;
            if (!ok(st))
                fail_status(cmds[c], st);
        }
    for (int c = 0; c < n; c++)
        print_stats(t[c], runs);
    return 0;
}

static int latency(int argc, char **argv) {
    if (argc < 6)
        return 64;
    int runs = atoi(argv[2]);
    const char *msg = argv[3], *dir = argv[4];
    char **cmd = after_dashes(argc, argv, 5);
    int in = watch(dir);
    double *t = calloc(runs, sizeof *t);
    for (int i = 0; i < runs; i++) {
        usleep(20000); /* let the previous delivery's stragglers settle */
        drain(in);
        double t0 = now_ms();
        pid_t pid = spawn(cmd, msg);
        int pfd = pidfd(pid);
        int exited = 0;
        long arrived = 0;
        double t_arrival = 0;
        while (!exited || !arrived) {
            struct pollfd p[2] = {{in, POLLIN, 0}, {pfd, POLLIN, 0}};
            int r = poll(p, exited ? 1 : 2, 10000);
            if (r == 0) {
                fprintf(stderr, "drive: no arrival at the sink within 10 s\n");
                return 2;
            }
            if (p[0].revents & POLLIN && !arrived) {
                arrived = drain(in);
                if (arrived)
                    t_arrival = now_ms();
            }
            if (!exited && p[1].revents & POLLIN) {
                int st;
                waitpid(pid, &st, 0);
                if (!ok(st))
                    fail_status(cmd, st);
                exited = 1;
                close(pfd);
            }
        }
        t[i] = t_arrival - t0;
    }
    print_stats(t, runs);
    return 0;
}

static int burst(int argc, char **argv) {
    if (argc < 9)
        return 64;
    int producers = atoi(argv[2]), per = atoi(argv[3]);
    const char *msg = argv[4], *dir = argv[5];
    long expect = atol(argv[6]);
    double timeout = atof(argv[7]) * 1e3;
    char **cmd = after_dashes(argc, argv, 8);
    int deliveries = strcmp(dir, "-") != 0;
    int in = deliveries ? watch(dir) : -1;
    if (deliveries)
        drain(in);
    int pfds[64];
    pid_t pids[64];
    if (producers < 1 || producers > 64)
        return 64;
    double t0 = now_ms();
    for (int p = 0; p < producers; p++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("drive: fork");
            return 2;
        }
        if (pid == 0) {
            int failures = 0;
            for (int i = 0; i < per; i++)
                if (!ok(run_one(cmd, msg)))
                    failures++;
            _exit(failures > 250 ? 250 : failures);
        }
        pids[p] = pid;
        pfds[p] = pidfd(pid);
    }
    int running = producers, failures = 0;
    long arrived = 0;
    double t_accept = 0, t_deliver = 0;
    while (running > 0 || (deliveries && arrived < expect)) {
        struct pollfd p[65];
        int n = 0;
        if (deliveries && arrived < expect)
            p[n++] = (struct pollfd){in, POLLIN, 0};
        for (int i = 0; i < producers; i++)
            if (pfds[i] >= 0)
                p[n++] = (struct pollfd){pfds[i], POLLIN, 0};
        double left = timeout - (now_ms() - t0);
        if (left <= 0) {
            fprintf(stderr, "drive: timeout: %d producers running, %ld/%ld arrived\n", running,
                    arrived, expect);
            break;
        }
        poll(p, n, (int)left + 1);
        double t = now_ms();
        if (deliveries && arrived < expect) {
            arrived += drain(in);
            if (arrived >= expect)
                t_deliver = t;
        }
        for (int i = 0; i < producers; i++) {
            if (pfds[i] < 0)
                continue;
            int st;
            if (waitpid(pids[i], &st, WNOHANG) == pids[i]) {
                failures += WIFEXITED(st) ? WEXITSTATUS(st) : per;
                close(pfds[i]);
                pfds[i] = -1;
                if (--running == 0)
                    t_accept = t;
            }
        }
    }
    long total = (long)producers * per;
    printf("messages=%ld failures=%d accept_s=%.3f accepted_per_s=%.1f", total, failures,
           (t_accept - t0) / 1e3, t_accept > 0 ? total / ((t_accept - t0) / 1e3) : 0);
    if (deliveries)
        printf(" arrived=%ld deliver_s=%.3f delivered_per_s=%.1f", arrived, (t_deliver - t0) / 1e3,
               t_deliver > 0 ? expect / ((t_deliver - t0) / 1e3) : 0);
    printf("\n");
    return failures || (deliveries && arrived < expect) ? 1 : 0;
}

/* DRIVE_AS=UID:GID: become that user for good (groups, gid, then uid). */
static void drop_privileges(const char *as) {
    unsigned uid, gid;
    char end;
    if (sscanf(as, "%u:%u%c", &uid, &gid, &end) != 2) {
        fprintf(stderr, "drive: DRIVE_AS must be UID:GID, not %s\n", as);
        exit(64);
    }
    if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
        perror("drive: DRIVE_AS");
        exit(2);
    }
    if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid) {
        fprintf(stderr, "drive: DRIVE_AS: ids did not change\n");
        exit(2);
    }
}

int main(int argc, char **argv) {
    int r = 64;
    const char *raw = getenv("DRIVE_RAW"), *as = getenv("DRIVE_AS");
    if (raw && *raw && !(raw_file = fopen(raw, "a"))) {
        perror("drive: DRIVE_RAW");
        return 2;
    }
    if (as && *as)
        drop_privileges(as);
    if (argc > 1 && strcmp(argv[1], "once") == 0)
        r = once(argc, argv);
    else if (argc > 1 && strcmp(argv[1], "ab") == 0)
        r = ab(argc, argv);
    else if (argc > 1 && strcmp(argv[1], "latency") == 0)
        r = latency(argc, argv);
    else if (argc > 1 && strcmp(argv[1], "burst") == 0)
        r = burst(argc, argv);
    if (r == 64)
        fprintf(stderr, "usage: drive once|ab|latency|burst ... -- CMD... (see bench/drive.c)\n");
    return r;
}
