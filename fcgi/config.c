/* config.c - carebot.conf: "key = value" lines, overridden by CAREBOT_<KEY>. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

#ifndef CB_SYSCONFDIR
#define CB_SYSCONFDIR "/etc"
#endif
#ifndef CB_DATADIR
#define CB_DATADIR "/usr/share"
#endif

enum kind { K_STR, K_INT, K_LEVEL };

struct key {
	const char *name;
	enum kind kind;
	size_t offset;
	int min, max; /* K_STR: min 1 if the value may not be empty */
};

#define STR(f) \
	{ \
#f, K_STR, offsetof(struct cb_config, f), 0, 0 \
	}
/* A string that may not be empty (an empty db_user was the login's own name, as root). */
#define STR_NONEMPTY(f) \
	{ \
#f, K_STR, offsetof(struct cb_config, f), 1, 0 \
	}
#define INT(f, lo, hi) \
	{ \
#f, K_INT, offsetof(struct cb_config, f), lo, hi \
	}

/* Every setting, in the order the README documents them. */
static const struct key keys[] = {
    STR_NONEMPTY(db_host),
    INT(db_port, 1, 65535),
    STR(db_socket),
    STR_NONEMPTY(db_name),
    STR_NONEMPTY(db_user),
    STR(db_password),
    INT(db_connect_timeout, 1, 60),
    STR(publish_socket),
    STR(shared_file),
    INT(cache_max_age_ms, 0, 3600000),
    STR(history_cache_file),
    INT(history_cache_mb, 1, 4096),
    INT(history_cache_max_age_ms, 0, 3600000),
    STR(chat_mutex_file),
    STR_NONEMPTY(schema_dir),
    INT(token_ttl, 60, 31 * 24 * 3600),
    INT(offline_after, 10, 7 * 24 * 3600),
    INT(typing_interval_ms, 0, 60000),
    STR(cookie_origins),
    STR(cors_origins),
    {"log_level", K_LEVEL, offsetof(struct cb_config, log_level), 0, 0},
};

static void
set_str(struct cb_config *cfg, size_t offset, const char *value)
{
	char **slot = (char **)((char *)cfg + offset);

	free(*slot);
	*slot = xstrdup(value);
}

void
cb_config_defaults(struct cb_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->db_host = xstrdup("127.0.0.1");
	cfg->db_port = 3306;
	cfg->db_socket = xstrdup("");
	cfg->db_name = xstrdup("carebot");
	cfg->db_user = xstrdup("carebot");
	cfg->db_password = xstrdup("");
	cfg->db_connect_timeout = 2;
	cfg->publish_socket = xstrdup("");
	cfg->shared_file = xstrdup("");
	cfg->cache_max_age_ms = 5000;
	cfg->history_cache_file = xstrdup("");
	cfg->history_cache_mb = 64;
	cfg->history_cache_max_age_ms = 5000;
	cfg->chat_mutex_file = xstrdup("");
	cfg->schema_dir = xstrdup(CB_DATADIR "/carebot/schema");
	cfg->token_ttl = 12 * 3600;
	cfg->offline_after = 300;
	cfg->typing_interval_ms = 1000;
	cfg->cookie_origins = xstrdup("");
	cfg->cors_origins = xstrdup("");
	cfg->log_level = CB_LOG_INFO;
}

static int
apply(struct cb_config *cfg, const char *name, const char *value, char *err, size_t errlen)
{
	for (size_t i = 0; i < CB_ARRAY_LEN(keys); i++) {
		const struct key *k = &keys[i];
		long long v;

		if (strcmp(k->name, name) != 0)
			continue;
		switch (k->kind) {
		case K_STR:
			if (k->min > 0 && *value == '\0') {
				snprintf(err, errlen, "%s: may not be empty", name);
				return CB_ERR;
			}
			set_str(cfg, k->offset, value);
			return CB_OK;
		case K_INT:
			if (cb_parse_int(value, k->min, k->max, &v) != CB_OK) {
				snprintf(err, errlen, "%s: expected an integer from %d to %d", name,
				    k->min, k->max);
				return CB_ERR;
			}
			*(int *)((char *)cfg + k->offset) = (int)v;
			return CB_OK;
		case K_LEVEL:
			if (cb_log_parse_level(value, &cfg->log_level) != CB_OK) {
				snprintf(
				    err, errlen, "%s: expected debug, info, warn or error", name);
				return CB_ERR;
			}
			return CB_OK;
		}
	}
	snprintf(err, errlen, "unknown setting '%s'", name);
	return CB_ERR;
}

static char *
trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

int
cb_config_line(struct cb_config *cfg, const char *line, char *err, size_t errlen)
{
	char *copy = xstrdup(line);
	char *s = trim(copy);
	int rc = CB_OK;

	if (*s != '\0' && *s != '#') {
		char *eq = strchr(s, '=');
		if (eq == NULL) {
			snprintf(err, errlen, "expected 'key = value'");
			rc = CB_ERR;
		} else {
			*eq = '\0';
			rc = apply(cfg, trim(s), trim(eq + 1), err, errlen);
		}
	}
	free(copy);
	return rc;
}

