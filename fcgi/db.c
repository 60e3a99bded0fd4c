/* db.c - the MariaDB connection, its statement cache and typed queries. */
#include <errno.h>
#include <mysql.h>
#include <errmsg.h>
#include <mysqld_error.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "chat-mutex.h"
#include "db.h"
#include "history.h"
#include "json.h"
#include "log.h"
#include "util.h"

#define STMT_CACHE 256
#define MAX_PARAMS 32 /* an agent's chat list with every filter binds 26 */
#define TX_ATTEMPTS 6
/* The server's my_base.h, not in the client's headers: MariaDB passes this
 * engine error on as it is for an AUTO_INCREMENT that has no next value. */
#define HA_ERR_AUTOINC_ERANGE 167

struct cached_stmt {
	const char *sql; /* keyed by the address of the (literal) SQL text */
	MYSQL_STMT *stmt;
};

struct cb_db {
	const struct cb_config *cfg;
	MYSQL *conn;
	int in_tx;
	int changed; /* the open transaction changed state that caches hold */
	int outcome_unknown; /* a write or COMMIT lost its answer with the connection */
	long long insert_id, affected; /* affected counts matched rows (CLIENT_FOUND_ROWS) */
	long long *mutexes; /* chat mutexes held (cb_db_chat_mutex) */
	size_t nmutexes, capmutexes;
	int mutexes_lost; /* named locks held died with a connection: no read is retried */
	int unread; /* the release of the mutexes was sent; its answer is still to be read */
	struct cached_stmt cache[STMT_CACHE];
};

/*
 * Every connection works in UTC and READ COMMITTED: each statement sees the
 * latest committed rows, and what must not change under us is locked
 * explicitly (SELECT ... FOR UPDATE) by the data layer.
 */
static const char init_sql[] =
    "SET time_zone = '+00:00', SESSION tx_isolation = 'READ-COMMITTED', "
    "SESSION innodb_lock_wait_timeout = 10, "
    "SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO'";

struct cb_db *
cb_db_new(const struct cb_config *cfg)
{
	struct cb_db *db = xcalloc(1, sizeof *db);

	db->cfg = cfg;
	return db;
}

/*
 * Every change to a chat, its state or its messages, is made under the
 * chat's mutex: once committed, the chats whose mutexes are held may have
 * changed, and the shared history pages of them are stale (history.h).
 */
static void
chats_changed(struct cb_db *db)
{
	for (size_t i = 0; i < db->nmutexes; i++)
		cb_history_bump(db->mutexes[i]);
}

static void
disconnect(struct cb_db *db)
{
	for (size_t i = 0; i < STMT_CACHE; i++) {
		if (db->cache[i].stmt != NULL)
			mysql_stmt_close(db->cache[i].stmt);
		db->cache[i].stmt = NULL;
		db->cache[i].sql = NULL;
	}
	if (db->conn != NULL)
		mysql_close(db->conn);
	db->conn = NULL;
	db->unread = 0;
	/*
	 * in_tx stays: the transaction died with the connection, and may_retry
	 * must still see that a statement failed inside one (cb_db_tx clears it).
	 * The host's chat mutexes stay held too, until the request ends
	 * (cb_db_chat_mutex_release): whoever retries on a new connection still
	 * owns its chats. Named locks die with the connection; a request that
	 * held one must not go on as if it still did.
	 *
	 * Either way, what the connection carried last may have changed the
	 * held chats (a COMMIT or a write whose answer is lost: note_lost_answer),
	 * so their kept pages are announced stale now, while the list still
	 * names them: a page read again costs a read, a stale one misses a change.
	 */
	chats_changed(db);
	if (db->nmutexes > 0 && !cb_chat_mutex_on()) {
		db->nmutexes = 0;
		db->mutexes_lost = 1;
	}
}

/*
 * Reads the answer to the release sent by cb_db_chat_mutex_release. Should
 * the connection have died meanwhile, the locks died with it: start afresh.
 */
static void
settle(struct cb_db *db)
{
	db->unread = 0;
	if (mysql_read_query_result(db->conn) != 0) {
		cb_warn("database: releasing the chat mutexes failed: %s; reconnecting",
		    mysql_error(db->conn));
		disconnect(db);
	}
}

/*
 * A chat mutex release still unread (cb_db_chat_mutex_release) is read
 * first: a socket closed with its answer unread is reset, and MariaDB logs
 * an aborted connection instead of a quit.
 */
void
cb_db_free(struct cb_db *db)
{
	if (db == NULL)
		return;
	if (db->conn != NULL && db->unread)
		settle(db);
	disconnect(db);
	free(db->mutexes);
	free(db);
}

