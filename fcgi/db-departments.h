/*
 * db-departments.h - the department object of contract section 4 and its
 * writes: the single default, case-insensitive unique live names, soft
 * delete, and the drain when a department comes back to life.
 */
#ifndef CB_DB_DEPARTMENTS_H
#define CB_DB_DEPARTMENTS_H

#include <json-c/json.h>

#include "db-users.h"
#include "db.h"
#include "events.h"
#include "request.h"

/*
 * The department object's columns. The counts are computed live: agent_count
 * = active agents of the department, available_agents = those whose derived
 * status (db-users.h) is available, waiting_chats = its queue.
 */
#define CB_DEPARTMENT_COLUMNS \
	"d.id, d.name, d.description, d.is_active, d.is_default, d.created_at, d.updated_at, " \
	"(SELECT COUNT(*) FROM users u WHERE u.department_id = d.id AND u.role = 'agent' " \
	"  AND u.is_active) AS agent_count, " \
	"(SELECT COUNT(*) FROM users u WHERE u.department_id = d.id AND u.role = 'agent' " \
	"  AND u.is_active AND " CB_USER_AVAILABLE ") AS available_agents, " \
	"(SELECT COUNT(*) FROM chats c WHERE c.department_id = d.id " \
	"  AND c.status = 'waiting') AS waiting_chats "
/* Deleted departments do not exist for anybody. */
#define CB_DEPARTMENT_FROM "FROM departments d WHERE d.deleted_at IS NULL "

/* What a POST or PUT asks for; has_ flags say which fields were given. */
struct cb_department_input {
	int has_name, has_description, has_active, has_default;
	const char *name;
	const char *description; /* NULL: clear it */
	int is_active, is_default;
};

/* The department object of a live department id, or CB_ERR_NOTFOUND. */
int cb_db_department_json(struct cb_db *db, long long id, json_object **out);

/* Live departments by name (active_only: only active ones), paged; *total unpaged. */
int cb_db_departments_list(struct cb_db *db, int active_only, long long limit, long long offset,
    json_object **out, long long *total);

/*
 * Each runs inside cb_db_tx. A broken rule records its error in e and
 * returns CB_ERR_REPLY; a name taken returns CB_ERR_DUPLICATE.
 *
 * create: fills *id. Taking the default moves it from the old default.
 * update: CB_ERR_NOTFOUND for no live department; re-activation drains
 *   the department's queue (rule 6.2.5) into ev.
 * delete: 409 conflict for the default, 409 department_in_use while active
 *   agents belong to it or it has chats that are not closed.
 */
int cb_db_department_create(
    struct cb_db *db, const struct cb_department_input *in, long long *id, struct cb_error *e);
int cb_db_department_update(struct cb_db *db, long long id, const struct cb_department_input *in,
    struct cb_events *ev, struct cb_error *e);
int cb_db_department_delete(struct cb_db *db, long long id, struct cb_error *e);

/*
 * Locks department id (after any lock of lower ids, see db-assign.h) and
 * tells whether agents may join it: CB_OK if it is live and active, else
 * CB_ERR_NOTFOUND.
 */
int cb_db_department_usable(struct cb_db *db, long long id);

#endif
