/*
 * api-chats.c - the chat endpoints of contract 6.1: list, create, show,
 * messages, transfer, close, typing. The two creating endpoints honour
 * Idempotency-Key (contract 2, db-idempotency.h); the database work is in
 * db-chat-ops.c, the transfer rules in logic-transfer.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db-assign.h"
#include "db-chat-ops.h"
#include "db-idempotency.h"
#include "json.h"
#include "router.h"
#include "typing.h"
#include "util.h"
#include "validate.h"

#define CB_SUBJECT_MAX 200
#define CB_CONTENT_MAX 4000
#define CB_REASON_MAX 500

/* ---- reads ---- */

static int
list(struct cb_request *req)
{
	static const char *const statuses[] = {"waiting", "active", "closed"};
	struct cb_chat_filter f = {0};
	long long limit, offset, total;
	json_object *arr;
	int rc;

	if ((rc = cb_query_int(req, "limit", 1, 200, 1, 50, &limit)) ||
	    (rc = cb_query_int(req, "offset", 0, 1000000000LL, 1, 0, &offset)) ||
	    (rc = cb_query_int(req, "department_id", 1, CB_ID_MAX, 0, 0, &f.department_id)) ||
	    (rc = cb_query_int(req, "agent_id", 1, CB_ID_MAX, 0, 0, &f.agent_id)) ||
	    (rc = cb_query_int(req, "customer_id", 1, CB_ID_MAX, 0, 0, &f.customer_id)))
		return rc;
	if ((f.status = cb_query_get(req, "status")) != NULL) {
		size_t i = 0;
		while (i < CB_ARRAY_LEN(statuses) && strcmp(f.status, statuses[i]) != 0)
			i++;
		if (i == CB_ARRAY_LEN(statuses))
			return cb_fail(req, 400, "bad_request", "status",
			    "status must be waiting, active or closed");
	}
	if ((rc = cb_db_chats_list(req->db, &req->user, &f, limit, offset, &arr, &total)) != CB_OK)
		return rc;
	cb_reply_header(req, "X-Total-Count: %lld", total);
	cb_reply_json(req, 200, arr);
	return CB_OK;
}

/* Loads the chat of the path and checks the caller may read it; else the error is recorded. */
static int
readable_or_reply(struct cb_request *req, struct cb_chat_state *st)
{
	int rc = cb_db_chat_state_read(req->db, req->ids[0], st);

	if (rc == CB_OK)
		rc = cb_chat_access_check(&req->user, st, CB_CHAT_READ, &req->error);
	return rc;
}

static int
show(struct cb_request *req)
{
	struct cb_chat_state st;
	json_object *chat = NULL, *transfers = NULL;
	int rc = readable_or_reply(req, &st);

	if (rc == CB_OK)
		rc = cb_db_chat_json(req->db, st.id, &chat);
	if (rc == CB_OK)
		rc = cb_db_chat_transfers_json(req->db, st.id, &transfers);
	if (rc == CB_OK) {
		json_object_object_add(chat, "transfers", transfers);
		cb_reply_json(req, 200, chat);
	} else {
		json_object_put(chat);
	}
	return rc;
}

static int
messages(struct cb_request *req)
{
	long long after, before, limit, total;
	struct cb_buf page = {0};
	int rc;

	/* after_id=0 is the start of the chat: a client's first cursor. */
	if ((rc = cb_query_int(req, "after_id", 0, CB_ID_MAX, 0, -1, &after)) ||
	    (rc = cb_query_int(req, "before_id", 1, CB_ID_MAX, 0, 0, &before)) ||
	    (rc = cb_query_int(req, "limit", 1, 500, 1, 100, &limit)))
		return rc;
	/* The access check rides in the page's own round trip. */
	rc = cb_db_messages_read(
	    req->db, &req->user, req->ids[0], after, before, limit, &page, &total, &req->error);
	if (rc == CB_OK) {
		cb_reply_header(req, "X-Total-Count: %lld", total);
		cb_reply_raw(req, 200, page.data);
	}
	cb_buf_free(&page);
	return rc;
}

/* ---- creations, guarded by Idempotency-Key ---- */

struct creation;
/* Does the creation inside the transaction and leaves the object in c->object. */
typedef int (*creation_cb)(struct cb_db *db, struct creation *c);

struct creation {
	struct cb_request *req;
	creation_cb make;
	void *arg;
	long long chat_id; /* a post into this chat, else 0 */
	struct cb_idem idem;
	int keyed; /* the request carries an Idempotency-Key */
	int duplicate; /* the key is taken: replay or conflict */
	struct cb_events ev;
	json_object *object;
	char *text; /* the response body, as stored and as sent */
};

static void
creation_reset(struct creation *c)
{
	cb_events_clear(&c->ev);
	json_object_put(c->object);
	c->object = NULL;
	free(c->text);
	c->text = NULL;
	c->duplicate = 0;
}

