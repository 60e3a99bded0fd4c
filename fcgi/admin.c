/*
 * admin.c - carebot-admin: migrate, seed, token, reassign. For operators and
 * cron; talks to the same database through the same core as the workers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "cache.h"
#include "chat-mutex.h"
#include "config.h"
#include "db-reassign.h"
#include "db-sessions.h"
#include "db.h"
#include "history.h"
#include "migrate.h"
#include "publish.h"
#include "util.h"

static void usage(void) __attribute__((noreturn));

static void
usage(void)
{
	fprintf(stderr,
	    "usage: carebot-admin [-c carebot.conf] COMMAND\n"
	    "  migrate                 apply the pending schema migrations\n"
	    "  seed                    load the sample data (idempotent)\n"
	    "  token USERNAME [TTL]    print a fresh bearer token for an active user\n"
	    "  reassign [--offline-after SECONDS]\n"
	    "                          set silent agents offline, then assign waiting chats\n");
	exit(2);
}

static int
token(struct cb_db *db, const struct cb_config *cfg, int argc, char **argv)
{
	char tok[CB_TOKEN_HEX + 1];
	char *expires_at = NULL;
	long long ttl = cfg->token_ttl;
	struct cb_res *res;
	int rc;

	if (argc < 1 || argc > 2 ||
	    (argc == 2 && cb_parse_int(argv[1], 60, 31 * 86400, &ttl) != CB_OK))
		usage();
	rc = cb_db_query(
	    db, &res, "SELECT id FROM users WHERE username = ? AND is_active", "s", argv[0]);
	if (rc != CB_OK)
		return rc;
	if (res->nrows == 0) {
		fprintf(stderr, "carebot-admin: no active user '%s'\n", argv[0]);
		cb_res_free(res);
		return CB_ERR_NOTFOUND;
	}
	rc = cb_db_session_create(db, cb_res_int(res, 0, "id"), (int)ttl, tok, &expires_at);
	cb_res_free(res);
	if (rc == CB_OK)
		printf("%s\n", tok);
	free(expires_at);
	return rc;
}

/*
 * The cron sweep (contract 8): prints "assigned=N requeued=M timed_out=K".
 * The work is in db-reassign.c, shared with anything else that needs it.
 */
static int
reassign(struct cb_db *db, const struct cb_config *cfg, int argc, char **argv)
{
	struct cb_reassign_counts counts = {0};
	long long after = cfg->offline_after;
	int rc;

	if (argc == 2 && strcmp(argv[0], "--offline-after") == 0) {
		if (cb_parse_int(argv[1], 0, 10LL * 365 * 86400, &after) != CB_OK)
			usage();
	} else if (argc == 1 && strncmp(argv[0], "--offline-after=", 16) == 0) {
		if (cb_parse_int(argv[0] + 16, 0, 10LL * 365 * 86400, &after) != CB_OK)
			usage();
	} else if (argc != 0) {
		usage();
	}
	if ((rc = cb_db_ensure(db)) != CB_OK)
		return rc;
	/*
	 * Cron runs this every minute: it also forgets login attempts past their
	 * window, first, so that a failure leaves the queues as they were.
	 */
	rc = cb_db_login_sweep(db);
	if (rc == CB_OK)
		rc = cb_db_reassign(db, after, &counts);
	if (rc == CB_OK)
		printf("assigned=%d requeued=%d timed_out=%d\n", counts.assigned, counts.requeued,
		    counts.timed_out);
	return rc;
}

int
main(int argc, char **argv)
{
	struct cb_config cfg;
	const char *conf = NULL;
	int opt, rc;

	while ((opt = getopt(argc, argv, "+c:h")) != -1) {
		if (opt == 'c')
			conf = optarg;
		else
			usage();
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	if (cb_config_load(&cfg, conf) != CB_OK || cb_auth_init() != CB_OK ||
	    cb_chat_mutex_open(cfg.chat_mutex_file) != CB_OK)
		return 1;
	/* Changes made here are published like the workers' (a failed publish is only logged). */
	cb_publish_init(&cfg);
	/* So the workers forget what the changes made here make stale (cache.h). */
	cb_cache_open(cfg.shared_file, 0);
	cb_history_open(cfg.history_cache_file, cfg.history_cache_mb, 0);
	struct cb_db *db = cb_db_new(&cfg);
	if (strcmp(argv[0], "migrate") == 0 && argc == 1)
		rc = cb_migrate(db, cfg.schema_dir);
	else if (strcmp(argv[0], "seed") == 0 && argc == 1)
		rc = cb_seed(db);
	else if (strcmp(argv[0], "token") == 0)
		rc = token(db, &cfg, argc - 1, argv + 1);
	else if (strcmp(argv[0], "reassign") == 0)
		rc = reassign(db, &cfg, argc - 1, argv + 1);
	else
		usage();
	if (rc == CB_ERR_UNAVAILABLE)
		fprintf(stderr, "carebot-admin: the database cannot be reached\n");
	cb_db_free(db);
	cb_publish_cleanup();
	cb_config_free(&cfg);
	return rc == CB_OK ? 0 : 1;
}
