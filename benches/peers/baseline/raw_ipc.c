/*
 * raw_ipc.c -- raw OS limits for inter-process messaging and locking.
 *
 * Measures, between fork()ed processes on one machine:
 *   throughput : pipe, AF_UNIX SOCK_STREAM, AF_UNIX SOCK_SEQPACKET, and a
 *                lock-free SPSC byte ring in MAP_SHARED memory (spin, then
 *                futex wait) -- for 8 B, 1 KiB and 64 KiB messages;
 *   latency    : ping-pong round trip (8 B) over pipe, unix stream, shm ring;
 *   locks      : flock(), robust process-shared pthread mutex, and a
 *                process-shared POSIX sem_t (what CPython's
 *                multiprocessing.Lock is built on) -- lock/unlock per second
 *                uncontended (1 process) and contended (2 and 4 processes
 *                each incrementing a shared counter under the lock; the final
 *                count is verified).
 *
 * Output: one JSON object per line on stdout (consumed by report.py).
 * Every measurement is repeated RUNS times; report.py takes the median.
 *
 * Build: gcc -O2 -std=gnu11 -pthread -o raw_ipc raw_ipc.c
 * Usage: ./raw_ipc [runs [all|throughput|latency|locks]]   (default: 5 all)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS 32
static int RUNS = 5;

/* ------------------------------------------------------------------ utils */

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* system-wide: comparable across processes */
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void) { __builtin_ia32_pause(); }

/* Pin the calling process to one CPU (returns 0 on success). */
static int pin_to_cpu(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
}

/* Anonymous shared memory, inherited across fork(). */
static void *shm_alloc(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("mmap");
    memset(p, 0, n);
    return p;
}

static void wait_child(pid_t pid)
{
    int st;
    if (waitpid(pid, &st, 0) < 0)
        die("waitpid");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "child %d failed (status %d)\n", pid, st);
        exit(3);
    }
}

static void write_full(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t r = write(fd, p, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die("write");
        }
        p += r;
        n -= (size_t)r;
    }
}

static void read_full(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die("read");
        }
        if (r == 0) {
            fprintf(stderr, "unexpected EOF\n");
            exit(2);
        }
        p += r;
        n -= (size_t)r;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void print_values(const char *key, const double *v, int n)
{
    printf("\"%s\":[", key);
    for (int i = 0; i < n; i++)
        printf("%s%.6g", i ? "," : "", v[i]);
    printf("]");
}

/* Control block shared between parent and child of one measurement. */
struct ctl {
    _Atomic int ready;     /* child is set up and waiting */
    _Atomic uint64_t t_end; /* child's timestamp after the last message */
    _Atomic int bad;        /* child saw a corrupted / out-of-order message */
};

/* ------------------------------------------------ futex + SPSC shm ring */

static long futex(_Atomic uint32_t *addr, int op, uint32_t val)
{
    /* Non-private futex ops: the word lives in memory shared between processes. */
    return syscall(SYS_futex, (uint32_t *)addr, op, val, NULL, NULL, 0);
}

/*
 * Single-producer / single-consumer byte ring in shared memory.
 * Records are [u32 len][u32 pad][payload], padded to 8 bytes and stored
 * contiguously; a record that would straddle the end is preceded by a SKIP
 * marker and written at offset 0.  Positions are free-running u32 byte
 * counters (capacity is a power of two <= 2^31, so unsigned wrap-around
 * arithmetic works).
 *
 * Blocking: spin SPIN polls, then set my "waiting" flag (seq_cst store),
 * re-check, and FUTEX_WAIT on the flag itself while it is still 1.  The
 * other side publishes its position with a seq_cst store, then checks the
 * flag (Dekker-style: one of the two sees the other's store) and, if set,
 * clears it with an atomic exchange and issues FUTEX_WAKE.  Sleeping on the
 * flag (not on the position) matters: a stale wake that clears the flag
 * between the sleeper's re-check and its FUTEX_WAIT makes the wait return
 * at once instead of losing the wake-up; and the exchange means one
 * FUTEX_WAKE per sleep, not one per message sent while the sleeper wakes.
 */