/*
 * The key row first (so a concurrent retry waits for us), the work, then the
 * stored answer. A post takes its chat's mutex before the key row, as the
 * lock order has it: mutexes, then rows (db-assign.h).
 */
static int
creation_tx(struct cb_db *db, void *arg)
{
	struct creation *c = arg;
	int rc;

	creation_reset(c);
	if (c->chat_id > 0 && (rc = cb_db_chat_mutex(db, c->chat_id)) != CB_OK)
		return rc;
	if (c->keyed && (rc = cb_db_idem_claim(db, &c->idem)) != CB_OK) {
		c->duplicate = rc == CB_ERR_DUPLICATE;
		return rc;
	}
	if ((rc = c->make(db, c)) != CB_OK)
		return rc;
	c->text = xstrdup(cb_json_text(c->object));
	return c->keyed ? cb_db_idem_store(db, &c->idem, 201, c->text) : CB_OK;
}

/*
 * Runs a creation and answers 201 with its object, or replays the answer
 * stored for the same key, or refuses a key reused with another body. The
 * loop covers a stored key that expires between our claim and our lookup.
 * A post (chat_id > 0) writes with one statement, so without a key it runs
 * in autocommit: no transaction, two round trips fewer.
 */
static int
create_or_replay(
    struct cb_request *req, const char *endpoint, creation_cb make, void *arg, long long chat_id)
{
	struct creation c = {.req = req, .make = make, .arg = arg, .chat_id = chat_id};
	const char *key = req->idempotency_key;
	int rc = CB_OK;

	if (key != NULL && !cb_valid_idempotency_key(key))
		return cb_fail(req, 400, "bad_request", NULL,
		    "Idempotency-Key must be 1 to 128 printable ASCII characters");
	c.keyed = key != NULL;
	cb_db_idem_init(&c.idem, req->user.id, endpoint, key, req->body, req->body_len);
	for (int attempt = 0; attempt < 3; attempt++) {
		int status;
		char *stored;

		if (chat_id > 0 && !c.keyed)
			rc = creation_tx(req->db, &c);
		else
			rc = cb_db_tx(req->db, creation_tx, &c);
		if (rc == CB_OK) {
			cb_db_events_publish(req->db, &c.ev);
			cb_reply_raw(req, 201, c.text);
			break;
		}
		if (!c.duplicate)
			break;
		rc = cb_db_idem_lookup(req->db, &c.idem, &status, &stored);
		if (rc == CB_OK) {
			cb_reply_raw(req, status, stored);
			free(stored);
			break;
		}
		if (rc == CB_ERR_CONFLICT) {
			rc = cb_fail(req, 409, "idempotency_conflict", NULL,
			    "this Idempotency-Key was used with a different request");
			break;
		}
		if (rc != CB_ERR_NOTFOUND)
			break;
	}
	creation_reset(&c);
	return rc;
}

static int
make_chat(struct cb_db *db, struct creation *c)
{
	return cb_db_chat_create(db, c->arg, &c->object, &c->ev, &c->req->error);
}

static int
create(struct cb_request *req)
{
	struct cb_field dept, subject, message, customer;
	struct cb_chat_new in = {0};
	int rc;

	if ((rc = cb_json_int(
	         req->json, "department_id", CB_F_NULLABLE, 1, CB_ID_MAX, &dept, &req->error)) ||
	    (rc = cb_json_string(
	         req->json, "subject", CB_F_NULLABLE, 0, CB_SUBJECT_MAX, &subject, &req->error)) ||
	    (rc = cb_json_string(req->json, "message", CB_F_NULLABLE | CB_F_NOTBLANK, 1,
	         CB_CONTENT_MAX, &message, &req->error)))
		return rc;
	/* An admin opens a chat on a customer's behalf; a customer always for itself. */
	if (req->user.role == CB_ROLE_ADMIN) {
		if ((rc = cb_json_int(req->json, "customer_id", CB_F_REQUIRED, 1, CB_ID_MAX,
		         &customer, &req->error)))
			return rc;
		in.customer_id = customer.i;
	} else {
		in.customer_id = req->user.id;
	}
	in.department_id = dept.present && !dept.is_null ? dept.i : 0;
	in.subject = subject.s;
	in.message = message.s;
	return create_or_replay(req, "POST /api/chats/", make_chat, &in, 0);
}

static int
make_message(struct cb_db *db, struct creation *c)
{
	return cb_db_chat_post(
	    db, &c->req->user, c->req->ids[0], c->arg, &c->ev, &c->object, &c->req->error);
}

static int
post_message(struct cb_request *req)
{
	struct cb_field content;
	char endpoint[64];
	int rc;

	if ((rc = cb_json_string(req->json, "content", CB_F_REQUIRED | CB_F_NOTBLANK, 1,
	         CB_CONTENT_MAX, &content, &req->error)))
		return rc;
	/* Keys are scoped per chat: the same key may be reused in another chat. */
	snprintf(endpoint, sizeof endpoint, "POST /api/chats/%lld/messages", req->ids[0]);
	/* One INSERT, under the chat's mutex, after the checks that mutex keeps true. */
	return create_or_replay(req, endpoint, make_message, (void *)content.s, req->ids[0]);
}

