/* db-reassign.c - time out silent agents, then drain every queue; see db-reassign.h. */
#include "db-assign.h"
#include "db-reassign.h"
#include "events.h"
#include "util.h"

struct sweep {
	long long id; /* the agent or the department */
	long long offline_after;
	struct cb_events ev;
	int assigned, requeued, timed_out;
};

static void
sweep_reset(struct sweep *s)
{
	cb_events_clear(&s->ev);
	s->assigned = s->requeued = s->timed_out = 0;
}

/*
 * Sets the agent offline if, under its department lock and its own row
 * lock, it is still online and still silent: a heartbeat that came in since
 * the candidates were listed saves it. The mutexes of its chats come before
 * its row, as the lock order of db-assign.h has it.
 */
static int
timeout_tx(struct cb_db *db, void *arg)
{
	struct sweep *s = arg;
	struct cb_res *res;

	sweep_reset(s);
	int rc = cb_db_query(db, &res, "SELECT department_id FROM users WHERE id = ?", "i", s->id);
	if (rc != CB_OK)
		return rc;
	long long dept = res->nrows ? cb_res_int(res, 0, "department_id") : 0;
	cb_res_free(res);
	if ((rc = cb_db_lock_departments(db, dept, 0)) != CB_OK ||
	    (rc = cb_db_agent_chats_mutex(db, s->id)) != CB_OK)
		return rc;
	rc = cb_db_query(db, &res,
	    "SELECT id FROM users WHERE id = ? AND role = 'agent' AND is_active "
	    "AND presence <> 'offline' AND department_id <=> ? "
	    "AND (last_seen_at IS NULL OR last_seen_at < NOW(3) - INTERVAL ? SECOND) FOR UPDATE",
	    "iIi", s->id, dept, s->offline_after);
	if (rc != CB_OK)
		return rc;
	int silent = res->nrows == 1;
	cb_res_free(res);
	if (!silent)
		return CB_OK;
	s->timed_out = 1;
	return cb_db_agent_set_presence(
	    db, s->id, "offline", 0, &s->ev, &s->requeued, &s->assigned);
}

static int
drain_tx(struct cb_db *db, void *arg)
{
	struct sweep *s = arg;
	struct cb_res *res;

	sweep_reset(s);
	int rc = cb_db_lock_departments(db, s->id, 0);
	if (rc == CB_OK)
		rc = cb_db_query(db, &res,
		    "SELECT id FROM departments WHERE id = ? AND is_active AND deleted_at IS NULL",
		    "i", s->id);
	if (rc != CB_OK)
		return rc;
	int active = res->nrows == 1;
	cb_res_free(res);
	return active ? cb_db_assign_drain(db, s->id, &s->ev, &s->assigned) : CB_OK;
}

/* Runs fn for each id of the list in its own transaction, publishing after each commit. */
static int
each(struct cb_db *db, struct cb_res *ids, cb_db_tx_cb fn, struct sweep *s,
    struct cb_reassign_counts *counts)
{
	int rc = CB_OK;

	for (unsigned r = 0; r < ids->nrows && rc == CB_OK; r++) {
		s->id = cb_res_int(ids, r, "id");
		rc = cb_db_tx(db, fn, s);
		if (rc == CB_OK) {
			cb_db_events_publish(db, &s->ev);
			counts->assigned += s->assigned;
			counts->requeued += s->requeued;
			counts->timed_out += s->timed_out;
		}
		cb_events_clear(&s->ev);
		/* The chat mutexes are held until the events are out (db.h). */
		cb_db_chat_mutex_release(db);
	}
	return rc;
}

int
cb_db_reassign(struct cb_db *db, long long offline_after, struct cb_reassign_counts *counts)
{
	struct sweep s = {.offline_after = offline_after};
	struct cb_res *ids;
	int rc = cb_db_query(db, &ids,
	    "SELECT id FROM users WHERE role = 'agent' AND is_active AND presence <> 'offline' "
	    "AND (last_seen_at IS NULL OR last_seen_at < NOW(3) - INTERVAL ? SECOND) ORDER BY id",
	    "i", offline_after);

	if (rc != CB_OK)
		return rc;
	rc = each(db, ids, timeout_tx, &s, counts);
	cb_res_free(ids);
	if (rc != CB_OK)
		return rc;
	rc = cb_db_query(db, &ids,
	    "SELECT id FROM departments WHERE is_active AND deleted_at IS NULL ORDER BY id", "");
	if (rc != CB_OK)
		return rc;
	rc = each(db, ids, drain_tx, &s, counts);
	cb_res_free(ids);
	return rc;
}