#define RING_SKIP 0xFFFFFFFFu
#define SPIN 256 /* polls before sleeping; PAUSE is ~26 ns on this Zen 4 => ~7 us */

struct ring {
    _Alignas(64) _Atomic uint32_t tail; /* bytes written by producer */
    _Atomic uint32_t cons_waiting;      /* futex word: consumer sleeps on it */
    _Alignas(64) _Atomic uint32_t head; /* bytes consumed by consumer */
    _Atomic uint32_t prod_waiting;      /* futex word: producer sleeps on it */
    _Alignas(64) uint32_t cap;          /* data capacity in bytes (power of 2) */
    _Alignas(64) unsigned char data[];
};

struct ring_end {        /* process-local view with cached remote position */
    struct ring *r;
    uint32_t pos;        /* own position (tail for producer, head for consumer) */
    uint32_t other;      /* cached copy of the other side's position */
};

static struct ring *ring_create(uint32_t cap)
{
    struct ring *r = shm_alloc(sizeof(struct ring) + cap);
    r->cap = cap;
    return r;
}

static inline uint32_t rec_size(uint32_t len) { return (8 + len + 7) & ~7u; }

static void ring_send(struct ring_end *e, const void *msg, uint32_t len)
{
    struct ring *r = e->r;
    uint32_t cap = r->cap, rec = rec_size(len);
    uint32_t off = e->pos & (cap - 1), contig = cap - off;
    uint32_t need = rec <= contig ? rec : contig + rec;

    /* Wait for free space (reload the consumer's head only when needed). */
    if (cap - (e->pos - e->other) < need) {
        for (int i = 0;; i++) {
            e->other = atomic_load_explicit(&r->head, memory_order_acquire);
            if (cap - (e->pos - e->other) >= need)
                break;
            if (i < SPIN) {
                cpu_relax();
                continue;
            }
            atomic_store(&r->prod_waiting, 1);
            uint32_t h = atomic_load(&r->head);
            if (cap - (e->pos - h) < need)
                futex(&r->prod_waiting, FUTEX_WAIT, 1);
            atomic_store_explicit(&r->prod_waiting, 0, memory_order_relaxed);
        }
    }
    if (rec > contig) { /* wrap: mark the tail end as skipped */
        *(uint32_t *)(r->data + off) = RING_SKIP;
        e->pos += contig;
        off = 0;
    }
    *(uint32_t *)(r->data + off) = len;
    memcpy(r->data + off + 8, msg, len);
    e->pos += rec;
    atomic_store(&r->tail, e->pos); /* seq_cst: publish, then check waiter */
    if (atomic_load(&r->cons_waiting) && atomic_exchange(&r->cons_waiting, 0))
        futex(&r->cons_waiting, FUTEX_WAKE, 1);
}

static uint32_t ring_recv(struct ring_end *e, void *buf)
{
    struct ring *r = e->r;
    for (;;) {
        if (e->other == e->pos) { /* looks empty: reload the producer's tail */
            for (int i = 0;; i++) {
                e->other = atomic_load_explicit(&r->tail, memory_order_acquire);
                if (e->other != e->pos)
                    break;
                if (i < SPIN) {
                    cpu_relax();
                    continue;
                }
                atomic_store(&r->cons_waiting, 1);
                if (atomic_load(&r->tail) == e->pos)
                    futex(&r->cons_waiting, FUTEX_WAIT, 1);
                atomic_store_explicit(&r->cons_waiting, 0, memory_order_relaxed);
            }
        }
        uint32_t off = e->pos & (r->cap - 1);
        uint32_t len = *(uint32_t *)(r->data + off);
        if (len == RING_SKIP) {
            e->pos += r->cap - off;
            continue;
        }
        memcpy(buf, r->data + off + 8, len);
        e->pos += rec_size(len);
        atomic_store(&r->head, e->pos); /* seq_cst: free the space, then check waiter */
        if (atomic_load(&r->prod_waiting) && atomic_exchange(&r->prod_waiting, 0))
            futex(&r->prod_waiting, FUTEX_WAKE, 1);
        return len;
    }
}

