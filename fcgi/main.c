/*
 * main.c - carebot-fcgi: one FastCGI worker. spawn-fcgi hands it the
 * listening socket as fd 0 and multiwatch runs N of them, replacing any that
 * dies. Each worker serves one request at a time over its own MariaDB
 * connection and its own connection to the Nchan publisher.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "auth.h"
#include "cache.h"
#include "chat-mutex.h"
#include "config.h"
#include "db.h"
#include "history.h"
#include "log.h"
#include "publish.h"
#include "request.h"
#include "router.h"
#include "util.h"

static volatile sig_atomic_t busy, stopping;

/* How long an idle worker told to stop may wait before accept is woken again (on_stop). */
#define STOP_WAKE_S 1

/*
 * A stop signal ends the worker through the end of main, which closes its
 * MariaDB connection (one that just vanished is logged by MariaDB as an
 * aborted connection, per worker on every pool stop) and, in a sanitizer
 * build, has LeakSanitizer check for leaks at exit. While a request runs,
 * the worker finishes it first. While idle, FCGX_ShutdownPending makes
 * libfcgi's accept, interrupted by the signal (no SA_RESTART), return at
 * once. A signal landing just before accept starts to wait would be missed:
 * the alarm interrupts it again then (a request that starts meanwhile
 * cancels it).
 * multiwatch is told -s TERM, but Debian 12's multiwatch 1.0.0 sends the
 * signal whose number is the name's place in its table, so TERM arrives as
 * SIGQUIT (and its default USR1 as SIGILL). TERM, QUIT, INT and USR1 all
 * stop gracefully, with that multiwatch and with one that sends what it is
 * told. USR2 does too: multiwatch passes it on as it is, without stopping
 * itself, and starts a new worker in each one's place, which reads the
 * binary and carebot.conf afresh (tools/carebot's reload, README 1).
 */
static void
on_stop(int sig)
{
	stopping = 1;
	if (!busy) {
		FCGX_ShutdownPending();
		alarm(STOP_WAKE_S);
	}
}

/* Only interrupts: the same as the chats' mutexes' tick (chat-mutex.c), which also uses SIGALRM. */
static void
on_alarm(int sig)
{
}

static void
serve(FCGX_Request *fcgx, const struct cb_config *cfg, struct cb_db *db)
{
	struct cb_request req;

	/* From here on every line names the request (README 9, "Following one request"). */
	cb_log_request(FCGX_GetParam("REQUEST_ID", fcgx->envp));
	memset(&req, 0, sizeof req);
	req.cfg = cfg;
	req.db = db;
	cb_db_request_start(db);
	req.fcgx = fcgx;
	int rc = cb_request_read(&req, fcgx);
	cb_router_cors(&req);
	if (rc != CB_OK)
		cb_reply_failure(&req, CB_ERR_REPLY);
	else
		cb_router_dispatch(&req);
	/* Handlers publish before replying; the chat mutexes end with the request. */
	cb_db_chat_mutex_release(db);
	cb_debug("%s %s -> %d", req.method, req.path, req.status);
	cb_request_free(&req);
	cb_log_request(NULL);
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: carebot-fcgi [-c carebot.conf]\n"
	    "Run under spawn-fcgi (and multiwatch); the FastCGI socket is fd 0.\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct cb_config cfg;
	FCGX_Request fcgx;
	struct sigaction sa;
	const char *conf = NULL;
	int opt;

	while ((opt = getopt(argc, argv, "c:h")) != -1) {
		if (opt == 'c')
			conf = optarg;
		else
			usage();
	}
	/* "carebot-fcgi FILE" (no -c) would otherwise start on the defaults. */
	if (optind < argc) {
		fprintf(stderr, "carebot-fcgi: unexpected argument '%s'\n", argv[optind]);
		usage();
	}
	/* A worker that cannot share the chats' mutexes of the others must not serve. */
	if (cb_config_load(&cfg, conf) != CB_OK)
		return 1;
	if (cb_auth_init() != CB_OK || cb_publish_init(&cfg) != CB_OK ||
	    cb_chat_mutex_open(cfg.chat_mutex_file) != CB_OK || FCGX_Init() != 0) {
		cb_config_free(&cfg);
		return 1;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	cb_cache_open(cfg.shared_file, cfg.cache_max_age_ms);
	cb_history_open(cfg.history_cache_file, cfg.history_cache_mb, cfg.history_cache_max_age_ms);
	struct cb_db *db = cb_db_new(&cfg);
	if (cb_db_ensure(db) != CB_OK)
		cb_warn("starting without a database connection; retrying on each request");
	FCGX_InitRequest(&fcgx, 0, 0);
	cb_info("worker ready");
	while (!stopping && FCGX_Accept_r(&fcgx) >= 0) {
		busy = 1;
		if (stopping)
			alarm(0); /* only a stop arms it: no system call per request otherwise */
		serve(&fcgx, &cfg, db);
		FCGX_Finish_r(&fcgx);
		busy = 0;
	}
	alarm(0);
	cb_info("worker stopping");
	cb_db_free(db);
	cb_cache_close();
	cb_history_close();
	cb_chat_mutex_close();
	cb_publish_cleanup();
	cb_config_free(&cfg);
	return 0;
}
