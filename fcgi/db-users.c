/* db-users.c - user rows and the user object, and the writes of contract section 5. */
#include "auth.h"
#include "db-assign.h"
#include "db-departments.h"
#include "db-sessions.h"
#include "db-users.h"
#include "logic-directory.h"
#include "util.h"

int
cb_db_user_json(struct cb_db *db, long long id, json_object **out)
{
	struct cb_res *res;
	int rc = cb_db_query_one(
	    db, &res, "SELECT " CB_USER_COLUMNS CB_USER_FROM "WHERE u.id = ?", "i", id);

	*out = NULL;
	if (rc == CB_OK) {
		*out = cb_res_row_json(res, 0);
		cb_res_free(res);
	}
	return rc;
}

/*
 * The filtered active users; the derived status can only be filtered outside.
 * Each filter is one MariaDB can read off an index once its value is known:
 * the staff by role (not "role <> 'customer'", which read every customer
 * for an agent's list: 13 ms at 20,000 customers, 65 at 200,000), and a
 * status only agents have.
 */
#define USERS_FILTERED \
	"(SELECT " CB_USER_COLUMNS CB_USER_FROM \
	"WHERE u.is_active AND (NOT ? OR u.role IN ('admin', 'agent')) " \
	"  AND (? IS NULL OR u.role = ?) AND (? IS NULL OR u.role = 'agent') " \
	"  AND (? IS NULL OR u.department_id = ?)) x WHERE (? IS NULL OR x.status = ?) "
#define USERS_TYPES "isssIIss"
#define USERS_ARGS(f) \
	(long long)(f)->staff_only, (f)->role, (f)->role, (f)->status, (f)->department_id, \
	    (f)->department_id, (f)->status, (f)->status

int
cb_db_users_list(struct cb_db *db, const struct cb_user_filter *f, long long limit,
    long long offset, json_object **out, long long *total)
{
	struct cb_res *res;
	/*
	 * The total is a subquery of the page's statement, so the two are one
	 * snapshot: counted by a statement of its own, a presence change between
	 * the two made X-Total-Count disagree with the page it came with.
	 */
	int rc = cb_db_query(db, &res,
	    "SELECT x.*, (SELECT COUNT(*) FROM " USERS_FILTERED ") AS _total FROM " USERS_FILTERED
	    "ORDER BY x.id LIMIT ? OFFSET ?",
	    USERS_TYPES USERS_TYPES "ii", USERS_ARGS(f), USERS_ARGS(f), limit, offset);

	*out = NULL;
	if (rc != CB_OK)
		return rc;
	*total = res->nrows ? cb_res_int(res, 0, "_total") : 0;
	*out = cb_res_json_array(res);
	cb_res_free(res);
	if (offset == 0 || *total > 0)
		return CB_OK;
	/* A page past the end carries no total: count on its own. */
	rc = cb_db_query(
	    db, &res, "SELECT COUNT(*) AS n FROM " USERS_FILTERED, USERS_TYPES, USERS_ARGS(f));
	if (rc == CB_OK)
		*total = cb_res_int(res, 0, "n");
	cb_res_free(res);
	if (rc != CB_OK) {
		json_object_put(*out);
		*out = NULL;
	}
	return rc;
}

int
cb_db_user_facts(struct cb_db *db, long long id, unsigned *role, int *is_active)
{
	struct cb_res *res;
	int rc = cb_db_query(db, &res, "SELECT role, is_active FROM users WHERE id = ?", "i", id);

	if (rc != CB_OK)
		return rc;
	if (res->nrows == 1) {
		*role = cb_role_parse(cb_res_str(res, 0, "role"));
		*is_active = cb_res_int(res, 0, "is_active") != 0;
	} else {
		rc = CB_ERR_NOTFOUND;
	}
	cb_res_free(res);
	return rc;
}

int
cb_db_user_in_visible_chat(
    struct cb_db *db, long long agent_id, long long agent_dept, long long customer_id, int *yes)
{
	struct cb_res *res;
	int rc = cb_db_query(db, &res,
	    "SELECT EXISTS (SELECT 1 FROM chats WHERE customer_id = ? "
	    "  AND (department_id = ? OR agent_id = ?)) AS v",
	    "iIi", customer_id, agent_dept, agent_id);

