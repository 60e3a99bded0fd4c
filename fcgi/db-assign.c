/* db-assign.c - department locks, the drain, requeue on offline. See db-assign.h for why it is safe. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db-assign.h"
#include "db-chats.h"
#include "db-users.h"
#include "logic-assign.h"
#include "util.h"

int
cb_db_lock_departments(struct cb_db *db, long long a, long long b)
{
	long long first = a, second = b;
	struct cb_res *res;
	int rc;

	if (first <= 0 || (second > 0 && second < first))
		first = b, second = a;
	if (second == first)
		second = 0;
	rc = cb_db_query(db, &res,
	    "SELECT id FROM departments WHERE id IN (?, ?) ORDER BY id FOR UPDATE", "II", first,
	    second);
	cb_res_free(res);
	return rc;
}

static const char *const chat_kinds[] = {"chat", "agent", "department"};

static int
chat_event(struct cb_db *db, const char *type, long long chat_id, struct cb_events *ev)
{
	json_object *chat;
	int rc = cb_db_chat_json(db, chat_id, &chat);

	if (rc != CB_OK)
		return rc;
	json_object *agent = json_object_object_get(chat, "agent_id");
	json_object *dept = json_object_object_get(chat, "department_id");
	long long ids[] = {chat_id, agent ? json_object_get_int64(agent) : 0,
	    dept ? json_object_get_int64(dept) : 0};
	cb_events_add(ev, type, chat_id, chat, chat_kinds, ids, 3);
	return CB_OK;
}

int
cb_db_agent_status_event(struct cb_db *db, long long agent_id, struct cb_events *ev)
{
	static const char *const kinds[] = {"agent", "department"};
	json_object *user;
	int rc = cb_db_user_json(db, agent_id, &user);

	if (rc != CB_OK)
		return rc;
	json_object *dept = json_object_object_get(user, "department_id");
	long long ids[] = {agent_id, dept ? json_object_get_int64(dept) : 0};
	cb_events_add_status(ev, agent_id, user, kinds, ids, 2);
	return CB_OK;
}

void
cb_db_events_publish(struct cb_db *db, struct cb_events *ev)
{
	for (size_t i = 0; i < ev->n; i++) {
		long long agent = ev->items[i].status_of;
		json_object *user;

		if (agent <= 0) {
			cb_events_publish_one(ev, i);
			continue;
		}
		/*
		 * The transaction's snapshot gave the event its channels (the old
		 * department too, after a move); it is sent as it is only if the
		 * agent cannot be read now.
		 */
		int locked = cb_db_agent_mutex(db, agent) == CB_OK;
		if (cb_db_user_json(db, agent, &user) == CB_OK)
			cb_events_set_status(ev, i, user);
		cb_events_publish_one(ev, i);
		if (locked)
			cb_db_agent_mutex_release(db, agent);
	}
	cb_events_clear(ev);
}

int
cb_db_assign_chat(struct cb_db *db, long long chat_id, long long agent_id, struct cb_events *ev)
{
	struct cb_res *res;
	int rc = cb_db_chat_mutex(db, chat_id);

	if (rc == CB_OK)
		rc = cb_db_exec(db,
		    "UPDATE chats SET status = 'active', agent_id = ?, assigned_at = NOW(3) "
		    "WHERE id = ? AND status = 'waiting'",
		    "ii", agent_id, chat_id);
	if (rc != CB_OK)
		return rc;
	if (cb_db_affected(db) != 1)
		return CB_ERR_CONFLICT;
	if ((rc = cb_db_exec(
	         db, "UPDATE users SET last_assigned_at = NOW(6) WHERE id = ?", "i", agent_id)))
		return rc;
	if ((rc = cb_db_query(db, &res, "SELECT full_name FROM users WHERE id = ?", "i", agent_id)))
		return rc;
	char *text =
	    xasprintf("%s joined the chat.", res->nrows ? cb_res_str(res, 0, "full_name") : "");
	cb_res_free(res);
	rc = cb_db_message_insert(db, chat_id, 0, "system", text, agent_id, ev, NULL);
	free(text);
	if (rc == CB_OK)
		rc = chat_event(db, "chat.assigned", chat_id, ev);
	return rc;
}

