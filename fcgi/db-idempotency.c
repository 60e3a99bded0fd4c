/* db-idempotency.c - the key rows of contract section 2; see db-idempotency.h for the protocol. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "db-idempotency.h"
#include "util.h"

void
cb_db_idem_init(struct cb_idem *idem, long long user_id, const char *endpoint, const char *key,
    const char *body, size_t body_len)
{
	memset(idem, 0, sizeof *idem);
	idem->user_id = user_id;
	snprintf(idem->endpoint, sizeof idem->endpoint, "%s", endpoint);
	idem->key = key;
	crypto_hash_sha256(
	    idem->hash, (const unsigned char *)(body ? body : ""), body ? body_len : 0);
}

int
cb_db_idem_claim(struct cb_db *db, const struct cb_idem *idem)
{
	/*
	 * A key older than the window counts as never seen. created_at is in an
	 * expression so that the row is found by its primary key: with a plain
	 * "created_at < ..." MariaDB scanned ix_idempotency_created (few keys are
	 * old) and locked its oldest entry, so keyed requests of every user
	 * queued behind each other.
	 */
	int rc = cb_db_exec(db,
	    "DELETE FROM idempotency_keys WHERE user_id = ? AND endpoint = ? AND idem_key = ? "
	    "AND created_at + INTERVAL " CB_STR(CB_IDEM_TTL_HOURS) " HOUR < NOW(3)",
	    "iss", idem->user_id, idem->endpoint, idem->key);

	if (rc != CB_OK)
		return rc;
	return cb_db_exec(db,
	    "INSERT INTO idempotency_keys (user_id, endpoint, idem_key, request_hash, status, response) "
	    "VALUES (?, ?, ?, ?, 0, '')",
	    "issb", idem->user_id, idem->endpoint, idem->key, idem->hash, (size_t)CB_IDEM_HASH);
}

int
cb_db_idem_store(struct cb_db *db, const struct cb_idem *idem, int status, const char *body)
{
	return cb_db_exec(db,
	    "UPDATE idempotency_keys SET status = ?, response = ? "
	    "WHERE user_id = ? AND endpoint = ? AND idem_key = ?",
	    "isiss", (long long)status, body, idem->user_id, idem->endpoint, idem->key);
}

int
cb_db_idem_lookup(struct cb_db *db, const struct cb_idem *idem, int *status, char **body)
{
	struct cb_res *res;
	int rc = cb_db_query(db, &res,
	    "SELECT request_hash = ? AS same, status, response FROM idempotency_keys "
	    "WHERE user_id = ? AND endpoint = ? AND idem_key = ? "
	    "AND created_at >= NOW(3) - INTERVAL " CB_STR(CB_IDEM_TTL_HOURS) " HOUR",
	    "biss", idem->hash, (size_t)CB_IDEM_HASH, idem->user_id, idem->endpoint, idem->key);

	*body = NULL;
	if (rc != CB_OK)
		return rc;
	if (res->nrows == 0) {
		rc = CB_ERR_NOTFOUND;
	} else {
		if (cb_res_int(res, 0, "same") != 1) {
			rc = CB_ERR_CONFLICT;
		} else {
			*status = (int)cb_res_int(res, 0, "status");
			*body = xstrdup(cb_res_str(res, 0, "response"));
		}
	}
	cb_res_free(res);
	return rc;
}