	if (rc != CB_OK)
		return rc;
	*yes = cb_res_int(res, 0, "v") != 0;
	cb_res_free(res);
	return CB_OK;
}

static int
department_unusable(struct cb_error *e)
{
	cb_error_set(e, 422, "validation_error", "department_id",
	    "department_id must name an existing, active department");
	return CB_ERR_REPLY;
}

/*
 * agent.status to the agent, its department and the one it left (old_dept,
 * 0: none). As every agent.status: one per agent and request, read again
 * under the agent's mutex when it is published (cb_db_events_publish).
 */
static int
status_event(struct cb_db *db, long long id, long long old_dept, struct cb_events *ev)
{
	static const char *const kinds[] = {"agent", "department", "department"};
	json_object *user;
	int rc = cb_db_user_json(db, id, &user);

	if (rc != CB_OK)
		return rc;
	json_object *dept = json_object_object_get(user, "department_id");
	long long ids[] = {id, dept ? json_object_get_int64(dept) : 0, old_dept};
	cb_events_add_status(ev, id, user, kinds, ids, 3);
	return CB_OK;
}

int
cb_db_user_create(struct cb_db *db, const struct cb_user_input *in, long long *id,
    struct cb_events *ev, struct cb_error *e)
{
	long long dept = in->role == CB_ROLE_AGENT ? in->department_id : 0;
	int rc = CB_OK;

	/* The department's lock keeps it from being deleted under the new agent. */
	if (dept > 0 && (rc = cb_db_department_usable(db, dept)) == CB_ERR_NOTFOUND)
		return department_unusable(e);
	if (rc != CB_OK)
		return rc;
	rc = cb_db_exec(db,
	    "INSERT INTO users (username, password_hash, email, full_name, role, department_id, "
	    "  max_chats, presence) VALUES (?, ?, ?, ?, ?, ?, ?, 'offline')",
	    "sssssIi", in->username, in->password_hash, in->email, in->full_name,
	    cb_role_name(in->role), dept, in->has_max_chats ? in->max_chats : 5LL);
	*id = cb_db_insert_id(db);
	if (rc == CB_OK && in->role == CB_ROLE_AGENT)
		rc = status_event(db, *id, 0, ev);
	return rc;
}

/* The part of a user row an update starts from. */
struct user_row {
	struct cb_user_state st;
	long long max_chats;
};

static int
load_row(struct cb_db *db, long long id, int lock, struct user_row *row)
{
	struct cb_res *res;
	int rc = lock
	    ? cb_db_query(db, &res,
	          "SELECT role, department_id, is_active, max_chats FROM users WHERE id = ? FOR UPDATE",
	          "i", id)
	    : cb_db_query(db, &res,
	          "SELECT role, department_id, is_active, max_chats FROM users WHERE id = ?", "i",
	          id);

	if (rc != CB_OK)
		return rc;
	if (res->nrows == 1) {
		row->st.role = cb_role_parse(cb_res_str(res, 0, "role"));
		row->st.department_id = cb_res_int(res, 0, "department_id");
		row->st.is_active = cb_res_int(res, 0, "is_active") != 0;
		row->max_chats = cb_res_int(res, 0, "max_chats");
	} else {
		rc = CB_ERR_NOTFOUND;
	}
	cb_res_free(res);
	return rc;
}

/*
 * The router let the acting admin in when its request started; another admin
 * may since have deactivated or demoted it, and two admins removing each
 * other at once would both succeed and leave neither. So its row is read
 * again inside the write, locked until COMMIT: whichever of two such writes
 * locks second sees the first one's result and changes nothing. A shared
 * lock is enough to keep the row as read, and lets one admin's own writes
 * run side by side. CB_ERR_REPLY with 401 (deactivated) or 403 (no longer
 * an admin) in e.
 */
