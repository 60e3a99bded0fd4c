/*
 * db-idempotency.h - Idempotency-Key (contract section 2) for the two
 * creating endpoints. Protocol, inside the creating transaction:
 *
 *   cb_db_idem_claim   first statement (a post takes its chat's mutex before
 *                      it): inserts the key row with placeholders.
 *                      A concurrent request with the same key blocks here on
 *                      the row lock until the first one ends; if that one
 *                      committed, the claim fails with CB_ERR_DUPLICATE.
 *   ...the creation...
 *   cb_db_idem_store   last statement: the final status and response body.
 *
 * On CB_ERR_DUPLICATE the caller rolls back and calls cb_db_idem_lookup
 * outside any transaction: CB_OK → replay the stored answer exactly;
 * CB_ERR_CONFLICT → the same key came with another body (409
 * idempotency_conflict); CB_ERR_NOTFOUND → the row is gone again (expired and
 * removed meanwhile): run the request once more. Since the key row commits
 * or rolls back with the creation, only successful answers are ever stored.
 */
#ifndef CB_DB_IDEMPOTENCY_H
#define CB_DB_IDEMPOTENCY_H

#include <stddef.h>

#include "db.h"

#define CB_IDEM_HASH 32
#define CB_IDEM_TTL_HOURS 24

struct cb_idem {
	long long user_id;
	char endpoint[64]; /* "POST /api/chats/", "POST /api/chats/7/messages" */
	const char *key; /* NULL: the request carries no key */
	unsigned char hash[CB_IDEM_HASH]; /* SHA-256 of the raw request body */
};

/* Fills idem for a request body; key NULL means no Idempotency-Key. */
void cb_db_idem_init(struct cb_idem *idem, long long user_id, const char *endpoint, const char *key,
    const char *body, size_t body_len);
/* Removes an expired row for the key, then inserts the claim. */
int cb_db_idem_claim(struct cb_db *db, const struct cb_idem *idem);
/* Records the answer that is about to be sent. */
int cb_db_idem_store(struct cb_db *db, const struct cb_idem *idem, int status, const char *body);
/* The stored answer of a live key: *body is allocated (free it). */
int cb_db_idem_lookup(struct cb_db *db, const struct cb_idem *idem, int *status, char **body);

#endif
