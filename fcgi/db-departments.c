/* db-departments.c - department rows and objects; see db-departments.h. */
#include "db-assign.h"
#include "db-departments.h"
#include "logic-directory.h"
#include "util.h"

int
cb_db_department_json(struct cb_db *db, long long id, json_object **out)
{
	struct cb_res *res;
	int rc = cb_db_query_one(
	    db, &res, "SELECT " CB_DEPARTMENT_COLUMNS CB_DEPARTMENT_FROM "AND d.id = ?", "i", id);

	*out = NULL;
	if (rc == CB_OK) {
		*out = cb_res_row_json(res, 0);
		cb_res_free(res);
	}
	return rc;
}

int
cb_db_departments_list(struct cb_db *db, int active_only, long long limit, long long offset,
    json_object **out, long long *total)
{
	struct cb_res *res;
	/* The total rides along (a window count, taken before LIMIT): one round trip. */
	int rc = cb_db_query(db, &res,
	    "SELECT " CB_DEPARTMENT_COLUMNS ", COUNT(*) OVER () AS _total " CB_DEPARTMENT_FROM
	    "AND (d.is_active OR NOT ?) ORDER BY d.name, d.id LIMIT ? OFFSET ?",
	    "iii", (long long)active_only, limit, offset);

	*out = NULL;
	if (rc != CB_OK)
		return rc;
	*total = res->nrows ? cb_res_int(res, 0, "_total") : 0;
	*out = cb_res_json_array(res);
	cb_res_free(res);
	if (*total == 0 && offset > 0) {
		/* A page past the end carries no total: count on its own. */
		rc = cb_db_query(db, &res,
		    "SELECT COUNT(*) AS n " CB_DEPARTMENT_FROM "AND (d.is_active OR NOT ?)", "i",
		    (long long)active_only);
		if (rc == CB_OK)
			*total = cb_res_int(res, 0, "n");
		cb_res_free(res);
	}
	if (rc != CB_OK) {
		json_object_put(*out);
		*out = NULL;
	}
	return rc;
}

/* The live department state an update or delete starts from, with its row locked. */
struct dept_state {
	int is_active, is_default;
};

static int
lock_live(struct cb_db *db, long long id, struct dept_state *st)
{
	struct cb_res *res;
	int rc = cb_db_query(db, &res,
	    "SELECT is_active, is_default FROM departments WHERE id = ? AND deleted_at IS NULL FOR UPDATE",
	    "i", id);

	if (rc != CB_OK)
		return rc;
	if (res->nrows == 1) {
		st->is_active = cb_res_int(res, 0, "is_active") != 0;
		st->is_default = cb_res_int(res, 0, "is_default") != 0;
	} else {
		rc = CB_ERR_NOTFOUND;
	}
	cb_res_free(res);
	return rc;
}

/*
 * Locks department id (0: a row about to be inserted) together with the
 * current default, in ascending id order (db-assign.h), and takes the
 * default away from the latter so that id can have it. Two moves of the
 * default at once thus queue up instead of colliding on the unique key.
 */
static int
take_default(struct cb_db *db, long long id)
{
	struct cb_res *res;
	int rc = cb_db_query(db, &res, "SELECT id FROM departments WHERE is_default", "");

	if (rc != CB_OK)
		return rc;
	long long old = res->nrows ? cb_res_int(res, 0, "id") : 0;
	cb_res_free(res);
	if ((rc = cb_db_lock_departments(db, id, old)) != CB_OK || old == 0)
		return rc;
	/*
	 * The holder was read from the snapshot; now that it is locked, its
	 * current row says whether it still holds the default. If another move
	 * won meanwhile, start over with the new holder (for old == id, going
	 * on would set a second default and hit the unique key).
	 */
	if (old == id) {
		rc = cb_db_query(db, &res,
		    "SELECT id FROM departments WHERE id = ? AND is_default FOR UPDATE", "i", old);
		if (rc == CB_OK && res->nrows != 1)
			rc = CB_ERR_RETRY;
		cb_res_free(res);
		return rc;
	}
	rc = cb_db_exec(db,
	    "UPDATE departments SET is_default = FALSE, updated_at = NOW(3) WHERE id = ? AND is_default",
	    "i", old);
	if (rc == CB_OK && cb_db_affected(db) != 1)
		rc = CB_ERR_RETRY;
	return rc;
}

