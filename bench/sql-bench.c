/*
 * sql-bench.c - the database ceilings of `tools/carebot bench`: how many
 * single-row INSERTs into `messages` (autocommit, so one durable commit
 * each, at the server's own innodb_flush_log_at_trx_commit), primary-key
 * SELECTs from it, or newest pages of 50 messages (the very statement the
 * worker sends for workload a, from fcgi/sql-messages.h) one MariaDB server
 * takes from N threads, each with its own connection and a prepared
 * statement, as carebot's workers hold one each.
 *
 *   sql-bench --socket S --user U --password P --db D
 *             --mode insert|select|page --threads N --duration SECONDS
 *
 * Prints one JSON object: {"mode","threads","ops","errors","seconds",
 * "ops_per_s","p50_ms","p99_ms","max_ms"}. The INSERTs go into the chats
 * that are not closed (the bench removes them afterwards by their content,
 * "sql-bench ..."); the SELECTs pick ids uniformly among the existing rows;
 * the pages pick chats uniformly among all chats, as workload a walks them.
 *
 * Built by the bench script:
 *   cc -O2 -pthread -I fcgi sql-bench.c $(pkg-config --cflags --libs libmariadb)
 */
#include <limits.h>
#include <mysql.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sql-messages.h"

/* Workload a's page size. */
#define PAGE_LIMIT 50

struct opts {
	const char *socket, *user, *password, *db, *mode;
	int threads, duration;
};

struct chat {
	long long id, customer_id;
};

struct worker {
	pthread_t tid;
	const struct opts *o;
	const struct chat *chats;
	size_t nchats;
	long long min_id, max_id;
	double deadline;
	uint32_t *lat_us; /* one entry per operation */
	size_t n, cap;
	long long errors;
	unsigned int seed;
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (p == NULL) {
		fprintf(stderr, "sql-bench: out of memory\n");
		exit(1);
	}
	return p;
}

static MYSQL *
connect_db(const struct opts *o)
{
	MYSQL *m = mysql_init(NULL);

	if (m == NULL ||
	    !mysql_real_connect(m, NULL, o->user, o->password, o->db, 0, o->socket, 0)) {
		fprintf(
		    stderr, "sql-bench: connect: %s\n", m ? mysql_error(m) : "mysql_init failed");
		exit(1);
	}
	return m;
}

/*
 * The chats to work on (for INSERTs those that are not closed, for pages all
 * of them) and the range of message ids (SELECT keys).
 */
static void
load_targets(
    const struct opts *o, struct chat **chats, size_t *nchats, long long *min_id, long long *max_id)
{
	MYSQL *m = connect_db(o);
	MYSQL_RES *res;
	MYSQL_ROW row;
	size_t n = 0;
	const char *sql = strcmp(o->mode, "page") == 0
	    ? "SELECT id, customer_id FROM chats"
	    : "SELECT id, customer_id FROM chats WHERE status <> 'closed'";

	if (mysql_query(m, sql) || (res = mysql_store_result(m)) == NULL) {
		fprintf(stderr, "sql-bench: %s\n", mysql_error(m));
		exit(1);
	}
	*chats = xrealloc(NULL, (mysql_num_rows(res) + 1) * sizeof **chats);
	while ((row = mysql_fetch_row(res)) != NULL) {
		(*chats)[n].id = atoll(row[0]);
		(*chats)[n].customer_id = atoll(row[1]);
		n++;
	}
	mysql_free_result(res);
	*nchats = n;
	if (mysql_query(m, "SELECT COALESCE(MIN(id), 0), COALESCE(MAX(id), 0) FROM messages") ||
	    (res = mysql_store_result(m)) == NULL || (row = mysql_fetch_row(res)) == NULL) {
		fprintf(stderr, "sql-bench: %s\n", mysql_error(m));
		exit(1);
	}
	*min_id = atoll(row[0]);
	*max_id = atoll(row[1]);
	mysql_free_result(res);
	mysql_close(m);
}

static void
record(struct worker *w, double seconds)
{
	if (w->n == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 65536;
		w->lat_us = xrealloc(w->lat_us, w->cap * sizeof *w->lat_us);
	}
	w->lat_us[w->n++] = (uint32_t)(seconds * 1e6);
}

static int
run_insert(struct worker *w, MYSQL_STMT *st)
{
	const struct chat *c = &w->chats[rand_r(&w->seed) % w->nchats];
	static const char content[] = "sql-bench: a customer message of typical length, about "
	                              "eighty characters long.";
	unsigned long len = sizeof content - 1;
	MYSQL_BIND b[3];

	memset(b, 0, sizeof b);
	b[0].buffer_type = MYSQL_TYPE_LONGLONG;
	b[0].buffer = (void *)&c->id;
	b[1].buffer_type = MYSQL_TYPE_LONGLONG;
	b[1].buffer = (void *)&c->customer_id;
	b[2].buffer_type = MYSQL_TYPE_STRING;
	b[2].buffer = (void *)content;
	b[2].buffer_length = len;
	b[2].length = &len;
	return mysql_stmt_bind_param(st, b) || mysql_stmt_execute(st);
}

