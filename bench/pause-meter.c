/*
 * pause-meter.c - how still the machine stood during `tools/carebot bench`.
 *
 * One thread per online CPU, pinned to it and run at the lowest real-time
 * priority (SCHED_FIFO 1), sleeps TICK_MS at a time and notes every wake-up
 * that came the threshold or more late (a pause of P ms makes a wake-up
 * between P - TICK_MS and P late). No ordinary process can keep such a
 * thread from its CPU, so a late wake-up means the CPU itself did not run:
 * interrupts, the kernel, or, on a virtual machine, the host not running the
 * virtual CPU. When every CPU is late over the same span, the whole machine
 * stood still, and every request in flight waited with it, whatever it was.
 * The bench sets each workload's slowest requests beside these spans.
 *
 *   pause-meter [--threshold-ms MS]
 *
 * With --fsync-file PATH, one more thread overwrites 4 KiB of PATH and
 * fdatasyncs it every 10 ms, and notes every fdatasync that took the
 * threshold or longer: a durable commit (MariaDB's, at
 * innodb_flush_log_at_trx_commit=1) waits for the same disk, so a slow one
 * there holds every commit in flight. PATH is removed at the end.
 *
 *   pause-meter [--threshold-ms MS] [--fsync-file PATH]
 *
 * Runs until SIGTERM or SIGINT, then prints one JSON object:
 * {"realtime": true|false, "cpus": N, "threshold_ms": MS, "sleeps": N,
 *  "pauses": [[cpu, start, ms], ...], "fsyncs": N, "slow_fsyncs": [[start, ms], ...]}
 * with start in seconds since the epoch.
 * Without the privilege for SCHED_FIFO it still runs, as an ordinary thread
 * ("realtime": false), and then also counts waits for other processes.
 *
 * Built by the bench script: cc -O2 -pthread -o pause-meter pause-meter.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_CPUS 256
/*
 * The meter's own cost: every wake-up preempts whatever ran on its CPU. At
 * 1 ms, b ran a few per cent slower with the meter on; at 5 ms a pause of
 * 10 ms or more is always seen, and the bench asks about far longer ones.
 */
#define TICK_MS 5
#define MAX_PAUSES 100000 /* per CPU */

struct pause {
	double start; /* seconds since the epoch */
	double ms;
};

struct meter {
	pthread_t tid;
	int cpu; /* -1: the disk probe */
	int fd;
	double threshold;
	int realtime;
	long sleeps; /* wake-ups, or fsyncs of the disk probe */
	struct pause *pauses;
	size_t n;
};

static atomic_int stopping;

static double
clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
note(struct meter *m, double late)
{
	if (late >= m->threshold && m->n < MAX_PAUSES) {
		/* The pause ended now; it began late seconds ago. */
		m->pauses[m->n].start = clock_s(CLOCK_REALTIME) - late;
		m->pauses[m->n].ms = late * 1e3;
		m->n++;
	}
}

static void *
probe_disk(void *arg)
{
	struct meter *m = arg;
	const struct timespec gap = {0, 10000000};
	static char block[4096];

	while (!stopping) {
		double before = clock_s(CLOCK_MONOTONIC);

		if (pwrite(m->fd, block, sizeof block, 0) != (ssize_t)sizeof block ||
		    fdatasync(m->fd) != 0) {
			perror("pause-meter: fsync probe");
			break;
		}
		m->sleeps++;
		note(m, clock_s(CLOCK_MONOTONIC) - before);
		nanosleep(&gap, NULL);
	}
	return NULL;
}

static void *
measure(void *arg)
{
	struct meter *m = arg;
	const struct timespec tick = {0, TICK_MS * 1000000L};
	struct sched_param sp = {.sched_priority = 1};
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(m->cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof set, &set);
	m->realtime = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0;
	while (!stopping) {
		double before = clock_s(CLOCK_MONOTONIC), late;

		nanosleep(&tick, NULL);
		late = clock_s(CLOCK_MONOTONIC) - before - TICK_MS / 1e3;
		m->sleeps++;
		note(m, late);
	}
	return NULL;
}

static int
start(struct meter *m, int cpu, double threshold_ms, void *(*run)(void *))
{
	m->cpu = cpu;
	m->threshold = threshold_ms / 1e3;
	m->pauses = malloc(MAX_PAUSES * sizeof *m->pauses);
	return m->pauses != NULL && pthread_create(&m->tid, NULL, run, m) == 0;
}

static void
print_pauses(const struct meter *m, int with_cpu, int *first)
{
	for (size_t i = 0; i < m->n; i++, *first = 0) {
		printf("%s[", *first ? "" : ", ");
		if (with_cpu)
			printf("%d, ", m->cpu);
		printf("%.6f, %.3f]", m->pauses[i].start, m->pauses[i].ms);
	}
}

int
main(int argc, char **argv)
{
	static struct meter meters[MAX_CPUS], disk = {.fd = -1};
	const char *fsync_file = NULL;
	double threshold_ms = 5;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN), sleeps = 0;
	int realtime = 1, sig, first;
	sigset_t stop;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--threshold-ms") == 0 && i + 1 < argc)
			threshold_ms = atof(argv[++i]);
		else if (strcmp(argv[i], "--fsync-file") == 0 && i + 1 < argc)
			fsync_file = argv[++i];
		else {
			fprintf(
			    stderr, "usage: pause-meter [--threshold-ms MS] [--fsync-file PATH]\n");
			return 2;
		}
	}
	if (ncpu < 1 || ncpu > MAX_CPUS || threshold_ms <= 0) {
		fprintf(stderr, "pause-meter: %ld CPUs, threshold %g ms: out of range\n", ncpu,
		    threshold_ms);
		return 2;
	}
	if (fsync_file != NULL &&
	    (disk.fd = open(fsync_file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600)) < 0) {
		perror(fsync_file);
		return 1;
	}
	/* The threads inherit the mask: only sigwait below takes the signals. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	for (long c = 0; c < ncpu; c++) {
		if (!start(&meters[c], (int)c, threshold_ms, measure)) {
			fprintf(stderr, "pause-meter: cannot start a thread for CPU %ld\n", c);
			return 1;
		}
	}
	if (disk.fd >= 0 && !start(&disk, -1, threshold_ms, probe_disk)) {
		fprintf(stderr, "pause-meter: cannot start the fsync probe\n");
		return 1;
	}
	while (sigwait(&stop, &sig) != 0)
		;
	stopping = 1;
	for (long c = 0; c < ncpu; c++) {
		pthread_join(meters[c].tid, NULL);
		realtime &= meters[c].realtime;
		sleeps += meters[c].sleeps;
	}
	if (disk.fd >= 0) {
		pthread_join(disk.tid, NULL);
		close(disk.fd);
		unlink(fsync_file);
	}
	printf("{\"realtime\": %s, \"cpus\": %ld, \"threshold_ms\": %g, \"sleeps\": %ld, "
	       "\"pauses\": [",
	    realtime ? "true" : "false", ncpu, threshold_ms, sleeps);
	first = 1;
	for (long c = 0; c < ncpu; c++)
		print_pauses(&meters[c], 1, &first);
	printf("], \"fsyncs\": %ld, \"slow_fsyncs\": [", disk.sleeps);
	first = 1;
	print_pauses(&disk, 0, &first);
	printf("]}\n");
	return fflush(stdout) == 0 ? 0 : 1;
}