int
cb_db_ensure(struct cb_db *db)
{
	const struct cb_config *cfg = db->cfg;
	unsigned timeout = (unsigned)cfg->db_connect_timeout, rw_timeout = 30;
	int use_socket = cfg->db_socket[0] != '\0';

	if (db->conn != NULL && db->unread)
		settle(db);
	if (db->conn != NULL)
		return CB_OK;
	db->conn = mysql_init(NULL);
	if (db->conn == NULL)
		return CB_ERR_UNAVAILABLE;
	mysql_options(db->conn, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	mysql_options(db->conn, MYSQL_OPT_READ_TIMEOUT, &rw_timeout);
	mysql_options(db->conn, MYSQL_OPT_WRITE_TIMEOUT, &rw_timeout);
	mysql_options(db->conn, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	mysql_options(db->conn, MYSQL_INIT_COMMAND, init_sql);
	if (mysql_real_connect(db->conn, use_socket ? "localhost" : cfg->db_host, cfg->db_user,
	        cfg->db_password, cfg->db_name, use_socket ? 0 : (unsigned)cfg->db_port,
	        use_socket ? cfg->db_socket : NULL,
	        CLIENT_MULTI_STATEMENTS | CLIENT_FOUND_ROWS) == NULL) {
		cb_warn("database: cannot connect: %s", mysql_error(db->conn));
		mysql_close(db->conn);
		db->conn = NULL;
		return CB_ERR_UNAVAILABLE;
	}
	return CB_OK;
}

void
cb_db_request_start(struct cb_db *db)
{
	db->outcome_unknown = 0;
	db->mutexes_lost = 0;
}

int
cb_db_outcome_unknown(const struct cb_db *db)
{
	return db != NULL && db->outcome_unknown;
}

/* Logs a statement's failure: what, the error and its text, the SQL, and a hint. */
static void
log_failure(struct cb_db *db, unsigned err, const char *msg, const char *what, const char *sql,
    const char *hint)
{
	if (msg == NULL)
		msg = db->conn ? mysql_error(db->conn) : "";
	cb_error("database: %s failed (%u): %s [%s]%s", what, err, msg, sql, hint);
}

/*
 * Maps a server or client error to our codes; a lost connection is dropped.
 * msg: the error's text when it is no longer the connection's (a statement
 * closed already), else NULL.
 */
static int
classify_msg(struct cb_db *db, unsigned err, const char *msg, const char *what, const char *sql)
{
	switch (err) {
	case ER_DUP_ENTRY: return CB_ERR_DUPLICATE;
	case ER_LOCK_DEADLOCK:
	case ER_LOCK_WAIT_TIMEOUT: return CB_ERR_RETRY;
	case ER_NO_SUCH_TABLE:
	case ER_BAD_FIELD_ERROR:
		/* New workers on a database not migrated yet: said, and no 500. */
		log_failure(db, err, msg, what, sql,
		    ": is the schema older than this program? run carebot-admin migrate");
		return CB_ERR_SCHEMA;
	case ER_RECORD_FILE_FULL:
	case ER_DISK_FULL:
	case ER_ERROR_ON_WRITE:
	case ER_TEMP_FILE_WRITE_FAILURE:
	case ER_GET_ERRNO:
	case ER_OUTOFMEMORY:
	case ER_OUT_OF_SORTMEMORY:
	case ER_OUT_OF_RESOURCES:
		/*
		 * The server is up but has no room for the statement (its disk
		 * full, above all; or its memory, or an engine's write failed):
		 * the statement did nothing, and the client gets the contract's
		 * 503 until room is made, not a 500.
		 */
		log_failure(db, err, msg, what, sql, ": is MariaDB's disk (or memory) full?");
		return CB_ERR_FULL;
	case ER_AUTOINC_READ_FAILED:
	case HA_ERR_AUTOINC_ERANGE:
		/*
		 * An AUTO_INCREMENT at its maximum (2^63 - 1, or set there by
		 * hand): the INSERT did nothing, and none will until an operator
		 * acts, so it is the contract's 503, not a 500 (README 9, "Ids").
		 */
		log_failure(db, err, msg, what, sql,
		    ": a table has used up its ids (its AUTO_INCREMENT is at BIGINT's maximum)");
		return CB_ERR_NO_IDS;
	case ER_CONNECTION_KILLED:
	case ER_SERVER_SHUTDOWN:
	case 4031: /* ER_CLIENT_INTERACTION_TIMEOUT */ break;
	default:
		if (err < CR_MIN_ERROR || err > CR_MAX_ERROR) {
			log_failure(db, err, msg, what, sql, "");
			return CB_ERR;
		}
	}
	cb_warn("database: connection lost during %s (%u)", what, err);
	disconnect(db);
	return CB_ERR_UNAVAILABLE;
}

static int
classify(struct cb_db *db, unsigned err, const char *what, const char *sql)
{
	return classify_msg(db, err, NULL, what, sql);
}

static MYSQL_STMT *
prepare(struct cb_db *db, const char *sql, int *rc)
{
	size_t h = ((uintptr_t)sql >> 3) % STMT_CACHE;

	for (size_t n = 0; n < STMT_CACHE; n++, h = (h + 1) % STMT_CACHE) {
		if (db->cache[h].sql == sql)
			return db->cache[h].stmt;
		if (db->cache[h].sql == NULL)
			break;
	}
	MYSQL_STMT *stmt = mysql_stmt_init(db->conn);
	if (stmt == NULL) {
		*rc = classify(db, mysql_errno(db->conn), "prepare", sql);
		return NULL;
	}
	if (mysql_stmt_prepare(stmt, sql, strlen(sql)) != 0) {
		unsigned err = mysql_stmt_errno(stmt);
		char msg[MYSQL_ERRMSG_SIZE];

		snprintf(msg, sizeof msg, "%s", mysql_stmt_error(stmt));
		mysql_stmt_close(stmt);
		*rc = classify_msg(db, err, msg, "prepare", sql);
		return NULL;
	}
	my_bool update_max = 1;
	mysql_stmt_attr_set(stmt, STMT_ATTR_UPDATE_MAX_LENGTH, &update_max);
	if (db->cache[h].sql == NULL) {
		db->cache[h].sql = sql;
		db->cache[h].stmt = stmt;
	} else {
		/* The cache is full: statements are fixed text, so this is a bug. */
		cb_error("database: statement cache full");
		abort();
	}
	return stmt;
}

struct params {
	MYSQL_BIND bind[MAX_PARAMS];
	long long ints[MAX_PARAMS];
	my_bool nulls[MAX_PARAMS];
	unsigned long lens[MAX_PARAMS];
};

/* How many of the letters of types bind a '?' (all but '_' and '-'). */
static unsigned
bound_count(const char *types)
{
	unsigned n = 0;

	for (; *types != '\0'; types++)
		n += *types != '_' && *types != '-';
	return n;
}

static void
bind_params(struct params *p, const char *types, va_list ap)
{
	unsigned i = 0;

	memset(p->bind, 0, sizeof p->bind);
	for (const char *t = types; *t != '\0'; t++) {
		MYSQL_BIND *b = &p->bind[i];
		const char *s;

		/* An argument the statement does not use (db.h): taken, not bound. */
		if (*t == '_') {
			(void)va_arg(ap, const char *);
			continue;
		}
		if (*t == '-') {
			(void)va_arg(ap, long long);
			continue;
		}
		if (i >= MAX_PARAMS)
			abort();
		p->nulls[i] = 0;
		b->is_null = &p->nulls[i];
		switch (*t) {
		case 'i':
		case 'I':
			p->ints[i] = va_arg(ap, long long);
			b->buffer_type = MYSQL_TYPE_LONGLONG;
			b->buffer = &p->ints[i];
			p->nulls[i] = *t == 'I' && p->ints[i] <= 0;
			break;
		case 's':
			s = va_arg(ap, const char *);
			b->buffer_type = MYSQL_TYPE_STRING;
			b->buffer = (void *)s;
			p->lens[i] = s ? (unsigned long)strlen(s) : 0;
			b->length = &p->lens[i];
			p->nulls[i] = s == NULL;
			break;
		case 'b':
			b->buffer_type = MYSQL_TYPE_BLOB;
			b->buffer = va_arg(ap, void *);
			p->lens[i] = (unsigned long)va_arg(ap, size_t);
			b->length = &p->lens[i];
			break;
		default: cb_error("database: bad parameter type '%c'", *t); abort();
		}
		i++;
	}
}

int
cb_db_sql_changes_state(const char *sql)
{
	static const char *const quiet[] = {
	    "SELECT ",
	    "INSERT INTO messages ",
	    "INSERT INTO sessions ",
	    "INSERT INTO idempotency_keys ",
	    "UPDATE idempotency_keys ",
	    "DELETE FROM idempotency_keys ",
	    "INSERT INTO login_limits ",
	    "INSERT INTO login_attempts ",
	    "DELETE FROM login_attempts ",
	    "DELETE FROM login_limits ",
	    "DELETE FROM sessions WHERE expires_at <= ",
	    "UPDATE users SET last_seen_at = NOW(3) WHERE ",
	};

	for (size_t i = 0; i < CB_ARRAY_LEN(quiet); i++)
		if (strncmp(sql, quiet[i], strlen(quiet[i])) == 0)
			return 0;
	return 1;
}

/* After a successful statement: a change outside a transaction is committed already. */
static void
note_change(struct cb_db *db, const char *sql)
{
	if (!db->in_tx && strncmp(sql, "SELECT ", 7) != 0)
		chats_changed(db);
	if (!cb_db_sql_changes_state(sql))
		return;
	if (db->in_tx)
		db->changed = 1;
	else
		cb_cache_bump();
}

/* Before attempt n (from 1) of what deadlocked: a little wait, with jitter, so the two sides part. */
static void
back_off(int attempt)
{
	struct timespec ts = {0, (long)(1 + rand() % (4 << attempt)) * 1000000L};

	nanosleep(&ts, NULL);
}

/*
 * Is a failed statement safe to run again, and worth it? A read or a START
 * that lost the connection, once, on a new one: outside a transaction
 * nothing of the request dies with the connection but MariaDB's named locks
 * (the host's chat mutexes stay held, disconnect), so a request that held
 * one is not retried. That covers a connection the server closed while we
 * were idle (a restarted MariaDB) and the reads after a commit that make
 * the answer and the events. A write is never run twice. A deadlock outside
 * a transaction, which rolled back just this statement (a heartbeat's
 * UPDATE meeting an assignment), up to TX_ATTEMPTS times. In a transaction
 * the whole transaction is run again instead (cb_db_tx).
 */
static int
may_retry(const struct cb_db *db, const char *sql, int rc, unsigned err, int attempt)
{
	if (rc == CB_ERR_RETRY)
		return err == ER_LOCK_DEADLOCK && !db->in_tx && attempt + 1 < TX_ATTEMPTS;
	return rc == CB_ERR_UNAVAILABLE && attempt == 0 && !db->in_tx && !db->mutexes_lost &&
	    (strncmp(sql, "SELECT", 6) == 0 || strncmp(sql, "START", 5) == 0);
}

/*
 * A statement sent that lost the connection before its answer: a write
 * outside a transaction, or a COMMIT, may have been done (a write in a
 * transaction died with it).
 */
static void
note_lost_answer(struct cb_db *db, const char *sql, int rc)
{
	static const char *const writes[] = {"INSERT", "UPDATE", "DELETE", "REPLACE"};
	int write = 0, commit = strncmp(sql, "COMMIT", 6) == 0;

	for (size_t i = 0; i < CB_ARRAY_LEN(writes); i++)
		write |= strncmp(sql, writes[i], strlen(writes[i])) == 0;
	if (rc != CB_ERR_UNAVAILABLE || !((write && !db->in_tx) || commit))
		return;
	db->outcome_unknown = 1;
	/*
	 * If it was done, it is announced as a change that answered would be
	 * (note_change, cb_db_tx): else every worker goes on serving the state
	 * it replaced, a closed chat taking posts, until cache_max_age_ms. The
	 * held chats' pages were announced stale by disconnect already.
	 */
	if (commit ? db->changed : cb_db_sql_changes_state(sql))
		cb_cache_bump();
}

static int
execute(struct cb_db *db, MYSQL_STMT **out, const char *sql, const char *types, va_list ap)
{
	struct params p;
	int rc = CB_ERR_UNAVAILABLE;

	for (int attempt = 0;; attempt++) {
		MYSQL_STMT *stmt;
		unsigned err = 0;

		if (attempt > 0 && rc == CB_ERR_RETRY) {
			cb_info(
			    "database: statement run again after a deadlock (attempt %d)", attempt);
			back_off(attempt);
		}
		if (cb_db_ensure(db) != CB_OK)
			return CB_ERR_UNAVAILABLE;
		stmt = prepare(db, sql, &rc);
		if (stmt != NULL && mysql_stmt_param_count(stmt) != bound_count(types)) {
			cb_error("bug: %lu parameters, %u types ('%s') [%s]",
			    mysql_stmt_param_count(stmt), bound_count(types), types, sql);
			return CB_ERR;
		}
		if (stmt != NULL) {
			va_list aq;

			va_copy(aq, ap);
			bind_params(&p, types, aq);
			va_end(aq);
			if (mysql_stmt_bind_param(stmt, p.bind) != 0 ||
			    mysql_stmt_execute(stmt) != 0) {
				err = mysql_stmt_errno(stmt);
				rc = classify(db, err, "execute", sql);
				note_lost_answer(db, sql, rc);
			} else {
				rc = CB_OK;
			}
		}
		if (rc == CB_OK) {
			note_change(db, sql);
			db->affected = (long long)mysql_stmt_affected_rows(stmt);
			db->insert_id = (long long)mysql_stmt_insert_id(stmt);
			*out = stmt;
			return CB_OK;
		}
		if (!may_retry(db, sql, rc, err, attempt))
			return rc;
	}
}

int
cb_db_exec(struct cb_db *db, const char *sql, const char *types, ...)
{
	MYSQL_STMT *stmt;
	va_list ap;

	va_start(ap, types);
	int rc = execute(db, &stmt, sql, types, ap);
	va_end(ap);
	if (rc == CB_OK)
		mysql_stmt_free_result(stmt);
	return rc;
}

long long
cb_db_insert_id(struct cb_db *db)
{
	return db->insert_id;
}

long long
cb_db_affected(struct cb_db *db)
{
	return db->affected;
}

static enum cb_col_type
col_type(const MYSQL_FIELD *f)
{
	switch (f->type) {
	case MYSQL_TYPE_TINY: return CB_COL_BOOL;
	case MYSQL_TYPE_SHORT:
	case MYSQL_TYPE_LONG:
	case MYSQL_TYPE_INT24:
	case MYSQL_TYPE_LONGLONG:
	case MYSQL_TYPE_YEAR:
	case MYSQL_TYPE_NEWDECIMAL:
	case MYSQL_TYPE_DECIMAL: return CB_COL_INT;
	case MYSQL_TYPE_DATETIME:
	case MYSQL_TYPE_TIMESTAMP:
	case MYSQL_TYPE_DATE: return CB_COL_TIME;
	default: return CB_COL_STR;
	}
}

/* Column buffers for one fetch; strings are sized by the stored max_length. */
struct row_buf {
	unsigned ncols; /* how many row_buf_bind made: 0 until it has run */
	MYSQL_BIND *bind;
	my_bool *nulls;
	unsigned long *lens;
	long long *ints;
	MYSQL_TIME *times;
	char **strs;
};

static void
format_time(const MYSQL_TIME *t, char out[32])
{
	cb_format_utc(out, t->year, t->month, t->day, t->hour, t->minute, t->second,
	    (unsigned long)(t->second_part / 1000));
}

/*
 * Gives every column of the result a buffer and a type: integers and booleans
 * as LONGLONG (DECIMAL, which SUM() returns, as text parsed afterwards),
 * times as MYSQL_TIME, anything else as text sized by the stored max_length.
 */
static void
row_buf_bind(struct row_buf *rb, struct cb_res *res, const MYSQL_FIELD *fields)
{
	unsigned n = res->ncols;

	res->names = xcalloc(n, sizeof *res->names);
	res->types = xcalloc(n, sizeof *res->types);
	rb->bind = xcalloc(n, sizeof *rb->bind);
	rb->nulls = xcalloc(n, sizeof *rb->nulls);
	rb->lens = xcalloc(n, sizeof *rb->lens);
	rb->ints = xcalloc(n, sizeof *rb->ints);
	rb->times = xcalloc(n, sizeof *rb->times);
	rb->strs = xcalloc(n, sizeof *rb->strs);
	rb->ncols = n;
	for (unsigned c = 0; c < n; c++) {
		MYSQL_BIND *b = &rb->bind[c];
		enum cb_col_type type = col_type(&fields[c]);

		res->names[c] = xstrdup(fields[c].name);
		res->types[c] = type;
		b->is_null = &rb->nulls[c];
		b->length = &rb->lens[c];
		if (type == CB_COL_TIME) {
			b->buffer_type = MYSQL_TYPE_DATETIME;
			b->buffer = &rb->times[c];
		} else if (type != CB_COL_STR && fields[c].type != MYSQL_TYPE_NEWDECIMAL &&
		    fields[c].type != MYSQL_TYPE_DECIMAL) {
			b->buffer_type = MYSQL_TYPE_LONGLONG;
			b->buffer = &rb->ints[c];
		} else {
			b->buffer_type = MYSQL_TYPE_STRING;
			b->buffer_length = type == CB_COL_STR ? fields[c].max_length + 1 : 72;
			b->buffer = rb->strs[c] = xmalloc(b->buffer_length);
		}
	}
}

static void
row_buf_free(struct row_buf *rb)
{
	for (unsigned c = 0; c < rb->ncols; c++)
		free(rb->strs[c]);
	free(rb->bind), free(rb->nulls), free(rb->lens), free(rb->ints), free(rb->times),
	    free(rb->strs);
}

/* Appends the row just fetched into rb to res, as owned values. */
static void
row_buf_copy(const struct row_buf *rb, struct cb_res *res, size_t *cap)
{
	unsigned n = res->ncols;

	if ((size_t)(res->nrows + 1) * n > *cap) {
		*cap = *cap ? *cap * 2 : (size_t)n * 8;
		res->vals = xrealloc(res->vals, *cap * sizeof *res->vals);
	}
	struct cb_val *row = &res->vals[(size_t)res->nrows * n];
	for (unsigned c = 0; c < n; c++) {
		struct cb_val *v = &row[c];

		memset(v, 0, sizeof *v);
		v->is_null = rb->nulls[c];
		if (v->is_null)
			continue;
		if (res->types[c] == CB_COL_TIME) {
			char when[32];

			format_time(&rb->times[c], when);
			v->s = xstrdup(when);
		} else if (res->types[c] != CB_COL_STR) {
			v->i = rb->strs[c] ? strtoll(rb->strs[c], NULL, 10) : rb->ints[c];
		} else {
			/* lens is the value's whole length, also when the buffer cut it */
			unsigned long len = rb->lens[c] < rb->bind[c].buffer_length
			    ? rb->lens[c]
			    : rb->bind[c].buffer_length - 1;
			v->s = xstrndup(rb->strs[c], len);
		}
	}
	res->nrows++;
}

/*
 * A server error that comes after the result's columns (the message
 * INSERT ... RETURNING on a full disk: "The table 'messages' is full")
 * leaves libmariadb's statement out of step with the server: the next
 * execute of it waited for an answer that never came, until the 30 s read
 * timeout, then 503 (a full disk made every worker's next post hang so, even
 * after the disk had room again; ProxySQL's test
 * reg_test_mariadb_stmt_store_result-t describes the same client bug). A
 * reset puts it back in step. A client error (the connection lost) is
 * classify's to handle; a reset that fails drops the connection.
 */
static void
resync(struct cb_db *db, MYSQL_STMT *stmt, unsigned err)
{
	if ((err >= CR_MIN_ERROR && err <= CR_MAX_ERROR) || mysql_stmt_reset(stmt) == 0)
		return;
	cb_warn("database: resetting a statement after its error failed: %s; reconnecting",
	    mysql_stmt_error(stmt));
	disconnect(db);
}

static int
fetch_all(struct cb_db *db, MYSQL_STMT *stmt, const char *sql, struct cb_res **out)
{
	MYSQL_RES *meta = mysql_stmt_result_metadata(stmt);
	struct cb_res *res = xcalloc(1, sizeof *res);
	struct row_buf rb = {0};
	size_t cap = 0;
	const char *failed = NULL; /* the step that failed */
	unsigned err = 0;
	char msg[512];

	*out = res;
	if (meta == NULL)
		return CB_OK;
	if (mysql_stmt_store_result(stmt) != 0) {
		failed = "store";
		goto out;
	}
	res->ncols = mysql_num_fields(meta);
	row_buf_bind(&rb, res, mysql_fetch_fields(meta));
	if (mysql_stmt_bind_result(stmt, rb.bind) != 0) {
		failed = "bind result";
		goto out;
	}
	for (;;) {
		int f = mysql_stmt_fetch(stmt);
		if (f == MYSQL_NO_DATA)
			break;
		if (f != 0 && f != MYSQL_DATA_TRUNCATED) {
			failed = "fetch";
			goto out;
		}
		row_buf_copy(&rb, res, &cap);
	}
out:
	/* The error is read first: classify may drop the connection, and stmt with it. */
	if (failed != NULL) {
		err = mysql_stmt_errno(stmt);
		snprintf(msg, sizeof msg, "%s", mysql_stmt_error(stmt));
	}
	mysql_stmt_free_result(stmt);
	mysql_free_result(meta);
	row_buf_free(&rb);
	if (failed == NULL)
		return CB_OK;
	resync(db, stmt, err);
	cb_res_free(res);
	*out = NULL;
	return classify_msg(db, err, msg, failed, sql);
}

static int
vquery(struct cb_db *db, struct cb_res **out, const char *sql, const char *types, va_list ap)
{
	MYSQL_STMT *stmt;
	va_list again;

	*out = NULL;
	va_copy(again, ap);
	int rc = execute(db, &stmt, sql, types, ap);
	if (rc == CB_OK) {
		rc = fetch_all(db, stmt, sql, out);
		/* The rows lost with the connection on their way: the read once more, as execute would. */
		if (rc == CB_ERR_UNAVAILABLE && may_retry(db, sql, rc, 0, 0) &&
		    (rc = execute(db, &stmt, sql, types, again)) == CB_OK)
			rc = fetch_all(db, stmt, sql, out);
	}
	va_end(again);
	return rc;
}

int
cb_db_query(struct cb_db *db, struct cb_res **out, const char *sql, const char *types, ...)
{
	va_list ap;

	va_start(ap, types);
	int rc = vquery(db, out, sql, types, ap);
	va_end(ap);
	return rc;
}

int
cb_db_query_one(struct cb_db *db, struct cb_res **out, const char *sql, const char *types, ...)
{
	va_list ap;

	va_start(ap, types);
	int rc = vquery(db, out, sql, types, ap);
	va_end(ap);
	if (rc == CB_OK && (*out)->nrows == 0) {
		cb_res_free(*out);
		*out = NULL;
		rc = CB_ERR_NOTFOUND;
	}
	return rc;
}

int
cb_db_exec_script(struct cb_db *db, const char *sql)
{
	int rc = cb_db_ensure(db);

	if (rc != CB_OK)
		return rc;
	if (mysql_real_query(db->conn, sql, strlen(sql)) != 0)
		return classify(db, mysql_errno(db->conn), "script", "(migration)");
	/* Drain every result of the multi-statement text; stop at the first error. */
	for (;;) {
		MYSQL_RES *r = mysql_store_result(db->conn);
		if (r != NULL)
			mysql_free_result(r);
		int more = mysql_next_result(db->conn);
		if (more > 0)
			rc = classify(db, mysql_errno(db->conn), "script", "(migration)");
		if (more != 0)
			break;
	}
	/* A script may have changed anything, even when it failed half-way. */
	cb_cache_bump();
	cb_history_bump_all();
	return rc;
}

static int
simple(struct cb_db *db, const char *sql)
{
	int rc = cb_db_ensure(db);

	if (rc != CB_OK)
		return rc;
	if (mysql_real_query(db->conn, sql, strlen(sql)) != 0) {
		unsigned err = mysql_errno(db->conn);
		rc = classify(db, err, "transaction control", sql);
		note_lost_answer(db, sql, rc);
		if (may_retry(db, sql, rc, err, 0) && cb_db_ensure(db) == CB_OK &&
		    mysql_real_query(db->conn, sql, strlen(sql)) == 0)
			return CB_OK;
		return rc;
	}
	return CB_OK;
}

int
cb_db_tx(struct cb_db *db, cb_db_tx_cb fn, void *arg)
{
	int rc = CB_ERR_RETRY;

	for (int attempt = 0; attempt < TX_ATTEMPTS && rc == CB_ERR_RETRY; attempt++) {
		if (attempt > 0)
			back_off(attempt);
		rc = simple(db, "START TRANSACTION");
		if (rc != CB_OK)
			return rc;
		db->in_tx = 1;
		db->changed = 0;
		rc = fn(db, arg);
		if (rc == CB_OK)
			rc = simple(db, "COMMIT");
		if (rc == CB_OK)
			chats_changed(db);
		if (rc == CB_OK && db->changed)
			cb_cache_bump();
		if (db->conn != NULL && rc != CB_OK) {
			simple(db, "ROLLBACK");
			/* Nothing of a rolled-back attempt is published: let others go first. */
			cb_db_chat_mutex_release(db);
		}
		db->in_tx = 0;
		if (rc == CB_ERR_RETRY)
			cb_info(
			    "database: transaction retried: a deadlock, a lock wait timeout or a row changed under it (attempt %d)",
			    attempt + 1);
	}
	return rc;
}

/* The MariaDB named lock "carebot.<kind>.<id>", when the instance has no chat_mutex_file. */
static int
named_lock(struct cb_db *db, const char *kind, long long id, int seconds)
{
	struct cb_res *res;
	int rc = cb_db_query(db, &res, "SELECT GET_LOCK(CONCAT('carebot.', ?, '.', ?), ?) AS got",
	    "sii", kind, id, (long long)seconds);

	if (rc != CB_OK)
		return rc;
	int got = res->nrows == 1 && cb_res_int(res, 0, "got") == 1;
	cb_res_free(res);
	if (!got) {
		cb_warn("%s %lld: mutex not granted within %d s; retrying", kind, id, seconds);
		return CB_ERR_RETRY;
	}
	return CB_OK;
}

int
cb_db_chat_mutex(struct cb_db *db, long long chat_id)
{
	for (size_t i = 0; i < db->nmutexes; i++)
		if (db->mutexes[i] == chat_id)
			return CB_OK;
	int rc = cb_chat_mutex_on() ? cb_chat_mutex_take(chat_id, 10000)
	                            : named_lock(db, "chat", chat_id, 10);
	if (rc != CB_OK)
		return rc;
	if (db->nmutexes == db->capmutexes) {
		db->capmutexes = db->capmutexes ? db->capmutexes * 2 : 8;
		db->mutexes = xrealloc(db->mutexes, db->capmutexes * sizeof *db->mutexes);
	}
	db->mutexes[db->nmutexes++] = chat_id;
	return CB_OK;
}

int
cb_db_agent_mutex(struct cb_db *db, long long agent_id)
{
	return cb_chat_mutex_on() ? cb_agent_mutex_take(agent_id, 5000)
	                          : named_lock(db, "agent", agent_id, 5);
}

void
cb_db_agent_mutex_release(struct cb_db *db, long long agent_id)
{
	struct cb_res *res;

	if (cb_chat_mutex_on()) {
		cb_agent_mutex_release(agent_id);
		return;
	}
	if (cb_db_query(db, &res, "SELECT RELEASE_LOCK(CONCAT('carebot.agent.', ?)) AS done", "i",
	        agent_id) == CB_OK)
		cb_res_free(res);
}

/*
 * The host's mutexes (chat-mutex.h) are dropped at once. A named lock's
 * release is sent without waiting for its answer: the worker goes on to
 * finish its response and take the next request while MariaDB releases, and
 * cb_db_ensure reads the answer before the connection's next statement.
 */
void
cb_db_chat_mutex_release(struct cb_db *db)
{
	static const char sql[] = "DO RELEASE_ALL_LOCKS()";

	if (db->conn != NULL && db->unread)
		settle(db);
	db->mutexes_lost = 0;
	if (db->nmutexes == 0)
		return;
	db->nmutexes = 0;
	if (cb_chat_mutex_on()) {
		cb_chat_mutex_release_all();
		return;
	}
	if (db->conn == NULL)
		return;
	if (mysql_send_query(db->conn, sql, sizeof sql - 1) == 0) {
		db->unread = 1;
		return;
	}
	cb_warn(
	    "database: cannot release the chat mutexes: %s; reconnecting", mysql_error(db->conn));
	disconnect(db);
}

void
cb_res_free(struct cb_res *res)
{
	if (res == NULL)
		return;
	for (size_t i = 0; i < (size_t)res->nrows * res->ncols; i++)
		free(res->vals[i].s);
	for (unsigned c = 0; c < res->ncols; c++)
		free(res->names[c]);
	free(res->names);
	free(res->types);
	free(res->vals);
	free(res);
}

int
cb_res_col(const struct cb_res *res, const char *name)
{
	for (unsigned c = 0; c < res->ncols; c++)
		if (strcmp(res->names[c], name) == 0)
			return (int)c;
	return -1;
}

const struct cb_val *
cb_res_val(const struct cb_res *res, unsigned row, const char *name)
{
	int c = cb_res_col(res, name);

	if (c < 0 || row >= res->nrows) {
		cb_error("database: no column '%s' in row %u", name, row);
		abort();
	}
	return &res->vals[(size_t)row * res->ncols + (unsigned)c];
}

long long
cb_res_int(const struct cb_res *res, unsigned row, const char *name)
{
	const struct cb_val *v = cb_res_val(res, row, name);

	return v->is_null ? 0 : v->i;
}

const char *
cb_res_str(const struct cb_res *res, unsigned row, const char *name)
{
	const struct cb_val *v = cb_res_val(res, row, name);

	return v->is_null ? NULL : v->s;
}

json_object *
cb_res_row_json(const struct cb_res *res, unsigned row)
{
	json_object *obj = json_object_new_object();

	for (unsigned c = 0; c < res->ncols; c++) {
		const struct cb_val *v = &res->vals[(size_t)row * res->ncols + c];
		json_object *j = NULL;

		if (res->names[c][0] == '_')
			continue;
		if (!v->is_null) {
			switch (res->types[c]) {
			case CB_COL_INT: j = json_object_new_int64(v->i); break;
			case CB_COL_BOOL: j = json_object_new_boolean(v->i != 0); break;
			case CB_COL_TIME:
			case CB_COL_STR: j = json_object_new_string(v->s); break;
			}
		}
		json_object_object_add(obj, res->names[c], j);
	}
	return obj;
}

json_object *
cb_res_json_array(const struct cb_res *res)
{
	json_object *arr = json_object_new_array_ext((int)res->nrows);

	for (unsigned r = 0; r < res->nrows; r++)
		json_object_array_add(arr, cb_res_row_json(res, r));
	return arr;
}

/* The same mapping as cb_res_row_json, written as text. */
static void
write_row(const struct cb_res *res, unsigned row, struct cb_buf *out)
{
	int first = 1;

	cb_buf_append(out, "{", 1);
	for (unsigned c = 0; c < res->ncols; c++) {
		const struct cb_val *v = &res->vals[(size_t)row * res->ncols + c];

		if (res->names[c][0] == '_')
			continue;
		if (!first)
			cb_buf_append(out, ",", 1);
		first = 0;
		cb_json_write_string(out, res->names[c]);
		cb_buf_append(out, ":", 1);
		if (v->is_null) {
			cb_buf_append(out, "null", 4);
			continue;
		}
		switch (res->types[c]) {
		case CB_COL_INT: cb_buf_append_int(out, v->i); break;
		case CB_COL_BOOL: cb_buf_append(out, v->i ? "true" : "false", v->i ? 4 : 5); break;
		case CB_COL_TIME:
		case CB_COL_STR: cb_json_write_string(out, v->s); break;
		}
	}
	cb_buf_append(out, "}", 1);
}

void
cb_res_write_array(const struct cb_res *res, int reverse, struct cb_buf *out)
{
	cb_buf_append(out, "[", 1);
	for (unsigned i = 0; i < res->nrows; i++) {
		if (i > 0)
			cb_buf_append(out, ",", 1);
		write_row(res, reverse ? res->nrows - 1 - i : i, out);
	}
	cb_buf_append(out, "]", 1);
}
