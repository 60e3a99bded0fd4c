/* db-reassign.c - time out silent agents, then drain every queue; see db-reassign.h. */
#include "db-assign.h"
#include "db-reassign.h"
#include "events.h"
#include "util.h"

struct sweep {
	long long id; /* the department (0: agents without one) */
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

/* An online agent not seen for s->offline_after seconds; binds ("i"). */
#define SILENT \
	"role = 'agent' AND is_active AND presence <> 'offline' " \
	"AND (last_seen_at IS NULL OR last_seen_at < NOW(3) - INTERVAL ? SECOND)"

/*
 * Sets every silent agent of department s->id offline (6.4), then drains
 * the department once. All of them go in one transaction, under the
 * department's lock: one at a time, the drain after the first would hand its
 * chats to the next silent agent, which this same run then times out, and
 * each such chat would be told an agent joined and left for nothing. The
 * mutexes of the agents' chats come before their rows (the lock order of
 * db-assign.h); "still silent" is checked again under the row locks, so a
 * heartbeat that came in since the departments were listed saves its agent.
 */
static int
timeout_tx(struct cb_db *db, void *arg)
{
	struct sweep *s = arg;
	struct cb_res *res;

	sweep_reset(s);
	int rc = cb_db_lock_departments(db, s->id, 0);
	if (rc == CB_OK)
		rc = cb_db_query(db, &res,
		    "SELECT id FROM users WHERE department_id <=> ? AND " SILENT, "Ii", s->id,
		    s->offline_after);
	if (rc != CB_OK)
		return rc;
	for (unsigned r = 0; r < res->nrows && rc == CB_OK; r++)
		rc = cb_db_agent_chats_mutex(db, cb_res_int(res, r, "id"));
	cb_res_free(res);
	if (rc == CB_OK)
		rc = cb_db_query(db, &res,
		    "SELECT id FROM users WHERE department_id <=> ? AND " SILENT
		    " ORDER BY id FOR UPDATE",
		    "Ii", s->id, s->offline_after);
	if (rc != CB_OK)
		return rc;
	for (unsigned r = 0; r < res->nrows && rc == CB_OK; r++) {
		rc = cb_db_agent_presence_locked(
		    db, cb_res_int(res, r, "id"), s->id, "offline", 0, &s->ev, &s->requeued);
		s->timed_out++;
	}
	cb_res_free(res);
	if (rc == CB_OK && s->id > 0)
		rc = cb_db_assign_drain(db, s->id, &s->ev, &s->assigned);
	return rc;
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

/*
 * Runs fn for each id of the list in its own transaction, publishing after
 * each commit. A department that fails (still deadlocked after the retries,
 * a chat's mutex held past its wait) is left for the next run and the others
 * are served; only a database gone ends the run. The first failure is returned.
 */
static int
each(struct cb_db *db, struct cb_res *ids, cb_db_tx_cb fn, struct sweep *s,
    struct cb_reassign_counts *counts)
{
	int first = CB_OK;

	for (unsigned r = 0; r < ids->nrows; r++) {
		s->id = cb_res_int(ids, r, "id");
		int rc = cb_db_tx(db, fn, s);
		if (rc == CB_OK) {
			cb_db_events_publish(db, &s->ev);
			counts->assigned += s->assigned;
			counts->requeued += s->requeued;
			counts->timed_out += s->timed_out;
		} else {
			cb_warn("reassign: department %lld left for the next run (error %d)", s->id,
			    rc);
			if (first == CB_OK)
				first = rc;
		}
		cb_events_clear(&s->ev);
		/* The chat mutexes are held until the events are out (db.h). */
		cb_db_chat_mutex_release(db);
		if (rc == CB_ERR_UNAVAILABLE)
			break;
	}
	return first;
}

int
cb_db_reassign(struct cb_db *db, long long offline_after, struct cb_reassign_counts *counts)
{
	struct sweep s = {.offline_after = offline_after};
	struct cb_res *ids;
	int rc = cb_db_query(db, &ids,
	    "SELECT DISTINCT IFNULL(department_id, 0) AS id FROM users WHERE " SILENT
	    " ORDER BY id",
	    "i", offline_after);

	if (rc != CB_OK)
		return rc;
	int timeouts = each(db, ids, timeout_tx, &s, counts);
	cb_res_free(ids);
	if (timeouts == CB_ERR_UNAVAILABLE)
		return timeouts;
	rc = cb_db_query(db, &ids,
	    "SELECT id FROM departments WHERE is_active AND deleted_at IS NULL ORDER BY id", "");
	if (rc != CB_OK)
		return rc;
	rc = each(db, ids, drain_tx, &s, counts);
	cb_res_free(ids);
	return timeouts != CB_OK ? timeouts : rc;
}