/* Executes st with n LONGLONG parameters and reads every row of its result. */
static int
run_query(MYSQL_STMT *st, long long *params, int n)
{
	MYSQL_BIND b[4];
	int rc;

	memset(b, 0, sizeof b);
	for (int i = 0; i < n; i++) {
		b[i].buffer_type = MYSQL_TYPE_LONGLONG;
		b[i].buffer = &params[i];
	}
	if (mysql_stmt_bind_param(st, b) || mysql_stmt_execute(st) || mysql_stmt_store_result(st))
		return 1;
	while ((rc = mysql_stmt_fetch(st)) == 0 || rc == MYSQL_DATA_TRUNCATED)
		;
	mysql_stmt_free_result(st);
	return rc != MYSQL_NO_DATA;
}

static int
run_select(struct worker *w, MYSQL_STMT *st)
{
	long long id = w->min_id + (long long)(rand_r(&w->seed) % (w->max_id - w->min_id + 1));

	return run_query(st, &id, 1);
}

/* The newest page of a chat, with the parameters cb_db_messages_read gives it. */
static int
run_page(struct worker *w, MYSQL_STMT *st)
{
	long long chat = w->chats[rand_r(&w->seed) % w->nchats].id;
	long long params[] = {chat, LLONG_MAX, chat, PAGE_LIMIT};

	return run_query(st, params, 4);
}

static void *
work(void *arg)
{
	struct worker *w = arg;
	int (*run)(struct worker *, MYSQL_STMT *) = run_select;
	const char *sql = "SELECT id, chat_id, sender_id, sender_role, content, created_at "
	                  "FROM messages WHERE id = ?";

	if (strcmp(w->o->mode, "insert") == 0) {
		run = run_insert;
		sql = "INSERT INTO messages (chat_id, sender_id, sender_role, content) "
		      "VALUES (?, ?, 'customer', ?)";
	} else if (strcmp(w->o->mode, "page") == 0) {
		run = run_page;
		sql = CB_SQL_MESSAGES_NEWEST;
	}
	MYSQL *m = connect_db(w->o);
	MYSQL_STMT *st = mysql_stmt_init(m);
	double t;

	if (st == NULL || mysql_stmt_prepare(st, sql, strlen(sql))) {
		fprintf(stderr, "sql-bench: prepare: %s\n", mysql_error(m));
		exit(1);
	}
	while ((t = now()) < w->deadline) {
		if (run(w, st))
			w->errors++;
		else
			record(w, now() - t);
	}
	mysql_stmt_close(st);
	mysql_close(m);
	return NULL;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static double
pct_ms(const uint32_t *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return v[i] / 1000.0;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: sql-bench --socket S --user U --password P --db D "
	    "--mode insert|select|page --threads N --duration SECONDS\n");
	exit(2);
}

static void
parse(int argc, char **argv, struct opts *o)
{
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];

		if (strcmp(k, "--socket") == 0)
			o->socket = v;
		else if (strcmp(k, "--user") == 0)
			o->user = v;
		else if (strcmp(k, "--password") == 0)
			o->password = v;
		else if (strcmp(k, "--db") == 0)
			o->db = v;
		else if (strcmp(k, "--mode") == 0)
			o->mode = v;
		else if (strcmp(k, "--threads") == 0)
			o->threads = atoi(v);
		else if (strcmp(k, "--duration") == 0)
			o->duration = atoi(v);
		else
			usage();
	}
	if (argc % 2 == 0 || !o->socket || !o->user || !o->db || !o->mode || o->threads < 1 ||
	    o->duration < 1 ||
	    (strcmp(o->mode, "insert") && strcmp(o->mode, "select") && strcmp(o->mode, "page")))
		usage();
}

int
main(int argc, char **argv)
{
	struct opts o = {.password = ""};
	struct worker *w;
	struct chat *chats;
	size_t nchats, total = 0, k = 0;
	long long min_id, max_id, errors = 0;
	uint32_t *all;
	double start;

	parse(argc, argv, &o);
	mysql_library_init(0, NULL, NULL);
	load_targets(&o, &chats, &nchats, &min_id, &max_id);
	if ((strcmp(o.mode, "select") != 0 && nchats == 0) || max_id == 0) {
		fprintf(stderr, "sql-bench: no chats to work on or no messages\n");
		return 1;
	}
	w = calloc((size_t)o.threads, sizeof *w);
	start = now();
	for (int i = 0; i < o.threads; i++) {
		w[i] = (struct worker){.o = &o,
		    .chats = chats,
		    .nchats = nchats,
		    .min_id = min_id,
		    .max_id = max_id,
		    .deadline = start + o.duration,
		    .seed = 0x9e3779b9u * (i + 1)};
		pthread_create(&w[i].tid, NULL, work, &w[i]);
	}
	for (int i = 0; i < o.threads; i++) {
		pthread_join(w[i].tid, NULL);
		total += w[i].n;
		errors += w[i].errors;
	}
	double seconds = now() - start;
	all = xrealloc(NULL, (total + 1) * sizeof *all);
	for (int i = 0; i < o.threads; i++) {
		memcpy(all + k, w[i].lat_us, w[i].n * sizeof *all);
		k += w[i].n;
	}
	qsort(all, total, sizeof *all, cmp_u32);
	printf("{\"mode\":\"%s\",\"threads\":%d,\"ops\":%zu,\"errors\":%lld,\"seconds\":%.3f,"
	       "\"ops_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
	    o.mode, o.threads, total, errors, seconds, total / seconds, pct_ms(all, total, 50),
	    pct_ms(all, total, 99), total ? all[total - 1] / 1000.0 : 0.0);
	return 0;
}