/* ------------------------------------------------------ throughput tests */

enum transport { T_PIPE, T_STREAM, T_SEQPACKET, T_SHMRING };
static const char *tname[] = {"pipe", "unix_stream", "unix_seqpacket", "shm_spsc_ring"};

#define RING_CAP (1u << 20) /* 1 MiB ring (the default pipe holds 64 KiB) */

/* One run: child consumes `count` messages of `size` bytes; returns msg/s.
 * pin: producer on CPU 0, consumer on CPU 1 (otherwise the scheduler decides,
 * and on 2 vCPUs it often puts both on one CPU after a futex/pipe wake-up). */
static double throughput_run(enum transport t, size_t size, long count, int pin)
{
    cpu_set_t saved;
    sched_getaffinity(0, sizeof saved, &saved);
    int fds[2] = {-1, -1};
    struct ring *ring = NULL;
    if (t == T_PIPE) {
        if (pipe(fds) < 0)
            die("pipe");
    } else if (t == T_STREAM) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0)
            die("socketpair");
    } else if (t == T_SEQPACKET) {
        if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fds) < 0)
            die("socketpair");
    } else {
        ring = ring_create(RING_CAP);
    }
    struct ctl *c = shm_alloc(sizeof *c);
    char *buf = malloc(size);
    memset(buf, 'x', size);

    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) { /* consumer */
        if (pin && pin_to_cpu(1))
            die("sched_setaffinity");
        int rfd = (t == T_PIPE) ? fds[0] : fds[1];
        struct ring_end e = {ring, 0, 0};
        atomic_store(&c->ready, 1);
        for (long i = 0; i < count; i++) {
            if (t == T_PIPE || t == T_STREAM) {
                read_full(rfd, buf, size); /* fixed-size framing */
            } else if (t == T_SEQPACKET) {
                ssize_t r = read(rfd, buf, size);
                if (r != (ssize_t)size)
                    die("seqpacket read");
            } else if (ring_recv(&e, buf) != size) {
                atomic_store(&c->bad, 1);
            }
            long seq;
            memcpy(&seq, buf, sizeof seq); /* verify ordering/integrity */
            if (seq != i)
                atomic_store(&c->bad, 1);
        }
        atomic_store(&c->t_end, now_ns());
        _exit(0);
    }
    /* producer */
    if (pin && pin_to_cpu(0))
        die("sched_setaffinity");
    int wfd = (t == T_PIPE) ? fds[1] : fds[0];
    struct ring_end e = {ring, 0, 0};
    while (!atomic_load(&c->ready))
        cpu_relax();
    uint64_t t0 = now_ns();
    for (long i = 0; i < count; i++) {
        memcpy(buf, &i, sizeof i);
        if (t == T_SHMRING)
            ring_send(&e, buf, (uint32_t)size);
        else
            write_full(wfd, buf, size);
    }
    wait_child(pid);
    sched_setaffinity(0, sizeof saved, &saved);
    double secs = (atomic_load(&c->t_end) - t0) / 1e9;
    if (atomic_load(&c->bad)) {
        fprintf(stderr, "%s: data verification failed\n", tname[t]);
        exit(4);
    }
    if (fds[0] >= 0) {
        close(fds[0]);
        close(fds[1]);
    }
    if (ring)
        munmap(ring, sizeof(struct ring) + RING_CAP);
    munmap(c, sizeof *c);
    free(buf);
    return count / secs;
}