/*
 * The department's eligible agents (rule 6.2.2 but for capacity, which the
 * picker checks); none while the department is inactive.
 */
static int
candidates(struct cb_db *db, long long dept, struct cb_candidate **out, size_t *n)
{
	struct cb_res *res;
	int rc = cb_db_query(db, &res,
	    "SELECT u.id, u.max_chats, "
	    "  (SELECT COUNT(*) FROM chats c WHERE c.agent_id = u.id AND c.status = 'active') AS active, "
	    "  COALESCE(TIMESTAMPDIFF(MICROSECOND, '2000-01-01', u.last_assigned_at), 0) AS last_assigned "
	    "FROM users u JOIN departments d ON d.id = u.department_id "
	    "WHERE u.department_id = ? AND u.role = 'agent' AND u.is_active "
	    "  AND u.presence = 'available' "
	    /* An inactive department's queue waits until it is re-activated (6.2.5). */
	    "  AND d.is_active AND d.deleted_at IS NULL ORDER BY u.id",
	    "i", dept);

	if (rc != CB_OK)
		return rc;
	*n = res->nrows;
	*out = xcalloc(res->nrows, sizeof **out);
	for (unsigned r = 0; r < res->nrows; r++) {
		(*out)[r].id = cb_res_int(res, r, "id");
		(*out)[r].max_chats = (int)cb_res_int(res, r, "max_chats");
		(*out)[r].active_chats = (int)cb_res_int(res, r, "active");
		(*out)[r].last_assigned = cb_res_int(res, r, "last_assigned");
	}
	cb_res_free(res);
	return CB_OK;
}

int
cb_db_assign_drain(struct cb_db *db, long long dept, struct cb_events *ev, int *assigned)
{
	struct cb_candidate *agents = NULL;
	struct cb_res *queue = NULL;
	int *plan = NULL;
	size_t n = 0, spare = 0, placed = 0;
	int rc = candidates(db, dept, &agents, &n);

	if (rc != CB_OK)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (agents[i].active_chats < agents[i].max_chats)
			spare += (size_t)(agents[i].max_chats - agents[i].active_chats);
	if (spare == 0)
		goto out;
	rc = cb_db_query(db, &queue,
	    "SELECT id FROM chats WHERE department_id = ? AND status = 'waiting' "
	    "ORDER BY queued_at, id LIMIT ?",
	    "ii", dept, (long long)spare);
	if (rc != CB_OK)
		goto out;
	plan = xcalloc(queue->nrows, sizeof *plan);
	placed = cb_logic_assign_plan(agents, n, queue->nrows, plan);
	for (size_t i = 0; i < placed && rc == CB_OK; i++)
		rc = cb_db_assign_chat(
		    db, cb_res_int(queue, (unsigned)i, "id"), agents[plan[i]].id, ev);
	/* Each agent who got a chat has a new active_chats, and may show busy now (contract 5). */
	for (size_t i = 0; i < n && rc == CB_OK; i++) {
		int got = 0;
		for (size_t k = 0; k < placed; k++)
			got |= plan[k] == (int)i;
		if (got)
			rc = cb_db_agent_status_event(db, agents[i].id, ev);
	}
	if (rc == CB_OK && assigned != NULL)
		*assigned += (int)placed;
out:
	free(plan);
	free(agents);
	cb_res_free(queue);
	return rc;
}

int
cb_db_assign_requeue_agent(
    struct cb_db *db, long long agent_id, struct cb_events *ev, int *requeued)
{
	struct cb_res *chats = NULL, *who = NULL;
	int moved = 0;
	/*
	 * No row lock here: each chat's mutex comes first (the lock order), and
	 * the UPDATE below re-checks that the chat is still this agent's.
	 */
	int rc = cb_db_query(db, &chats,
	    "SELECT id FROM chats WHERE agent_id = ? AND status = 'active' ORDER BY queued_at, id",
	    "i", agent_id);

