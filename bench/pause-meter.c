/*
 * pause-meter.c - how still the machine stood during `tools/carebot bench`.
 *
 * One thread per online CPU, pinned to it and run at the lowest real-time
 * priority (SCHED_FIFO 1), sleeps 1 ms at a time and notes every wake-up
 * that came later than the threshold. No ordinary process can keep such a
 * thread from its CPU, so a late wake-up means the CPU itself did not run:
 * interrupts, the kernel, or, on a virtual machine, the host not running the
 * virtual CPU. When every CPU is late over the same span, the whole machine
 * stood still, and every request in flight waited with it, whatever it was.
 * The bench sets each workload's slowest requests beside these spans.
 *
 *   pause-meter [--threshold-ms MS]
 *
 * Runs until SIGTERM or SIGINT, then prints one JSON object:
 * {"realtime": true|false, "cpus": N, "threshold_ms": MS, "sleeps": N,
 *  "pauses": [[cpu, start, ms], ...]} with start in seconds since the epoch.
 * Without the privilege for SCHED_FIFO it still runs, as an ordinary thread
 * ("realtime": false), and then also counts waits for other processes.
 *
 * Built by the bench script: cc -O2 -pthread -o pause-meter pause-meter.c
 */
#define _GNU_SOURCE
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
#define MAX_PAUSES 100000 /* per CPU; at 1 ms sleeps, more than a minute of pauses */

struct pause {
	double start; /* seconds since the epoch */
	double ms;
};

struct meter {
	pthread_t tid;
	int cpu;
	double threshold;
	int realtime;
	long sleeps;
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

static void *
measure(void *arg)
{
	struct meter *m = arg;
	const struct timespec tick = {0, 1000000};
	struct sched_param sp = {.sched_priority = 1};
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(m->cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof set, &set);
	m->realtime = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0;
	while (!stopping) {
		double before = clock_s(CLOCK_MONOTONIC), late;

		nanosleep(&tick, NULL);
		late = clock_s(CLOCK_MONOTONIC) - before - 0.001;
		m->sleeps++;
		if (late >= m->threshold && m->n < MAX_PAUSES) {
			/* The pause ended now; it began late seconds ago. */
			m->pauses[m->n].start = clock_s(CLOCK_REALTIME) - late;
			m->pauses[m->n].ms = late * 1e3;
			m->n++;
		}
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	static struct meter meters[MAX_CPUS];
	double threshold_ms = 5;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN), sleeps = 0;
	int realtime = 1, sig;
	sigset_t stop;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--threshold-ms") == 0 && i + 1 < argc)
			threshold_ms = atof(argv[++i]);
		else {
			fprintf(stderr, "usage: pause-meter [--threshold-ms MS]\n");
			return 2;
		}
	}
	if (ncpu < 1 || ncpu > MAX_CPUS || threshold_ms <= 0) {
		fprintf(stderr, "pause-meter: %ld CPUs, threshold %g ms: out of range\n", ncpu,
		    threshold_ms);
		return 2;
	}
	/* The threads inherit the mask: only sigwait below takes the signals. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	for (long c = 0; c < ncpu; c++) {
		meters[c].cpu = (int)c;
		meters[c].threshold = threshold_ms / 1e3;
		meters[c].pauses = malloc(MAX_PAUSES * sizeof *meters[c].pauses);
		if (meters[c].pauses == NULL ||
		    pthread_create(&meters[c].tid, NULL, measure, &meters[c]) != 0) {
			fprintf(stderr, "pause-meter: cannot start a thread for CPU %ld\n", c);
			return 1;
		}
	}
	while (sigwait(&stop, &sig) != 0)
		;
	stopping = 1;
	for (long c = 0; c < ncpu; c++) {
		pthread_join(meters[c].tid, NULL);
		realtime &= meters[c].realtime;
		sleeps += meters[c].sleeps;
	}
	printf("{\"realtime\": %s, \"cpus\": %ld, \"threshold_ms\": %g, \"sleeps\": %ld, "
	       "\"pauses\": [",
	    realtime ? "true" : "false", ncpu, threshold_ms, sleeps);
	for (long c = 0, first = 1; c < ncpu; c++) {
		for (size_t i = 0; i < meters[c].n; i++, first = 0)
			printf("%s[%ld, %.6f, %.3f]", first ? "" : ", ", c,
			    meters[c].pauses[i].start, meters[c].pauses[i].ms);
	}
	printf("]}\n");
	return fflush(stdout) == 0 ? 0 : 1;
}
