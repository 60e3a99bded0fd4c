/*
 * db.h - the one MariaDB connection of a process: prepared statements only,
 * cached per SQL text, reconnect after the server goes away, transactions that
 * are run again on deadlock.
 *
 * Parameters are described by a type string, one letter per '?':
 *   'i' long long    'I' long long, NULL when <= 0 (optional ids)
 *   's' const char * (NULL binds SQL NULL)
 *   'b' const void *, size_t  (a blob: two arguments)
 * and for an argument that is passed but not bound (a statement built with
 * only some of its optional parts, db-chat-ops.c), one letter and no '?':
 *   '_' const char *         '-' long long
 */
#ifndef CB_DB_H
#define CB_DB_H

#include <json-c/json.h>
#include <stddef.h>

#include "config.h"

struct cb_buf;

struct cb_db;

enum cb_col_type { CB_COL_INT, CB_COL_BOOL, CB_COL_TIME, CB_COL_STR };

struct cb_val {
	int is_null;
	long long i;
	char *s; /* text of strings and formatted times (RFC 3339, ms, UTC) */
};

/* A fully fetched result: nrows x ncols values. */
struct cb_res {
	unsigned ncols, nrows;
	char **names;
	enum cb_col_type *types;
	struct cb_val *vals;
};

struct cb_db *cb_db_new(const struct cb_config *cfg);
void cb_db_free(struct cb_db *db);
/* Connects if not connected; CB_OK or CB_ERR_UNAVAILABLE. */
int cb_db_ensure(struct cb_db *db);
/* A request starts: forgets what the last one lost with a connection (below, named locks). */
void cb_db_request_start(struct cb_db *db);
/*
 * Did this request lose the connection while a write outside a transaction
 * or a COMMIT waited for its answer? Then it may have been done, and a 503
 * must not say it was not.
 */
int cb_db_outcome_unknown(const struct cb_db *db);

int cb_db_exec(struct cb_db *db, const char *sql, const char *types, ...);
int cb_db_query(struct cb_db *db, struct cb_res **out, const char *sql, const char *types, ...);
/* Like cb_db_query for a query of one row: CB_ERR_NOTFOUND (and no *out) when it returns none. */
int cb_db_query_one(struct cb_db *db, struct cb_res **out, const char *sql, const char *types, ...);
long long cb_db_insert_id(struct cb_db *db);
long long cb_db_affected(struct cb_db *db);
/* Runs text SQL with several statements (migrations only; never user input). */
int cb_db_exec_script(struct cb_db *db, const char *sql);

typedef int (*cb_db_tx_cb)(struct cb_db *db, void *arg);
/*
 * Runs fn inside BEGIN ... COMMIT. fn returning CB_OK commits; anything else
 * rolls back and is returned. On a deadlock or lock wait timeout the whole
 * transaction runs again (a few times), so fn must be restartable: it may
 * only change state through the database.
 */
int cb_db_tx(struct cb_db *db, cb_db_tx_cb fn, void *arg);

/*
 * Whether a statement may change what a cache holds (cache.h): every write
 * but those to what no cache reads (messages, new sessions, idempotency keys,
 * last_seen_at, login attempts and limits, expired sessions). Unknown writes
 * count as changes, so a new statement can only make caching more cautious.
 * After a successful one, the state generation is bumped at once, or at
 * COMMIT inside a transaction.
 */
int cb_db_sql_changes_state(const char *sql);

/*
 * The per-chat mutex that orders real-time events (contract section 7).
 * The host's record lock on byte <id> of chat_mutex_file (chat-mutex.h),
 * or without that setting a MariaDB named lock "carebot.chat.<id>". Taken
 * before anything in the transaction touches the chat (before its row
 * locks and before a message id is allocated) and held past COMMIT until
 * the request has published its events. So the changes of one chat, their message ids and their publishes
 * all happen in the same order, across every worker and carebot-admin.
 * Lock order: department rows, then chat mutexes, then rows (chats, then
 * users; db-assign.h). A holder past COMMIT only reads and publishes (one
 * agent's mutex at a time, see cb_db_agent_mutex), so it never waits on a
 * waiter.
 * Re-taking a held mutex is a no-op. CB_ERR_RETRY if it cannot be had in 10 s.
 */
int cb_db_chat_mutex(struct cb_db *db, long long chat_id);
/*
 * Releases every chat mutex this connection holds (after publishing, or on
 * rollback). A named lock's release is sent, not waited for: its answer is
 * read before the connection's next statement.
 */
void cb_db_chat_mutex_release(struct cb_db *db);
/*
 * An agent's mutex (chat-mutex.h; a MariaDB named lock without
 * chat_mutex_file), for after COMMIT only: cb_db_events_publish holds it to
 * read the agent and publish its agent.status. CB_OK, or CB_ERR_RETRY if it
 * was not had in 5 s.
 */
int cb_db_agent_mutex(struct cb_db *db, long long agent_id);
void cb_db_agent_mutex_release(struct cb_db *db, long long agent_id);

void cb_res_free(struct cb_res *res);
int cb_res_col(const struct cb_res *res, const char *name);
const struct cb_val *cb_res_val(const struct cb_res *res, unsigned row, const char *name);
long long cb_res_int(const struct cb_res *res, unsigned row, const char *name);
const char *cb_res_str(const struct cb_res *res, unsigned row, const char *name);
/*
 * One row as a JSON object keyed by column name: integers, booleans
 * (TINYINT), times as RFC 3339 strings, NULL as null. Columns whose name
 * starts with '_' are helpers for the caller and are left out.
 */
json_object *cb_res_row_json(const struct cb_res *res, unsigned row);
/* Every row, as a JSON array. */
json_object *cb_res_json_array(const struct cb_res *res);
/*
 * Appends the rows as the text cb_json_text would make of cb_res_json_array
 * (rows in reverse order when reverse is set), without building the objects:
 * the cheap way to answer with many rows.
 */
void cb_res_write_array(const struct cb_res *res, int reverse, struct cb_buf *out);

#endif
