/* db-sessions.c - tokens are looked up by their SHA-256; the token itself is never stored. */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

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

int
cb_db_session_lookup(struct cb_db *db, const char *token, struct cb_user *out)
{
	unsigned char hash[CB_TOKEN_HASH];
	struct cb_res *res;
	int rc;

	memset(out, 0, sizeof *out);
	if (cb_auth_token_hash(token, hash) != CB_OK)
		return CB_ERR_NOTFOUND;
	rc = cb_db_query(db, &res,
	    "SELECT s.id AS session_id, u.id, u.role, u.department_id, u.full_name, "
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
	out->id = cb_res_int(res, 0, "id");
	out->session_id = cb_res_int(res, 0, "session_id");
	out->role = cb_role_parse(cb_res_str(res, 0, "role"));
	out->department_id = cb_res_int(res, 0, "department_id");
	snprintf(out->full_name, sizeof out->full_name, "%s", cb_res_str(res, 0, "full_name"));
	int stale = cb_res_int(res, 0, "stale") != 0;
	cb_res_free(res);
	if (stale)
		rc = cb_db_exec(
		    db, "UPDATE users SET last_seen_at = NOW(3) WHERE id = ?", "i", out->id);
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
