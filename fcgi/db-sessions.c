/* db-sessions.c - tokens are looked up by their SHA-256; the token itself is never stored. */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "cache.h"
#include "db-sessions.h"
#include "util.h"

/* How stale an agent's last_seen_at may get before a request refreshes it. */
#define SEEN_REFRESH_SECONDS 5

int
cb_db_session_create(
    struct cb_db *db, long long user_id, int ttl, char token[CB_TOKEN_HEX + 1], char **expires_at)
{
	unsigned char hash[CB_TOKEN_HASH];
	struct cb_res *res;
	int rc;

	cb_auth_token_new(token, hash);
	rc = cb_db_exec(db,
	    "INSERT INTO sessions (user_id, token_hash, expires_at) "
	    "VALUES (?, ?, NOW(3) + INTERVAL ? SECOND)",
	    "ibi", user_id, hash, sizeof hash, (long long)ttl);
	if (rc != CB_OK)
		return rc;
	rc = cb_db_query(
	    db, &res, "SELECT expires_at FROM sessions WHERE id = ?", "i", cb_db_insert_id(db));
	if (rc != CB_OK)
		return rc;
	*expires_at = res->nrows ? xstrdup(cb_res_str(res, 0, "expires_at")) : xstrdup("");
	cb_res_free(res);
	return CB_OK;
}

/*
 * Each worker remembers the sessions it has looked up (cache.h), in a
 * two-way set-associative table indexed by the token's hash, so two busy
 * tokens that land in one set do not evict each other. An entry serves while the
 * state generation holds (a logout, a revocation and every change of a user
 * move it), for at most the maximum age (cache_max_age_ms), and never past the
 * token's expiry.
 */
#define SESSION_SETS 1024
#define SESSION_WAYS 2

struct session_slot {
	int used;
	unsigned char hash[CB_TOKEN_HASH];
	struct cb_user user;
	struct cb_stamp stamp;
	long long expires_ms; /* the token's expiry, epoch milliseconds */
	long long seen_ms; /* when this worker last knew the agent's last_seen_at fresh */
};

static struct session_slot session_cache[SESSION_SETS][SESSION_WAYS];

static struct session_slot *
session_set(const unsigned char hash[CB_TOKEN_HASH])
{
	return session_cache[(hash[0] | (unsigned)hash[1] << 8) % SESSION_SETS];
}

/* The entry of this token in its set, if it may still be served. */
static struct session_slot *
session_find(struct session_slot *set, const unsigned char hash[CB_TOKEN_HASH], long long now_ms)
{
	for (int w = 0; w < SESSION_WAYS; w++)
		if (set[w].used && memcmp(set[w].hash, hash, CB_TOKEN_HASH) == 0 &&
		    cb_cache_fresh(&set[w].stamp) && now_ms < set[w].expires_ms)
			return &set[w];
	return NULL;
}

/* Where a new entry goes: the token's old entry, a free way, or the oldest. */
static struct session_slot *
session_victim(struct session_slot *set, const unsigned char hash[CB_TOKEN_HASH])
{
	struct session_slot *oldest = &set[0];

	for (int w = 0; w < SESSION_WAYS; w++) {
		if (!set[w].used || memcmp(set[w].hash, hash, CB_TOKEN_HASH) == 0)
			return &set[w];
		if (set[w].stamp.at_ms < oldest->stamp.at_ms)
			oldest = &set[w];
	}
	return oldest;
}

/*
 * Refreshes an agent's last_seen_at when this worker has not for a while.
 * A refresh that meets a lock held too long (a deadlock or a lock wait
 * timeout) does not fail the request it rides on: the next one tries again.
 */
static int
refresh_seen(struct cb_db *db, struct session_slot *slot, long long now_ms)
{
	if (slot->user.role != CB_ROLE_AGENT ||
	    now_ms - slot->seen_ms < SEEN_REFRESH_SECONDS * 1000)
		return CB_OK;
	int rc = cb_db_exec(
	    db, "UPDATE users SET last_seen_at = NOW(3) WHERE id = ?", "i", slot->user.id);
	if (rc == CB_OK)
		slot->seen_ms = now_ms;
	else if (rc == CB_ERR_RETRY)
		cb_warn("agent %lld: last_seen_at not refreshed (a lock held too long); "
		        "the next request tries again",
		    slot->user.id);
	return rc == CB_ERR_RETRY ? CB_OK : rc;
}

int
cb_db_session_lookup(struct cb_db *db, const char *token, struct cb_user *out)
{
	unsigned char hash[CB_TOKEN_HASH];
	struct session_slot *set, *slot, fresh = {0};
	struct cb_res *res;
	long long now_ms = cb_now_ms();
	int rc;

	memset(out, 0, sizeof *out);
	if (cb_auth_token_hash(token, hash) != CB_OK)
		return CB_ERR_NOTFOUND;
	set = session_set(hash);
	if ((slot = session_find(set, hash, now_ms)) != NULL) {
		*out = slot->user;
		return refresh_seen(db, slot, now_ms);
	}
	int keep = cb_cache_stamp(&fresh.stamp);
	rc = cb_db_query(db, &res,
	    "SELECT s.id AS session_id, u.id, u.role, u.department_id, u.full_name, "
	    "  CAST(UNIX_TIMESTAMP(s.expires_at) * 1000 AS SIGNED) AS expires_ms, "
	    "  u.role = 'agent' AND (u.last_seen_at IS NULL OR "
	    "    u.last_seen_at < NOW(3) - INTERVAL " CB_STR(
	        SEEN_REFRESH_SECONDS) " SECOND) AS stale "
	                              "FROM sessions s JOIN users u ON u.id = s.user_id "
	                              "WHERE s.token_hash = ? AND s.revoked_at IS NULL AND s.expires_at > NOW(3) "
	                              "  AND u.is_active",
	    "b", hash, sizeof hash);
	if (rc != CB_OK)
		return rc;
	if (res->nrows == 0) {
		cb_res_free(res);
		return CB_ERR_NOTFOUND;
	}
	fresh.used = 1;
	memcpy(fresh.hash, hash, sizeof hash);
	fresh.user.id = cb_res_int(res, 0, "id");
	fresh.user.session_id = cb_res_int(res, 0, "session_id");
	fresh.user.role = cb_role_parse(cb_res_str(res, 0, "role"));
	fresh.user.department_id = cb_res_int(res, 0, "department_id");
	snprintf(fresh.user.full_name, sizeof fresh.user.full_name, "%s",
	    cb_res_str(res, 0, "full_name"));
	fresh.expires_ms = cb_res_int(res, 0, "expires_ms");
	/* Not stale: someone refreshed it within the interval, which counts from now at worst. */
	fresh.seen_ms = cb_res_int(res, 0, "stale") ? 0 : now_ms;
	cb_res_free(res);
	*out = fresh.user;
	rc = refresh_seen(db, &fresh, now_ms);
	if (keep)
		*session_victim(set, hash) = fresh;
	return rc;
}

