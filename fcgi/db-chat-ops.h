/*
 * db-chat-ops.h - what the chat endpoints do to the database (contract 6.1,
 * 6.3): list, view, create, post, close, transfer. Each write runs inside the
 * caller's cb_db_tx (but for a post without an Idempotency-Key: one INSERT
 * in autocommit, after its checks), takes its locks in the engine's order
 * (db-assign.h: departments ascending, then the chat's mutex, then chat
 * rows), gathers its events in ev, and ends with the drains rule 6.2.5
 * asks for. A broken rule records its error in e and returns CB_ERR_REPLY,
 * and the caller's rollback makes sure nothing changed.
 */
#ifndef CB_DB_CHAT_OPS_H
#define CB_DB_CHAT_OPS_H

#include <json-c/json.h>

#include "auth.h"
#include "db-chats.h"
#include "db.h"
#include "events.h"
#include "request.h"

/*
 * What a caller may do with a chat (contract 3): read (admin; agent: chat of
 * their department or assigned to them; customer: own), write (messages,
 * typing, close: admin, the assigned agent, the own customer), transfer
 * (admin, the assigned agent). A customer is told 404 for another's chat, an
 * agent 403.
 */
enum cb_chat_access { CB_CHAT_READ, CB_CHAT_WRITE, CB_CHAT_TRANSFER };

/* CB_OK, or CB_ERR_REPLY with 404 / 403 in e. Pure. */
int cb_chat_access_check(const struct cb_user *who, const struct cb_chat_state *chat,
    enum cb_chat_access access, struct cb_error *e);

/* The chat's state without locks (for reads), or CB_ERR_NOTFOUND. */
int cb_db_chat_state(struct cb_db *db, long long id, struct cb_chat_state *out);
/*
 * The same for a read that locks nothing: possibly from this worker's cache
 * (cache.h). Not for a write that must see the row under its locks; a write
 * under the chat's mutex may use it (the mutex keeps the state as read:
 * cb_db_chat_post).
 */
int cb_db_chat_state_read(struct cb_db *db, long long id, struct cb_chat_state *out);

/* GET /api/chats/ filters; 0 / NULL: no filter. */
struct cb_chat_filter {
	const char *status;
	long long department_id, agent_id, customer_id;
};

/* The chats visible to who matching f, newest first, paged; *total unpaged. */
int cb_db_chats_list(struct cb_db *db, const struct cb_user *who, const struct cb_chat_filter *f,
    long long limit, long long offset, json_object **out, long long *total);

/* The chat's transfers, oldest first. */
int cb_db_chat_transfers_json(struct cb_db *db, long long chat_id, json_object **out);

/*
 * A page of chat_id's messages for who, ascending by id: after_id >= 0 gives
 * the first limit after it (0: from the first message; before before_id, if
 * that is given too); else (after_id < 0: not given) before_id > 0 the last
 * limit before it; else the latest limit. The
 * page is appended to out as the answer's JSON array, and *total is the
 * count of all of the chat's messages. CB_ERR_NOTFOUND if there is no such
 * chat, CB_ERR_REPLY with e set if who may not read it (cb_chat_access_check);
 * out is then to be thrown away. The newest page (neither id given) is served
 * from, and kept in, the instance's history store (history.h).
 */
int cb_db_messages_read(struct cb_db *db, const struct cb_user *who, long long chat_id,
    long long after_id, long long before_id, long long limit, struct cb_buf *out, long long *total,
    struct cb_error *e);

struct cb_chat_new {
	long long customer_id;
	long long department_id; /* 0: the default department */
	const char *subject; /* NULL: none */
	const char *message; /* NULL: none */
};

/*
 * Creates a chat (6.1, 6.2.1): the first customer message, then the queue
 * and the drain of its department; chat.waiting if it still waits. *chat
 * gets the new chat's object as the transaction leaves it.
 */
int cb_db_chat_create(struct cb_db *db, const struct cb_chat_new *in, json_object **chat,
    struct cb_events *ev, struct cb_error *e);

/* Posts who's message to an open chat; *msg gets the message object. */
int cb_db_chat_post(struct cb_db *db, const struct cb_user *who, long long chat_id,
    const char *content, struct cb_events *ev, json_object **msg, struct cb_error *e);

/* Closes the chat (closed_at, closed_by), frees its agent and drains the department. */
int cb_db_chat_close(struct cb_db *db, const struct cb_user *who, long long chat_id,
    struct cb_events *ev, struct cb_error *e);

struct cb_chat_transfer {
	long long department_id;
	long long agent_id; /* 0: assign by rule 6.2.3 */
	const char *reason; /* NULL: none */
};

/* Transfers the chat by contract 6.3, with every effect listed there. */
int cb_db_chat_transfer(struct cb_db *db, const struct cb_user *who, long long chat_id,
    const struct cb_chat_transfer *in, struct cb_events *ev, struct cb_error *e);

#endif
