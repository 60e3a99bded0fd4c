/*
 * admin.c - carebot-admin: migrate, seed, add-admin, token, reassign. For
 * operators and cron; talks to the same database through the same core as
 * the workers.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "cache.h"
#include "chat-mutex.h"
#include "config.h"
#include "db-assign.h"
#include "db-reassign.h"
#include "db-sessions.h"
#include "db-users.h"
#include "db.h"
#include "history.h"
#include "json.h"
#include "migrate.h"
#include "publish.h"
#include "util.h"
#include "validate.h"

/*
 * What the command line asks for, checked whole before the config, the
 * database or anything else is touched: a bad argument changes nothing.
 */
struct args {
	const char *conf;
	const struct command *command;
	const char *username; /* token's and add-admin's */
	const char *full_name; /* add-admin's; NULL: the username */
	long long ttl; /* token's; 0: the config's token_ttl */
	long long offline_after; /* reassign's; -1: the config's offline_after */
};

/* One command: parse reads its arguments (exiting 2 on a bad one), run does it. */
struct command {
	const char *name;
	void (*parse)(int argc, char **argv, struct args *a);
	int (*run)(struct cb_db *db, const struct cb_config *cfg, const struct args *a);
};

static void usage(FILE *out, int status) __attribute__((noreturn));
static void bad_usage(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void
usage(FILE *out, int status)
{
	fprintf(out,
	    "usage: carebot-admin [-c carebot.conf] COMMAND\n"
	    "       carebot-admin -h | --help\n"
	    "  migrate                 apply the pending schema migrations\n"
	    "  seed                    load the sample data (idempotent)\n"
	    "  add-admin USERNAME [FULL_NAME]\n"
	    "                          add an admin; the password is read from standard input\n"
	    "  token USERNAME [TTL]    print a fresh bearer token for an active user\n"
	    "  reassign [--offline-after SECONDS]\n"
	    "                          set silent agents offline, then assign waiting chats\n");
	exit(status);
}

/* A bad argument: says which and why, then the usage, and exits 2. */
static void
bad_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("carebot-admin: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage(stderr, 2);
}

/* The whole number of seconds in [min, max] that what (an option's name) was given as s. */
static long long
seconds(const char *what, const char *s, long long min, long long max)
{
	long long v;

	if (cb_parse_int(s, min, max, &v) != CB_OK)
		bad_usage("%s wants whole seconds from %lld to %lld, not '%s'", what, min, max, s);
	return v;
}

/* argv[0] is the command; no argument may follow argv[n - 1]. */
static void
at_most(int argc, char **argv, int n)
{
	if (argc > n)
		bad_usage("unexpected argument '%s' after %s", argv[n], argv[0]);
}

static void
parse_none(int argc, char **argv, struct args *a)
{
	at_most(argc, argv, 1);
}

static void
parse_token(int argc, char **argv, struct args *a)
{
	if (argc < 2)
		bad_usage("token needs a USERNAME");
	a->username = argv[1];
	if (argc > 2)
		a->ttl = seconds("TTL", argv[2], 60, 31 * 86400);
	at_most(argc, argv, 3);
}

static void
parse_add_admin(int argc, char **argv, struct args *a)
{
	if (argc < 2)
		bad_usage("add-admin needs a USERNAME");
	a->username = argv[1];
	a->full_name = argc > 2 ? argv[2] : NULL;
	at_most(argc, argv, 3);
}

static void
parse_reassign(int argc, char **argv, struct args *a)
{
	static const char opt[] = "--offline-after";
	const char *value;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], opt) == 0) {
			if (i + 1 == argc)
				bad_usage("%s needs a value (seconds)", opt);
			value = argv[++i];
		} else if (strncmp(argv[i], opt, sizeof opt - 1) == 0 &&
		    argv[i][sizeof opt - 1] == '=') {
			value = argv[i] + sizeof opt;
		} else {
			bad_usage("unknown argument '%s' to reassign", argv[i]);
		}
		a->offline_after = seconds(opt, value, 0, 10LL * 365 * 86400);
	}
}

static int
migrate(struct cb_db *db, const struct cb_config *cfg, const struct args *a)
{
	return cb_migrate(db, cfg->schema_dir);
}

static int
seed(struct cb_db *db, const struct cb_config *cfg, const struct args *a)
{
	return cb_seed(db);
}