static void bench_throughput(void)
{
    static const size_t sizes[] = {8, 1024, 65536};
    /* t = 0..3: the four transports unpinned; t = 4: the shm ring pinned. */
    for (int tt = 0; tt < 5; tt++)
        for (int s = 0; s < 3; s++) {
            enum transport t = tt < 4 ? (enum transport)tt : T_SHMRING;
            int pin = tt == 4;
            size_t size = sizes[s];
            /* Bounded work (~0.1-1 s per run): 500k small messages,
             * 20k x 64 KiB = 1.3 GB for big ones. */
            long count = size == 65536 ? 20000 : 500000;
            if (t == T_SHMRING && size == 8)
                count = 5000000; /* the ring is far faster; use more messages */
            double v[MAX_RUNS];
            throughput_run(t, size, count / 10, pin); /* warm-up */
            for (int r = 0; r < RUNS; r++)
                v[r] = throughput_run(t, size, count, pin);
            printf("{\"group\":\"raw_throughput\",\"bench\":\"%s%s\",\"size\":%zu,"
                   "\"count\":%ld,\"unit\":\"msg/s\",",
                   tname[t], pin ? " (pinned)" : "", size, count);
            print_values("values", v, RUNS);
            printf("}\n");
            fflush(stdout);
        }
}

/* ------------------------------------------------------- latency tests */

/* Ping-pong of 8-byte messages; parent records each round trip. */
static void latency_run(enum transport t, long iters, int pin, double *med_us, double *p99_us)
{
    cpu_set_t saved;
    sched_getaffinity(0, sizeof saved, &saved);
    const size_t size = 8;
    int a[2], b[2];                /* a: parent->child, b: child->parent */
    struct ring *r1 = NULL, *r2 = NULL;
    if (t == T_PIPE) {
        if (pipe(a) < 0 || pipe(b) < 0)
            die("pipe");
    } else if (t == T_STREAM) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, a) < 0)
            die("socketpair");
        b[0] = a[0]; /* full duplex: parent uses a[0], child a[1] */
        b[1] = a[1];
    } else {
        r1 = ring_create(1u << 16);
        r2 = ring_create(1u << 16);
    }
    long warm = iters / 10;
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    char buf[8] = {0};
    if (pid == 0) { /* echo server */
        if (pin && pin_to_cpu(1))
            die("sched_setaffinity");
        struct ring_end rx = {r1, 0, 0}, tx = {r2, 0, 0};
        for (long i = 0; i < iters + warm; i++) {
            if (t == T_PIPE) {
                read_full(a[0], buf, size);
                write_full(b[1], buf, size);
            } else if (t == T_STREAM) {
                read_full(a[1], buf, size);
                write_full(a[1], buf, size);
            } else {
                ring_recv(&rx, buf);
                ring_send(&tx, buf, size);
            }
        }
        _exit(0);
    }
    if (pin && pin_to_cpu(0))
        die("sched_setaffinity");
    struct ring_end tx = {r1, 0, 0}, rx = {r2, 0, 0};
    uint64_t *lat = malloc(sizeof(uint64_t) * iters);
    for (long i = 0; i < iters + warm; i++) {
        uint64_t t0 = now_ns();
        if (t == T_PIPE) {
            write_full(a[1], buf, size);
            read_full(b[0], buf, size);
        } else if (t == T_STREAM) {
            write_full(a[0], buf, size);
            read_full(a[0], buf, size);
        } else {
            ring_send(&tx, buf, size);
            ring_recv(&rx, buf);
        }
        if (i >= warm)
            lat[i - warm] = now_ns() - t0;
    }
    wait_child(pid);
    sched_setaffinity(0, sizeof saved, &saved);
    qsort(lat, iters, sizeof *lat, cmp_u64);
    *med_us = lat[iters / 2] / 1e3;
    *p99_us = lat[(long)(iters * 0.99)] / 1e3;
    free(lat);
    if (t == T_PIPE) {
        close(a[0]); close(a[1]); close(b[0]); close(b[1]);
    } else if (t == T_STREAM) {
        close(a[0]); close(a[1]);
    } else {
        munmap(r1, sizeof(struct ring) + (1u << 16));
        munmap(r2, sizeof(struct ring) + (1u << 16));
    }
}

