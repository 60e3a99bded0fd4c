/* db-chats.h - the chat and message objects of contract section 6, and their rows. */
#ifndef CB_DB_CHATS_H
#define CB_DB_CHATS_H

#include <json-c/json.h>

#include "db.h"
#include "events.h"
#include "sql-messages.h"

/*
 * The chat object's columns; the _-prefixed ones feed the embedded
 * customer/agent objects (cb_db_chat_row_json) and are not sent as such.
 * CB_CHAT_ROW_COLUMNS, then queue_position, then CB_CHAT_NAMES.
 */
#define CB_CHAT_ROW_COLUMNS \
	"c.id, c.customer_id, c.department_id, c.agent_id, c.status, c.subject, " \
	"c.created_at, c.queued_at, c.assigned_at, c.closed_at, c.closed_by, "
#define CB_CHAT_NAMES "cu.full_name AS _customer_name, ag.full_name AS _agent_name "
/*
 * One chat's place in its queue: a count of the chats ahead of it, so it
 * costs as many index entries as the place. A list computes the places of a
 * whole page at once instead (cb_db_chats_list).
 */
#define CB_CHAT_COLUMNS \
	CB_CHAT_ROW_COLUMNS \
	"IF(c.status = 'waiting', (SELECT COUNT(*) FROM chats w " \
	"  WHERE w.department_id = c.department_id AND w.status = 'waiting' " \
	"  AND (w.queued_at < c.queued_at OR (w.queued_at = c.queued_at AND w.id <= c.id))), " \
	"  NULL) AS queue_position, " CB_CHAT_NAMES
#define CB_CHAT_JOINS \
	"JOIN users cu ON cu.id = c.customer_id LEFT JOIN users ag ON ag.id = c.agent_id "
#define CB_CHAT_FROM "FROM chats c " CB_CHAT_JOINS

/* The row's chat object, with "customer" and "agent" as {"id","full_name"}. */
json_object *cb_db_chat_row_json(const struct cb_res *res, unsigned row);
/* The chat object of id, or CB_ERR_NOTFOUND. */
int cb_db_chat_json(struct cb_db *db, long long id, json_object **out);

/* What the engine needs to know about a chat it has locked. */
struct cb_chat_state {
	long long id, customer_id, department_id, agent_id;
	char status[16];
};

/*
 * Locks chat id for the rest of the transaction, after its department (the
 * lock order everywhere: departments by id, then the chat's mutex, then chat
 * rows). CB_ERR_NOTFOUND if there is no such chat; CB_ERR_RETRY if it moved
 * while we waited.
 */
int cb_db_chat_lock(struct cb_db *db, long long id, struct cb_chat_state *out);

/*
 * Inserts a message under the chat's mutex (db.h); sender_id 0 means a system message. Queues
 * message.created for the chat and agent_id (0: none). *out, if not NULL,
 * receives the message object.
 */
int cb_db_message_insert(struct cb_db *db, long long chat_id, long long sender_id,
    const char *sender_role, const char *content, long long agent_id, struct cb_events *ev,
    json_object **out);

#endif
