/* config.h - the settings both binaries read from carebot.conf and the environment. */
#ifndef CB_CONFIG_H
#define CB_CONFIG_H

#include <stddef.h>

#include "log.h"

struct cb_config {
	char *db_host;
	int db_port;
	char *db_socket; /* empty: connect over TCP */
	char *db_name;
	char *db_user;
	char *db_password;
	int db_connect_timeout; /* seconds */
	char *publish_socket; /* nginx's publisher server; empty: do not publish */
	char *shared_file; /* the state generation of cache.h; empty: nothing is cached */
	int cache_max_age_ms; /* how long a worker may serve what it cached; 0: caching off */
	char *history_cache_file; /* the shared newest pages of history.h; empty: not kept */
	int history_cache_mb; /* the size of that file */
	int history_cache_max_age_ms; /* how long a kept page may be served; 0: not kept */
	char *chat_mutex_file; /* chat mutexes as host locks (chat-mutex.h); empty: MariaDB's */
	char *schema_dir;
	int token_ttl; /* seconds */
	int offline_after; /* seconds of silence before reassign sets an agent offline */
	int typing_interval_ms;
	char *
	    cookie_origins; /* pages besides the instance's own whose subscriptions may use the cookie */
	char *cors_origins; /* pages on other sites that may call the API from a browser */
	enum cb_log_level log_level;
};

/* Fills cfg with the built-in defaults. */
void cb_config_defaults(struct cb_config *cfg);
/*
 * Applies one "key = value" line (comments and blank lines are accepted and
 * ignored). CB_OK, or CB_ERR with a reason in err (size errlen).
 */
int cb_config_line(struct cb_config *cfg, const char *line, char *err, size_t errlen);
/*
 * Loads the defaults, then the file (path NULL: $CAREBOT_CONFIG, or the
 * installed default if it exists), then CAREBOT_<KEY> environment overrides.
 * On CB_ERR (said on stderr) nothing is left to free.
 */
int cb_config_load(struct cb_config *cfg, const char *path);
void cb_config_free(struct cb_config *cfg);

#endif