static void bench_latency(void)
{
    enum transport ts[] = {T_PIPE, T_STREAM, T_SHMRING, T_SHMRING};
    for (int k = 0; k < 4; k++) {
        long iters = 20000; /* 20,000 round trips keep one round of run.sh short */
        int pin = k == 3;
        double med[MAX_RUNS], p99[MAX_RUNS];
        for (int r = 0; r < RUNS; r++)
            latency_run(ts[k], iters, pin, &med[r], &p99[r]);
        printf("{\"group\":\"raw_latency\",\"bench\":\"%s%s\",\"size\":8,\"count\":%ld,"
               "\"unit\":\"us\",",
               tname[ts[k]], pin ? " (pinned)" : "", iters);
        print_values("median", med, RUNS);
        printf(",");
        print_values("p99", p99, RUNS);
        printf("}\n");
        fflush(stdout);
    }
}

/* ----------------------------------------------------------- lock tests */

enum lockkind { L_FLOCK, L_PMUTEX, L_SEM };
static const char *lname[] = {"flock", "pthread_mutex_pshared_robust", "sem_t_pshared"};

struct lockshm {
    pthread_mutex_t mtx;
    sem_t sem;
    _Atomic int ready;
    _Atomic int go;
    long counter; /* protected by the lock under test (plain, non-atomic) */
    _Atomic long done[16];     /* acquisitions so far, per process (every 64) */
    _Atomic int first_done;    /* set by the first process to finish */
    long snap[16];             /* done[] when the first process finished */
    _Atomic uint64_t longest[16]; /* longest batch of 64 acquisitions, ns */
};

/* Fairness of the last lock_run: the smallest process's share of the
 * acquisitions made while all were running, and the longest wait (the
 * longest batch of 64 acquisitions of any process), in ms. */
static double last_min_share, last_longest_ms;

static char lockfile[] = "/tmp/raw_ipc_flock_XXXXXX";

static inline void do_lock(enum lockkind k, struct lockshm *s, int fd)
{
    if (k == L_FLOCK) {
        while (flock(fd, LOCK_EX) < 0)
            if (errno != EINTR)
                die("flock");
    } else if (k == L_PMUTEX) {
        int rc = pthread_mutex_lock(&s->mtx);
        if (rc == EOWNERDEAD) /* robust: previous owner died; repair state */
            pthread_mutex_consistent(&s->mtx);
        else if (rc)
            die("pthread_mutex_lock");
    } else {
        while (sem_wait(&s->sem) < 0)
            if (errno != EINTR)
                die("sem_wait");
    }
}

static inline void do_unlock(enum lockkind k, struct lockshm *s, int fd)
{
    if (k == L_FLOCK)
        flock(fd, LOCK_UN);
    else if (k == L_PMUTEX)
        pthread_mutex_unlock(&s->mtx);
    else
        sem_post(&s->sem);
}

/*
 * `procs` processes each perform `iters` x (lock; counter++; unlock).
 * Returns total lock/unlock pairs per second; exits if the count is wrong.
 */