/* ---- changes of a chat ---- */

struct change {
	struct cb_request *req;
	struct cb_chat_transfer transfer; /* for transfer only */
	struct cb_events ev;
};

static int
close_tx(struct cb_db *db, void *arg)
{
	struct change *ch = arg;

	cb_events_clear(&ch->ev);
	return cb_db_chat_close(db, &ch->req->user, ch->req->ids[0], &ch->ev, &ch->req->error);
}

static int
transfer_tx(struct cb_db *db, void *arg)
{
	struct change *ch = arg;

	cb_events_clear(&ch->ev);
	return cb_db_chat_transfer(
	    db, &ch->req->user, ch->req->ids[0], &ch->transfer, &ch->ev, &ch->req->error);
}

/* Runs the change, publishes its events, answers with the chat as it now is. */
static int
change_reply(struct cb_request *req, struct change *ch, cb_db_tx_cb fn)
{
	json_object *chat;
	int rc = cb_db_tx(req->db, fn, ch);

	if (rc == CB_OK) {
		cb_db_events_publish(req->db, &ch->ev);
		rc = cb_db_chat_json(req->db, req->ids[0], &chat);
	}
	if (rc == CB_OK)
		cb_reply_json(req, 200, chat);
	cb_events_clear(&ch->ev);
	return rc;
}

static int
close_chat(struct cb_request *req)
{
	struct change ch = {.req = req};

	return change_reply(req, &ch, close_tx);
}

static int
transfer(struct cb_request *req)
{
	struct cb_field dept, agent, reason;
	struct change ch = {.req = req};
	int rc;

	if ((rc = cb_json_int(
	         req->json, "department_id", CB_F_REQUIRED, 1, CB_ID_MAX, &dept, &req->error)) ||
	    (rc = cb_json_int(
	         req->json, "agent_id", CB_F_NULLABLE, 1, CB_ID_MAX, &agent, &req->error)) ||
	    (rc = cb_json_string(req->json, "reason", CB_F_NULLABLE | CB_F_BLANK_NULL, 0,
	         CB_REASON_MAX, &reason, &req->error)))
		return rc;
	ch.transfer.department_id = dept.i;
	ch.transfer.agent_id = agent.present && !agent.is_null ? agent.i : 0;
	ch.transfer.reason = reason.s;
	return change_reply(req, &ch, transfer_tx);
}

/* ---- typing ---- */

static int
typing(struct cb_request *req)
{
	static const char *const kinds[] = {"chat"};
	struct cb_chat_state st;
	struct cb_field on;
	struct cb_events ev = {0};
	int rc;

	if ((rc = cb_json_bool(req->json, "typing", CB_F_REQUIRED, &on, &req->error)))
		return rc;
	/* Typing changes nothing, so the state may come from the cache like a read's. */
	if ((rc = cb_db_chat_state_read(req->db, req->ids[0], &st)) ||
	    (rc = cb_chat_access_check(&req->user, &st, CB_CHAT_WRITE, &req->error)))
		return rc;
	if (strcmp(st.status, "closed") == 0)
		return cb_fail(req, 409, "chat_closed", NULL, "the chat is closed");
	if (cb_typing_due(req->user.id, st.id, on.i != 0, req->cfg->typing_interval_ms)) {
		json_object *data = json_object_new_object();
		json_object_object_add(data, "user_id", json_object_new_int64(req->user.id));
		json_object_object_add(
		    data, "role", json_object_new_string(cb_role_name(req->user.role)));
		json_object_object_add(data, "typing", json_object_new_boolean((json_bool)on.i));
		cb_events_add(&ev, "typing", st.id, data, kinds, &st.id, 1);
		cb_db_events_publish(req->db, &ev);
	}
	cb_reply_empty(req, 204);
	return CB_OK;
}

const struct cb_route cb_api_chats_routes[] = {
    {"GET", "/api/chats", CB_ROLE_USER, 0, list},
    {"POST", "/api/chats", CB_ROLE_ADMIN | CB_ROLE_CUSTOMER, CB_ROUTE_BODY, create},
    {"GET", "/api/chats/{id}", CB_ROLE_USER, 0, show},
    {"GET", "/api/chats/{id}/messages", CB_ROLE_USER, 0, messages},
    {"POST", "/api/chats/{id}/messages", CB_ROLE_USER, CB_ROUTE_BODY, post_message},
    {"POST", "/api/chats/{id}/transfer", CB_ROLE_STAFF, CB_ROUTE_BODY, transfer},
    {"PUT", "/api/chats/{id}/close", CB_ROLE_USER, 0, close_chat},
    {"POST", "/api/chats/{id}/typing", CB_ROLE_USER, CB_ROUTE_BODY, typing},
    {NULL, NULL, 0, 0, NULL},
};