	if (rc == CB_OK)
		rc = cb_db_query(
		    db, &who, "SELECT full_name FROM users WHERE id = ?", "i", agent_id);
	if (rc != CB_OK)
		goto out;
	char *text = xasprintf("%s left; you are back in the queue.",
	    who->nrows ? cb_res_str(who, 0, "full_name") : "");
	for (unsigned r = 0; r < chats->nrows && rc == CB_OK; r++) {
		long long chat_id = cb_res_int(chats, r, "id");

		/* queued_at stays: the chat goes back to the front of the queue. */
		rc = cb_db_chat_mutex(db, chat_id);
		if (rc == CB_OK)
			rc = cb_db_exec(db,
			    "UPDATE chats SET status = 'waiting', agent_id = NULL, assigned_at = NULL "
			    "WHERE id = ? AND agent_id = ? AND status = 'active'",
			    "ii", chat_id, agent_id);
		/* An error ends the loop; no row: closed or moved meanwhile, not ours any more. */
		if (rc != CB_OK || cb_db_affected(db) == 0)
			continue;
		moved++;
		rc = cb_db_message_insert(db, chat_id, 0, "system", text, 0, ev, NULL);
		if (rc == CB_OK)
			rc = chat_event(db, "chat.waiting", chat_id, ev);
	}
	free(text);
	if (rc == CB_OK && requeued != NULL)
		*requeued += moved;
out:
	cb_res_free(chats);
	cb_res_free(who);
	return rc;
}

int
cb_db_agent_chats_mutex(struct cb_db *db, long long agent_id)
{
	struct cb_res *res;
	int rc = cb_db_query(db, &res,
	    "SELECT id FROM chats WHERE agent_id = ? AND status = 'active' ORDER BY id", "i",
	    agent_id);

	if (rc != CB_OK)
		return rc;
	for (unsigned r = 0; r < res->nrows && rc == CB_OK; r++)
		rc = cb_db_chat_mutex(db, cb_res_int(res, r, "id"));
	cb_res_free(res);
	return rc;
}

int
cb_db_agent_presence_locked(struct cb_db *db, long long agent_id, long long dept,
    const char *presence, int deactivate, struct cb_events *ev, int *requeued)
{
	int rc = cb_db_exec(db,
	    "UPDATE users SET presence = ?, is_active = is_active AND NOT ?, updated_at = NOW(3) "
	    "WHERE id = ? AND department_id <=> ? AND is_active",
	    "siiI", presence, (long long)deactivate, agent_id, dept);
	/*
	 * Moved to another department meanwhile, or deactivated by a racing
	 * DELETE: decide again. The caller's check finds the agent gone (404),
	 * as it would after the DELETE: a second DELETE, or a presence change
	 * that would otherwise leave a deactivated agent "available".
	 */
	if (rc == CB_OK && cb_db_affected(db) == 0)
		rc = CB_ERR_RETRY;
	if (rc == CB_OK && strcmp(presence, "offline") == 0)
		rc = cb_db_assign_requeue_agent(db, agent_id, ev, requeued);
	if (rc == CB_OK)
		rc = cb_db_agent_status_event(db, agent_id, ev);
	return rc;
}

int
cb_db_agent_set_presence(struct cb_db *db, long long agent_id, const char *presence, int deactivate,
    struct cb_events *ev, int *requeued, int *assigned)
{
	struct cb_res *res;
	int rc = cb_db_query(db, &res,
	    "SELECT department_id FROM users WHERE id = ? AND role = 'agent'", "i", agent_id);

	if (rc != CB_OK)
		return rc;
	long long dept = res->nrows ? cb_res_int(res, 0, "department_id") : -1;
	cb_res_free(res);
	if (dept < 0)
		return CB_ERR_NOTFOUND;
	if ((rc = cb_db_lock_departments(db, dept, 0)) != CB_OK ||
	    (strcmp(presence, "offline") == 0 &&
	        (rc = cb_db_agent_chats_mutex(db, agent_id)) != CB_OK))
		return rc;
	rc = cb_db_agent_presence_locked(db, agent_id, dept, presence, deactivate, ev, requeued);
	if (rc == CB_OK && dept > 0)
		rc = cb_db_assign_drain(db, dept, ev, assigned);
	return rc;
}