static double lock_run(enum lockkind k, int procs, long iters)
{
    struct lockshm *s = shm_alloc(sizeof *s);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&s->mtx, &ma);
    pthread_mutexattr_destroy(&ma);
    sem_init(&s->sem, 1 /* pshared */, 1);

    pid_t pids[16];
    for (int p = 0; p < procs; p++) {
        pids[p] = fork();
        if (pids[p] < 0)
            die("fork");
        if (pids[p] == 0) {
            /* flock locks belong to the open file description, so each
             * process must open() the file itself to contend properly. */
            int fd = k == L_FLOCK ? open(lockfile, O_RDWR) : -1;
            if (k == L_FLOCK && fd < 0)
                die("open lockfile");
            atomic_fetch_add(&s->ready, 1);
            while (!atomic_load(&s->go))
                cpu_relax();
            uint64_t batch = now_ns(), longest = 0;
            for (long i = 0; i < iters; i++) {
                do_lock(k, s, fd);
                s->counter++;
                do_unlock(k, s, fd);
                if ((i & 63) == 63) {
                    uint64_t t = now_ns();
                    if (t - batch > longest)
                        longest = t - batch;
                    batch = t;
                    atomic_store_explicit(&s->done[p], i + 1, memory_order_relaxed);
                }
            }
            atomic_store(&s->longest[p], longest);
            if (atomic_exchange(&s->first_done, 1) == 0)
                for (int q = 0; q < procs; q++)
                    s->snap[q] = atomic_load(&s->done[q]);
            _exit(0);
        }
    }
    while (atomic_load(&s->ready) < procs)
        cpu_relax();
    uint64_t t0 = now_ns();
    atomic_store(&s->go, 1);
    for (int p = 0; p < procs; p++)
        wait_child(pids[p]);
    double secs = (now_ns() - t0) / 1e9;
    if (s->counter != (long)procs * iters) {
        fprintf(stderr, "%s: counter %ld != %ld\n", lname[k], s->counter, (long)procs * iters);
        exit(5);
    }
    long sum = 0, least = -1;
    uint64_t longest = 0;
    for (int p = 0; p < procs; p++) {
        sum += s->snap[p];
        if (least < 0 || s->snap[p] < least)
            least = s->snap[p];
        if (s->longest[p] > longest)
            longest = s->longest[p];
    }
    last_min_share = sum > 0 ? (double)least / sum : 0;
    last_longest_ms = longest / 1e6;
    pthread_mutex_destroy(&s->mtx);
    sem_destroy(&s->sem);
    munmap(s, sizeof *s);
    return procs * iters / secs;
}

static void bench_locks(void)
{
    int fd = mkstemp(lockfile);
    if (fd < 0)
        die("mkstemp");
    close(fd);
    static const int nprocs[] = {1, 2, 4};
    for (int k = 0; k < 3; k++)
        for (int n = 0; n < 3; n++) {
            int procs = nprocs[n];
            /* flock is a syscall pair per op; contended it sleeps/wakes. */
            long iters = k == L_FLOCK ? 200000 : 2000000;
            double v[MAX_RUNS], share[MAX_RUNS], longest[MAX_RUNS];
            for (int r = 0; r < RUNS; r++) {
                v[r] = lock_run(k, procs, iters);
                share[r] = last_min_share;
                longest[r] = last_longest_ms;
            }
            printf("{\"group\":\"raw_lock\",\"bench\":\"%s\",\"procs\":%d,"
                   "\"ops_per_proc\":%ld,\"unit\":\"ops/s\",\"verified\":true,",
                   lname[k], procs, iters);
            print_values("values", v, RUNS);
            printf(",");
            print_values("min_share", share, RUNS);
            printf(",");
            print_values("longest_wait_ms", longest, RUNS);
            printf("}\n");
            fflush(stdout);
        }
    unlink(lockfile);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        RUNS = atoi(argv[1]);
    if (RUNS < 1 || RUNS > MAX_RUNS)
        RUNS = 5;
    const char *only = argc > 2 ? argv[2] : "all";
    if (!strcmp(only, "all") || !strcmp(only, "throughput"))
        bench_throughput();
    if (!strcmp(only, "all") || !strcmp(only, "latency"))
        bench_latency();
    if (!strcmp(only, "all") || !strcmp(only, "locks"))
        bench_locks();
    return 0;
}
