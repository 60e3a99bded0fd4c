/* db-chats.c - chat and message rows, and the chat lock. */
#include <stdio.h>
#include <string.h>

#include "db-assign.h"
#include "db-chats.h"
#include "util.h"

static json_object *
person(const struct cb_res *res, unsigned row, const char *id_col, const char *name_col)
{
	const struct cb_val *id = cb_res_val(res, row, id_col);
	json_object *obj;

	if (id->is_null)
		return NULL;
	obj = json_object_new_object();
	json_object_object_add(obj, "id", json_object_new_int64(id->i));
	json_object_object_add(obj, "full_name",
	    json_object_new_string(
	        cb_res_str(res, row, name_col) ? cb_res_str(res, row, name_col) : ""));
	return obj;
}

json_object *
cb_db_chat_row_json(const struct cb_res *res, unsigned row)
{
	json_object *chat = cb_res_row_json(res, row);

	json_object_object_add(chat, "customer", person(res, row, "customer_id", "_customer_name"));
	json_object_object_add(chat, "agent", person(res, row, "agent_id", "_agent_name"));
	return chat;
}

int
cb_db_chat_json(struct cb_db *db, long long id, json_object **out)
{
	struct cb_res *res;
	int rc = cb_db_query_one(
	    db, &res, "SELECT " CB_CHAT_COLUMNS CB_CHAT_FROM "WHERE c.id = ?", "i", id);

	*out = NULL;
	if (rc == CB_OK) {
		*out = cb_db_chat_row_json(res, 0);
		cb_res_free(res);
	}
	return rc;
}

int
cb_db_chat_lock(struct cb_db *db, long long id, struct cb_chat_state *out)
{
	struct cb_res *res;
	int rc = cb_db_query(db, &res, "SELECT department_id FROM chats WHERE id = ?", "i", id);

	if (rc != CB_OK)
		return rc;
	long long dept = res->nrows ? cb_res_int(res, 0, "department_id") : 0;
	cb_res_free(res);
	if (dept == 0)
		return CB_ERR_NOTFOUND;
	if ((rc = cb_db_lock_departments(db, dept, 0)) != CB_OK ||
	    (rc = cb_db_chat_mutex(db, id)) != CB_OK)
		return rc;
	rc = cb_db_query(db, &res,
	    "SELECT id, customer_id, department_id, agent_id, status FROM chats WHERE id = ? FOR UPDATE",
	    "i", id);
	if (rc != CB_OK)
		return rc;
	memset(out, 0, sizeof *out);
	out->id = id;
	out->customer_id = cb_res_int(res, 0, "customer_id");
	out->department_id = cb_res_int(res, 0, "department_id");
	out->agent_id = cb_res_int(res, 0, "agent_id");
	snprintf(out->status, sizeof out->status, "%s", cb_res_str(res, 0, "status"));
	cb_res_free(res);
	/* Transferred while we waited for the lock: start over with the new department. */
	return out->department_id == dept ? CB_OK : CB_ERR_RETRY;
}

int
cb_db_message_insert(struct cb_db *db, long long chat_id, long long sender_id,
    const char *sender_role, const char *content, long long agent_id, struct cb_events *ev,
    json_object **out)
{
	static const char *const kinds[] = {"chat", "agent"};
	struct cb_res *res;
	/* The id is allocated under the chat's mutex, so ids rise in publish order. */
	int rc = cb_db_chat_mutex(db, chat_id);

	/* RETURNING hands back the row as stored (its id and time) in the same round trip. */
	if (rc == CB_OK)
		rc = cb_db_query(db, &res,
		    "INSERT INTO messages (chat_id, sender_id, sender_role, content) VALUES (?, ?, ?, ?) "
		    "RETURNING id, chat_id, sender_id, sender_role, content, created_at",
		    "iIss", chat_id, sender_id, sender_role, content);
	if (rc != CB_OK)
		return rc;
	long long ids[] = {chat_id, agent_id};
	cb_events_add(ev, "message.created", chat_id, cb_res_row_json(res, 0), kinds, ids, 2);
	if (out != NULL)
		*out = cb_res_row_json(res, 0);
	cb_res_free(res);
	return CB_OK;
}