static int
token(struct cb_db *db, const struct cb_config *cfg, const struct args *a)
{
	char tok[CB_TOKEN_HEX + 1];
	char *expires_at = NULL;
	long long ttl = a->ttl > 0 ? a->ttl : cfg->token_ttl;
	struct cb_res *res;
	int rc;

	rc = cb_db_query(
	    db, &res, "SELECT id FROM users WHERE username = ? AND is_active", "s", a->username);
	if (rc != CB_OK)
		return rc;
	if (res->nrows == 0) {
		fprintf(stderr, "carebot-admin: no active user '%s'\n", a->username);
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

/* The new admin, with the rules of POST /api/users/ (contract 5). */
struct new_admin {
	struct cb_user_input in;
	char hash[CB_PWHASH_LEN];
	long long id;
	struct cb_events ev;
	struct cb_error e;
};

static int
add_admin_tx(struct cb_db *db, void *arg)
{
	struct new_admin *n = arg;

	cb_events_clear(&n->ev);
	return cb_db_user_create(db, &n->in, &n->id, &n->ev, &n->e);
}

/* The first line of standard input, without its line end; NULL at its end. */
static char *
read_line(char *buf, size_t size)
{
	if (fgets(buf, (int)size, stdin) == NULL)
		return NULL;
	size_t len = strlen(buf);

	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	return buf;
}

/*
 * An admin for a new production database, where the sample data (seed, with
 * its admin/admin123) has no place, or another one later (README 9). The
 * password comes on standard input so that no process list or shell history
 * shows it; the fields are checked by the API's own rules.
 */
static int
add_admin(struct cb_db *db, const struct cb_config *cfg, const struct args *a)
{
	static const char *const keys[] = {"username", "full_name", "password"};
	static const size_t min[] = {CB_USERNAME_MIN, 1, CB_PASSWORD_MIN};
	static const size_t max[] = {CB_USERNAME_MAX, CB_NAME_MAX, CB_PASSWORD_MAX};
	struct new_admin n = {.in = {.has_username = 1,
	                          .has_password = 1,
	                          .has_full_name = 1,
	                          .has_role = 1,
	                          .role = CB_ROLE_ADMIN}};
	struct cb_field f[3];
	char line[CB_PASSWORD_MAX * 4 + 2];
	int rc = CB_ERR;

	if (read_line(line, sizeof line) == NULL) {
		fprintf(
		    stderr, "carebot-admin: add-admin reads the password from standard input\n");
		return CB_ERR;
	}
	const char *values[] = {a->username, a->full_name ? a->full_name : a->username, line};
	json_object *o = json_object_new_object();
	for (size_t i = 0; i < CB_ARRAY_LEN(keys); i++) {
		if (!cb_utf8_valid(values[i], strlen(values[i]))) {
			fprintf(stderr, "carebot-admin: %s must be UTF-8\n", keys[i]);
			goto out;
		}
		json_object_object_add(o, keys[i], json_object_new_string(values[i]));
		if (cb_json_string(o, keys[i], CB_F_REQUIRED | (i == 1 ? CB_F_NOTBLANK : 0), min[i],
		        max[i], &f[i], &n.e) != CB_OK) {
			fprintf(stderr, "carebot-admin: %s\n", n.e.message);
			goto out;
		}
	}
	if (!cb_valid_username(f[0].s)) {
		fprintf(
		    stderr, "carebot-admin: username may only hold letters, digits, _ . and -\n");
		goto out;
	}
	if (cb_auth_password_hash(f[2].s, n.hash) != CB_OK)
		goto out;
	n.in.username = f[0].s;
	n.in.full_name = f[1].s;
	n.in.password_hash = n.hash;
	rc = cb_db_tx(db, add_admin_tx, &n);
	if (rc == CB_OK) {
		cb_db_events_publish(db, &n.ev);
		printf("added admin %s (id %lld)\n", n.in.username, n.id);
	} else if (rc == CB_ERR_DUPLICATE) {
		fprintf(stderr, "carebot-admin: the username '%s' is taken\n", n.in.username);
	} else if (rc == CB_ERR_REPLY) {
		fprintf(stderr, "carebot-admin: %s\n", n.e.message);
	}
out:
	cb_events_clear(&n.ev);
	sodium_memzero(n.hash, sizeof n.hash);
	sodium_memzero(line, sizeof line);
	json_object_put(o);
	return rc;
}

/*
 * The cron sweep (contract 8): prints "assigned=N requeued=M timed_out=K".
 * The work is in db-reassign.c, shared with anything else that needs it.
 */
static int
reassign(struct cb_db *db, const struct cb_config *cfg, const struct args *a)
{
	struct cb_reassign_counts counts = {0};
	long long after = a->offline_after >= 0 ? a->offline_after : cfg->offline_after;
	int rc;

	if ((rc = cb_db_ensure(db)) != CB_OK)
		return rc;
	/*
	 * Cron runs this every minute: it also forgets what has expired (login
	 * attempts, sessions, Idempotency-Key rows), first, so that a failure
	 * leaves the queues as they were.
	 */
	if ((rc = cb_db_sweep_expired(db)) != CB_OK)
		return rc;
	rc = cb_db_reassign(db, after, &counts);
	/* What was done, also when a department was left for the next run (exit 1). */
	if (rc != CB_ERR_UNAVAILABLE)
		printf("assigned=%d requeued=%d timed_out=%d\n", counts.assigned, counts.requeued,
		    counts.timed_out);
	return rc;
}

static const struct command commands[] = {
    {"migrate", parse_none, migrate},
    {"seed", parse_none, seed},
    {"add-admin", parse_add_admin, add_admin},
    {"token", parse_token, token},
    {"reassign", parse_reassign, reassign},
};

/* Options, then the command and its arguments, into *a; exits on --help or a bad one. */
static void
parse_args(int argc, char **argv, struct args *a)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	int opt;

	opterr = 0; /* bad_usage says it, in its own words */
	while ((opt = getopt_long(argc, argv, "+:c:h", longopts, NULL)) != -1) {
		if (opt == 'c')
			a->conf = optarg;
		else if (opt == 'h')
			usage(stdout, 0);
		else if (opt == ':')
			bad_usage("option '%s' needs a value", argv[optind - 1]);
		else if (optopt != 0 && strncmp(argv[optind - 1], "--", 2) != 0)
			bad_usage("unknown option '-%c'", optopt);
		else
			bad_usage("unknown option '%s'", argv[optind - 1]);
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		bad_usage("no command given");
	for (size_t i = 0; i < CB_ARRAY_LEN(commands) && a->command == NULL; i++)
		if (strcmp(argv[0], commands[i].name) == 0)
			a->command = &commands[i];
	if (a->command == NULL)
		bad_usage("unknown command '%s'", argv[0]);
	a->command->parse(argc, argv, a);
}

int
main(int argc, char **argv)
{
	struct args a = {.offline_after = -1};
	struct cb_config cfg;
	int rc;

	parse_args(argc, argv, &a);
	if (cb_config_load(&cfg, a.conf) != CB_OK)
		return 1;
	if (cb_auth_init() != CB_OK || cb_chat_mutex_open(cfg.chat_mutex_file) != CB_OK) {
		cb_config_free(&cfg);
		return 1;
	}
	/* Changes made here are published like the workers' (a failed publish is only logged). */
	cb_publish_init(&cfg);
	/* So the workers forget what the changes made here make stale (cache.h). */
	cb_cache_open(cfg.shared_file, 0);
	cb_history_open(cfg.history_cache_file, cfg.history_cache_mb, 0);
	struct cb_db *db = cb_db_new(&cfg);
	rc = a.command->run(db, &cfg, &a);
	if (rc == CB_ERR_UNAVAILABLE)
		fprintf(stderr, "carebot-admin: the database cannot be reached\n");
	else if (rc == CB_ERR_FULL)
		fprintf(stderr, "carebot-admin: the database has no room (is its disk full?)\n");
	else if (rc == CB_ERR_NO_IDS)
		fprintf(stderr, "carebot-admin: a table of the database has used up its ids\n");
	else if (rc == CB_ERR_SCHEMA && a.command->run != migrate) /* migrate said its own */
		fprintf(stderr,
		    "carebot-admin: the database's schema is older than this program: "
		    "run carebot-admin migrate\n");
	cb_db_free(db);
	cb_publish_cleanup();
	cb_config_free(&cfg);
	return rc == CB_OK ? 0 : 1;
}
