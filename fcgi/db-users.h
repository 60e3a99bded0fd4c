/* db-users.h - the user object of contract section 5, and the queries behind it. */
#ifndef CB_DB_USERS_H
#define CB_DB_USERS_H

#include <json-c/json.h>

#include "db.h"
#include "events.h"
#include "request.h"

/*
 * The columns of the user object. status is derived here, in one place, from
 * presence and the live count of active chats, so it can never drift from them.
 * Never a password or its hash.
 */
/*
 * FORCE INDEX: left alone, MariaDB reads this through (status, id) and
 * scans every active chat per agent; (agent_id, status) reads a handful.
 * Measured on the bench dataset: the department list got 30 % cheaper.
 */
#define CB_ACTIVE_CHATS \
	"(SELECT COUNT(*) FROM chats c FORCE INDEX (ix_chats_agent) " \
	"  WHERE c.agent_id = u.id AND c.status = 'active')"
#define CB_USER_AVAILABLE "(u.presence = 'available' AND " CB_ACTIVE_CHATS " < u.max_chats)"
#define CB_USER_COLUMNS \
	"u.id, u.username, u.email, u.full_name, u.role, u.department_id, " \
	"CASE WHEN u.role <> 'agent' THEN NULL " \
	"  WHEN u.presence = 'offline' THEN 'offline' " \
	"  WHEN u.presence = 'busy' OR " CB_ACTIVE_CHATS " >= u.max_chats THEN 'busy' " \
	"  ELSE 'available' END AS status, " \
	"IF(u.role = 'agent', u.presence, NULL) AS presence, u.max_chats, " CB_ACTIVE_CHATS \
	" AS active_chats, u.is_active, u.last_seen_at, " \
	"u.created_at, u.updated_at "
#define CB_USER_FROM "FROM users u "

/* The user object of id (active or not), or CB_ERR_NOTFOUND. */
int cb_db_user_json(struct cb_db *db, long long id, json_object **out);

/* What GET /api/users/ asks for; NULL / 0 fields do not filter. */
struct cb_user_filter {
	int staff_only; /* admins and agents only */
	const char *role; /* "admin" | "agent" | "customer" */
	long long department_id;
	const char *status; /* the derived status: "available" | "busy" | "offline" */
};

/*
 * Active users matching f, by id, paged; *total is the unpaged count.
 * Deactivated users are in no list.
 */
int cb_db_users_list(struct cb_db *db, const struct cb_user_filter *f, long long limit,
    long long offset, json_object **out, long long *total);

/* The role (a CB_ROLE_ bit) and is_active of user id, or CB_ERR_NOTFOUND. */
int cb_db_user_facts(struct cb_db *db, long long id, unsigned *role, int *is_active);

/*
 * Non-zero in *yes when customer_id has a chat visible to the agent: one of
 * the agent's department or assigned to the agent (contract 3).
 */
int cb_db_user_in_visible_chat(
    struct cb_db *db, long long agent_id, long long agent_dept, long long customer_id, int *yes);

/* What a POST or PUT of a user asks for; has_ flags say which fields were given. */
struct cb_user_input {
	int has_username, has_password, has_full_name, has_email, has_role, has_department,
	    has_max_chats, has_active;
	const char *username;
	const char *password_hash; /* Argon2id string, hashed before the transaction */
	const char *full_name;
	const char *email; /* NULL: none */
	unsigned role; /* one CB_ROLE_ bit */
	long long department_id; /* 0: none */
	long long max_chats;
	int is_active;
	long long keep_session; /* a new password revokes every other session but this one */
	long long admin_id; /* the acting admin, checked again inside the write; 0: self-service */
};

/*
 * Each runs inside cb_db_tx and gathers its events in ev. A broken rule
 * records its error in e and returns CB_ERR_REPLY; a username taken returns
 * CB_ERR_DUPLICATE; no such user CB_ERR_NOTFOUND.
 *
 * create: fills *id; an agent starts offline in a live active department.
 * update: every effect of contract 5 and 6.4 (logic-directory.h,
 *   cb_logic_user_plan): requeue, department moves, drains, deactivation
 *   with revoked tokens, reactivation, agent.status to the agent and to both
 *   its old and new department.
 * deactivate: DELETE of a user by admin_id: is_active false, tokens
 *   revoked, an agent set offline with 6.4. An already deactivated user is
 *   CB_ERR_NOTFOUND.
 * The acting admin (in->admin_id, admin_id) is checked again with its row
 * locked: one deactivated or demoted meanwhile changes nothing, and gets 401
 * or 403 in e.
 */
int cb_db_user_create(struct cb_db *db, const struct cb_user_input *in, long long *id,
    struct cb_events *ev, struct cb_error *e);
int cb_db_user_update(struct cb_db *db, long long id, const struct cb_user_input *in,
    struct cb_events *ev, struct cb_error *e);
int cb_db_user_deactivate(
    struct cb_db *db, long long id, long long admin_id, struct cb_events *ev, struct cb_error *e);

/* Sets last_seen_at of an active user to now; CB_ERR_NOTFOUND otherwise. */
int cb_db_user_heartbeat(struct cb_db *db, long long id);

#endif