int
cb_db_department_create(
    struct cb_db *db, const struct cb_department_input *in, long long *id, struct cb_error *e)
{
	int is_active = in->has_active ? in->is_active : 1;
	int is_default = in->has_default && in->is_default;
	const char *why = cb_logic_department_default_rule(0, is_default, is_active);
	int rc;

	if (why != NULL) {
		cb_error_set(e, 409, "conflict", NULL, "%s", why);
		return CB_ERR_REPLY;
	}
	if (is_default && (rc = take_default(db, 0)) != CB_OK)
		return rc;
	rc = cb_db_exec(db,
	    "INSERT INTO departments (name, description, is_active, is_default) VALUES (?, ?, ?, ?)",
	    "ssii", in->name, in->has_description ? in->description : NULL, (long long)is_active,
	    (long long)is_default);
	*id = cb_db_insert_id(db);
	return rc;
}

int
cb_db_department_update(struct cb_db *db, long long id, const struct cb_department_input *in,
    struct cb_events *ev, struct cb_error *e)
{
	struct dept_state st;
	int rc = CB_OK;

	/* Taking the default locks the old holder too, in id order, before this row. */
	if (in->has_default && in->is_default)
		rc = take_default(db, id);
	if (rc == CB_OK)
		rc = lock_live(db, id, &st);
	if (rc != CB_OK)
		return rc;
	int is_active = in->has_active ? in->is_active : st.is_active;
	int is_default = in->has_default ? in->is_default : st.is_default;
	const char *why = cb_logic_department_default_rule(st.is_default, is_default, is_active);
	if (why != NULL) {
		cb_error_set(e, 409, "conflict", NULL, "%s", why);
		return CB_ERR_REPLY;
	}
	rc = cb_db_exec(db,
	    "UPDATE departments SET name = IF(?, ?, name), description = IF(?, ?, description), "
	    "  is_active = ?, is_default = ?, updated_at = NOW(3) WHERE id = ?",
	    "isisiii", (long long)in->has_name, in->name, (long long)in->has_description,
	    in->description, (long long)is_active, (long long)is_default, id);
	/* Re-activation makes the queue servable again (rule 6.2.5). */
	if (rc == CB_OK && is_active && !st.is_active)
		rc = cb_db_assign_drain(db, id, ev, NULL);
	return rc;
}

int
cb_db_department_delete(struct cb_db *db, long long id, struct cb_error *e)
{
	struct dept_state st;
	struct cb_res *res;
	int rc = lock_live(db, id, &st);

	if (rc != CB_OK)
		return rc;
	if (st.is_default) {
		cb_error_set(e, 409, "conflict", NULL, "the default department cannot be deleted");
		return CB_ERR_REPLY;
	}
	/* Agents join and chats enter only under this row's lock, so the counts stay true. */
	rc = cb_db_query(db, &res,
	    "SELECT (SELECT COUNT(*) FROM users WHERE department_id = ? AND role = 'agent' "
	    "  AND is_active) AS agents, "
	    "(SELECT COUNT(*) FROM chats WHERE department_id = ? AND status <> 'closed') AS chats",
	    "ii", id, id);
	if (rc != CB_OK)
		return rc;
	long long agents = cb_res_int(res, 0, "agents"), chats = cb_res_int(res, 0, "chats");
	cb_res_free(res);
	if (agents > 0 || chats > 0) {
		cb_error_set(e, 409, "department_in_use", NULL,
		    "the department still has %lld active agent(s) and %lld open chat(s)", agents,
		    chats);
		return CB_ERR_REPLY;
	}
	return cb_db_exec(db,
	    "UPDATE departments SET deleted_at = NOW(3), updated_at = NOW(3) WHERE id = ?", "i",
	    id);
}

int
cb_db_department_usable(struct cb_db *db, long long id)
{
	struct dept_state st;
	int rc = lock_live(db, id, &st);

	if (rc == CB_OK && !st.is_active)
		rc = CB_ERR_NOTFOUND;
	return rc;
}