static int
admin_still_acts(struct cb_db *db, long long admin_id, struct cb_error *e)
{
	struct cb_res *res;
	int rc = cb_db_query(db, &res,
	    "SELECT role, is_active FROM users WHERE id = ? LOCK IN SHARE MODE", "i", admin_id);

	if (rc != CB_OK)
		return rc;
	int is_active = res->nrows == 1 && cb_res_int(res, 0, "is_active") != 0;
	unsigned role = res->nrows == 1 ? cb_role_parse(cb_res_str(res, 0, "role")) : 0;
	cb_res_free(res);
	if (!is_active) {
		cb_error_set(e, 401, "unauthorized", NULL, "the token was revoked meanwhile");
		return CB_ERR_REPLY;
	}
	if (role != CB_ROLE_ADMIN) {
		cb_error_set(e, 403, "forbidden", NULL, "this user is no longer an admin");
		return CB_ERR_REPLY;
	}
	return CB_OK;
}

/*
 * Locks user id's row into *locked and, if admin_id is another user, the
 * acting admin's (admin_still_acts): two users rows, lower id first, so two
 * admins acting on each other wait for one another instead of deadlocking.
 */
static int
lock_rows(
    struct cb_db *db, long long id, long long admin_id, struct user_row *locked, struct cb_error *e)
{
	int rc = CB_OK;

	if (admin_id > 0 && admin_id < id)
		rc = admin_still_acts(db, admin_id, e);
	if (rc == CB_OK)
		rc = load_row(db, id, 1, locked);
	if (rc == CB_OK && admin_id > id)
		rc = admin_still_acts(db, admin_id, e);
	return rc;
}

/* The state in asks for, starting from before. */
static void
wanted_state(
    const struct cb_user_input *in, const struct cb_user_state *before, struct cb_user_state *after)
{
	after->role = in->has_role ? in->role : before->role;
	after->department_id = cb_logic_user_department(
	    after->role, in->has_department, in->department_id, before->department_id);
	after->is_active = in->has_active ? in->is_active : before->is_active;
}

/*
 * Writes every field in asks for. A user that stops being an agent or is
 * deactivated goes offline, so that presence never outlives the role.
 */
static int
write_row(struct cb_db *db, long long id, const struct cb_user_input *in,
    const struct cb_user_state *before, const struct cb_user_state *after)
{
	int offline = before->role != after->role || !after->is_active;

	return cb_db_exec(db,
	    "UPDATE users SET username = IF(?, ?, username), password_hash = IF(?, ?, password_hash), "
	    "  full_name = IF(?, ?, full_name), email = IF(?, ?, email), role = ?, department_id = ?, "
	    "  max_chats = IF(?, ?, max_chats), is_active = ?, "
	    "  presence = IF(?, 'offline', presence), updated_at = NOW(3) WHERE id = ?",
	    "isisisissIiiiii", (long long)in->has_username, in->username,
	    (long long)in->has_password, in->password_hash, (long long)in->has_full_name,
	    in->full_name, (long long)in->has_email, in->email, cb_role_name(after->role),
	    after->department_id, (long long)in->has_max_chats, in->max_chats,
	    (long long)after->is_active, (long long)offline, id);
}

/* The effects after the row is written: tokens, the event, the drains. */
static int
after_write(struct cb_db *db, long long id, const struct cb_user_input *in,
    const struct cb_user_state *before, const struct cb_user_state *after,
    const struct cb_user_plan *plan, struct cb_events *ev)
{
	int rc = CB_OK;

	if (before->is_active && !after->is_active)
		rc = cb_db_sessions_revoke_user(db, id, 0);
	/* A new password ends every other session: whoever knew the old one is out. */
	else if (in->has_password)
		rc = cb_db_sessions_revoke_user(db, id, in->keep_session);
	if (rc == CB_OK && plan->status_event)
		rc = status_event(db, id,
		    before->department_id != after->department_id ? before->department_id : 0, ev);
	for (int i = 0; i < 2 && rc == CB_OK; i++)
		if (plan->drain[i] > 0)
			rc = cb_db_assign_drain(db, plan->drain[i], ev, NULL);
	return rc;
}

int
cb_db_user_update(struct cb_db *db, long long id, const struct cb_user_input *in,
    struct cb_events *ev, struct cb_error *e)
{
	struct user_row row, locked;
	struct cb_user_state after;
	struct cb_user_plan plan;
	int rc = load_row(db, id, 0, &row);