int
cb_db_session_revoke(struct cb_db *db, long long session_id)
{
	return cb_db_exec(db,
	    "UPDATE sessions SET revoked_at = NOW(3) WHERE id = ? AND revoked_at IS NULL", "i",
	    session_id);
}

int
cb_db_sessions_revoke_user(struct cb_db *db, long long user_id, long long keep)
{
	return cb_db_exec(db,
	    "UPDATE sessions SET revoked_at = NOW(3) WHERE user_id = ? AND id <> ? "
	    "  AND revoked_at IS NULL AND expires_at > NOW(3)",
	    "ii", user_id, keep);
}

struct login_attempt {
	const char *address;
	long long retry_after;
};

static int
login_attempt_tx(struct cb_db *db, void *arg)
{
	struct login_attempt *a = arg;
	struct cb_res *res;

	a->retry_after = 0;
	/* The address's row is locked until COMMIT: its attempts are counted one at a time. */
	int rc = cb_db_exec(db,
	    "INSERT INTO login_limits (address) VALUES (?) "
	    "ON DUPLICATE KEY UPDATE last_at = NOW(3)",
	    "s", a->address);
	if (rc == CB_OK)
		rc = cb_db_exec(db,
		    "DELETE FROM login_attempts WHERE address = ? "
		    "  AND attempted_at <= NOW(3) - INTERVAL " CB_STR(
		        CB_LOGIN_WINDOW_SECONDS) " SECOND",
		    "s", a->address);
	if (rc == CB_OK)
		rc = cb_db_query_one(db, &res,
		    "SELECT COUNT(*) AS n, CEIL(TIMESTAMPDIFF(MICROSECOND, NOW(3), "
		    "  MIN(attempted_at) + INTERVAL " CB_STR(
		        CB_LOGIN_WINDOW_SECONDS) " SECOND) / 1000000) AS wait "
		                                 "FROM login_attempts WHERE address = ?",
		    "s", a->address);
	if (rc != CB_OK)
		return rc;
	long long n = cb_res_int(res, 0, "n"), wait = cb_res_int(res, 0, "wait");
	cb_res_free(res);
	if (n >= CB_LOGIN_ATTEMPTS) {
		a->retry_after = wait < 1 ? 1 : wait;
		return CB_ERR_CONFLICT; /* rolled back: a refused attempt is not counted */
	}
	return cb_db_exec(db,
	    "INSERT INTO login_attempts (address, attempted_at) VALUES (?, NOW(3))", "s",
	    a->address);
}

int
cb_db_login_attempt(struct cb_db *db, const char *address, long long *retry_after)
{
	struct login_attempt a = {.address = address != NULL ? address : ""};
	int rc = cb_db_tx(db, login_attempt_tx, &a);

	*retry_after = a.retry_after;
	return rc == CB_ERR_CONFLICT && a.retry_after > 0 ? CB_OK : rc;
}

static int
sweep(struct cb_db *db, const char *sql)
{
	int rc = CB_OK;

	for (int i = 0; i < CB_SWEEP_BATCHES && rc == CB_OK; i++)
		if ((rc = cb_db_exec(db, sql, "")) == CB_OK && cb_db_affected(db) < CB_SWEEP_BATCH)
			break;
	return rc;
}

int
cb_db_sweep_expired(struct cb_db *db)
{
	static const char *const sql[] = {
	    "DELETE FROM login_attempts WHERE attempted_at <= NOW(3) - INTERVAL " CB_STR(
	        CB_LOGIN_WINDOW_SECONDS) " SECOND LIMIT " CB_STR(CB_SWEEP_BATCH),
	    "DELETE FROM login_limits WHERE last_at <= NOW(3) - INTERVAL " CB_STR(
	        CB_LOGIN_WINDOW_SECONDS) " SECOND LIMIT " CB_STR(CB_SWEEP_BATCH),
	    /* No worker serves a session past its expiry, from its cache either,
	     * so removing one changes no answer and moves no cache generation. */
	    "DELETE FROM sessions WHERE expires_at <= NOW(3) - INTERVAL 1 HOUR "
	    "LIMIT " CB_STR(CB_SWEEP_BATCH),
	    "DELETE FROM idempotency_keys WHERE created_at <= NOW(3) - INTERVAL 24 HOUR "
	    "LIMIT " CB_STR(CB_SWEEP_BATCH),
	};
	int rc = CB_OK;

	for (size_t i = 0; i < CB_ARRAY_LEN(sql) && rc == CB_OK; i++)
		rc = sweep(db, sql[i]);
	return rc;
}