/*
 * One line per getline, however long (a fixed buffer cut a long comment or
 * cors_origins in two, and the second half was read as a line of its own:
 * refused as the next line's, or, beginning with '#', dropped without a
 * word). A read error (EISDIR for -c naming a directory, which fopen opens)
 * is the file's error: the defaults must not pass for the file.
 */
static int
load_file(struct cb_config *cfg, const char *path)
{
	char *line = NULL, err[256];
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, rc = CB_OK;
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		fprintf(stderr, "carebot: cannot read %s: %s\n", path, strerror(errno));
		return CB_ERR;
	}
	while (rc == CB_OK && (len = getline(&line, &cap, f)) >= 0) {
		char *s = line;

		lineno++;
		/* A UTF-8 byte order mark, which some editors write, is not part of the first key. */
		if (lineno == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0)
			s += 3;
		if (strlen(line) != (size_t)len) {
			snprintf(err, sizeof err, "a NUL byte (is the file UTF-16?)");
			rc = CB_ERR;
		} else {
			s[strcspn(s, "\r\n")] = '\0';
			rc = cb_config_line(cfg, s, err, sizeof err);
		}
		if (rc != CB_OK)
			fprintf(stderr, "carebot: %s:%d: %s\n", path, lineno, err);
	}
	if (rc == CB_OK && ferror(f)) {
		fprintf(stderr, "carebot: cannot read %s: %s\n", path, strerror(errno));
		rc = CB_ERR;
	}
	free(line);
	fclose(f);
	return rc;
}

/* CAREBOT_ names that are not settings: the config's path, and what tools/carebot and the tests read. */
static const char *const not_settings[] = {"CONFIG", "URL", "STATE", "ROOT", "BUILD_DIR",
    "BENCH_BUILD_DIR", "COVERAGE_PORT", "FUZZ_SEED", "FUZZ_REQUESTS"};

/* 1 if the len bytes at name are a key's name in capitals, or one of not_settings. */
static int
known_env_name(const char *name, size_t len)
{
	for (size_t i = 0; i < CB_ARRAY_LEN(not_settings); i++)
		if (strlen(not_settings[i]) == len && memcmp(not_settings[i], name, len) == 0)
			return 1;
	for (size_t i = 0; i < CB_ARRAY_LEN(keys); i++) {
		size_t j = 0;

		while (j < len && keys[i].name[j] &&
		    toupper((unsigned char)keys[i].name[j]) == name[j])
			j++;
		if (j == len && keys[i].name[j] == '\0')
			return 1;
	}
	return 0;
}

/*
 * A CAREBOT_ variable that names no setting is said on stderr, not fatal
 * (it may be meant for another program): a misspelled override, such as
 * CAREBOT_DB_PASWORD, was ignored without a word.
 */
static void
warn_unknown_env(void)
{
	extern char **environ;

	for (char **e = environ; *e != NULL; e++) {
		if (strncmp(*e, "CAREBOT_", 8) != 0)
			continue;
		size_t len = strcspn(*e + 8, "=");
		if (!known_env_name(*e + 8, len))
			fprintf(stderr,
			    "carebot: warning: %.*s names no setting (README 3); ignored\n",
			    (int)(len + 8), *e);
	}
}

static int
load_env(struct cb_config *cfg)
{
	char var[64], err[256];

	warn_unknown_env();
	for (size_t i = 0; i < CB_ARRAY_LEN(keys); i++) {
		size_t n = 0;

		n += (size_t)snprintf(var, sizeof var, "CAREBOT_");
		for (const char *p = keys[i].name; *p && n + 1 < sizeof var; p++)
			var[n++] = (char)toupper((unsigned char)*p);
		var[n] = '\0';
		const char *value = getenv(var);
		if (value != NULL && apply(cfg, keys[i].name, value, err, sizeof err) != CB_OK) {
			fprintf(stderr, "carebot: %s: %s\n", var, err);
			return CB_ERR;
		}
	}
	return CB_OK;
}

int
cb_config_load(struct cb_config *cfg, const char *path)
{
	static const char installed[] = CB_SYSCONFDIR "/carebot/carebot.conf";

	cb_config_defaults(cfg);
	if (path == NULL)
		path = getenv("CAREBOT_CONFIG");
	/* One that is there but unreadable (another user's, mode 0600) is an error, not "absent". */
	if (path == NULL && access(installed, F_OK) == 0)
		path = installed;
	/* A config refused is freed here: its callers exit at once, and leak nothing. */
	if ((path != NULL && load_file(cfg, path) != CB_OK) || load_env(cfg) != CB_OK) {
		cb_config_free(cfg);
		return CB_ERR;
	}
	cb_log_set_level(cfg->log_level);
	return CB_OK;
}

void
cb_config_free(struct cb_config *cfg)
{
	for (size_t i = 0; i < CB_ARRAY_LEN(keys); i++) {
		if (keys[i].kind == K_STR) {
			char **slot = (char **)((char *)cfg + keys[i].offset);
			free(*slot);
			*slot = NULL;
		}
	}
}