	if (rc != CB_OK)
		return rc;
	wanted_state(in, &row.st, &after);
	const char *field = cb_logic_user_shape_field(&after);
	if (field != NULL) {
		cb_error_set(e, 422, "validation_error", field,
		    after.role == CB_ROLE_AGENT ? "an agent needs a department_id"
		                                : "only agents belong to a department");
		return CB_ERR_REPLY;
	}
	/*
	 * Departments, then the mutexes of the chats a requeue would move, then
	 * the user's row (db-assign.h).
	 */
	cb_logic_user_plan(
	    &row.st, &after, in->has_max_chats && in->max_chats > row.max_chats, &plan);
	if ((rc = cb_db_lock_departments(db, row.st.department_id, after.department_id)) != CB_OK ||
	    (plan.requeue && (rc = cb_db_agent_chats_mutex(db, id)) != CB_OK) ||
	    (rc = lock_rows(db, id, in->admin_id, &locked, e)) != CB_OK)
		return rc;
	/*
	 * Changed since the first read (moved, deactivated, ...): our locks may be
	 * the wrong ones, and what we would write back, is_active included, is
	 * stale. Decide again from the row as it now is.
	 */
	if (locked.st.department_id != row.st.department_id || locked.st.role != row.st.role ||
	    locked.st.is_active != row.st.is_active || locked.max_chats != row.max_chats)
		return CB_ERR_RETRY;
	/* An admin writing its own row: the row just locked is the one to check. */
	if (in->admin_id == id && (rc = admin_still_acts(db, id, e)) != CB_OK)
		return rc;
	if (plan.check_department &&
	    (rc = cb_db_department_usable(db, after.department_id)) == CB_ERR_NOTFOUND)
		return department_unusable(e);
	if (rc == CB_OK && plan.requeue)
		rc = cb_db_assign_requeue_agent(db, id, ev, NULL);
	if (rc == CB_OK)
		rc = write_row(db, id, in, &row.st, &after);
	if (rc == CB_OK)
		rc = after_write(db, id, in, &row.st, &after, &plan, ev);
	return rc;
}

/*
 * Anyone but an agent: both rows locked in id order (lock_rows), then the
 * target checked again. One that became an agent meanwhile needs its
 * department locked first: the transaction runs again.
 */
static int
deactivate_other(
    struct cb_db *db, long long id, unsigned role, long long admin_id, struct cb_error *e)
{
	struct user_row locked;
	int rc = lock_rows(db, id, admin_id, &locked, e);

	if (rc == CB_OK && locked.st.role != role)
		rc = CB_ERR_RETRY;
	else if (rc == CB_OK && !locked.st.is_active)
		rc = CB_ERR_NOTFOUND;
	if (rc != CB_OK)
		return rc;
	return cb_db_exec(
	    db, "UPDATE users SET is_active = FALSE, updated_at = NOW(3) WHERE id = ?", "i", id);
}

int
cb_db_user_deactivate(
    struct cb_db *db, long long id, long long admin_id, struct cb_events *ev, struct cb_error *e)
{
	unsigned role;
	int is_active;
	int rc = cb_db_user_facts(db, id, &role, &is_active);

	if (rc == CB_OK && !is_active)
		rc = CB_ERR_NOTFOUND;
	if (rc != CB_OK)
		return rc;
	/*
	 * An agent's row is locked after its department and its chats' mutexes
	 * (db-assign.h), so the admin's row comes after it: an agent is never
	 * the acting admin, so no one waits the other way round.
	 */
	if (role == CB_ROLE_AGENT) {
		rc = cb_db_agent_set_presence(db, id, "offline", 1, ev, NULL, NULL);
		if (rc == CB_OK)
			rc = admin_still_acts(db, admin_id, e);
	} else {
		rc = deactivate_other(db, id, role, admin_id, e);
	}
	if (rc == CB_OK)
		rc = cb_db_sessions_revoke_user(db, id, 0);
	return rc;
}

int
cb_db_user_heartbeat(struct cb_db *db, long long id)
{
	int rc = cb_db_exec(
	    db, "UPDATE users SET last_seen_at = NOW(3) WHERE id = ? AND is_active", "i", id);

	if (rc == CB_OK && cb_db_affected(db) != 1)
		rc = CB_ERR_NOTFOUND;
	return rc;
}
