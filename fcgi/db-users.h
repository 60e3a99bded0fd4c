/* db-users.h - the user object of contract section 5, and the queries behind it. */
#ifndef CB_DB_USERS_H
#define CB_DB_USERS_H

#include <json-c/json.h>

#include "db.h"

/*
 * The columns of the user object. status is derived here, in one place, from
 * presence and the live count of active chats, so it can never drift from them.
 * Never a password or its hash.
 */
#define CB_ACTIVE_CHATS \
	"(SELECT COUNT(*) FROM chats c WHERE c.agent_id = u.id AND c.status = 'active')"
#define CB_USER_COLUMNS                                                                  \
	"u.id, u.username, u.email, u.full_name, u.role, u.department_id, "                  \
	"CASE WHEN u.role <> 'agent' THEN NULL "                                             \
	"  WHEN u.presence = 'offline' THEN 'offline' "                                      \
	"  WHEN u.presence = 'busy' OR " CB_ACTIVE_CHATS " >= u.max_chats THEN 'busy' "      \
	"  ELSE 'available' END AS status, "                                                 \
	"IF(u.role = 'agent', u.presence, NULL) AS presence, u.max_chats, "                  \
	CB_ACTIVE_CHATS " AS active_chats, u.is_active, u.last_seen_at, "                    \
	"u.created_at, u.updated_at "
#define CB_USER_FROM "FROM users u "

/* The user object of id (active or not), or CB_ERR_NOTFOUND. */
int cb_db_user_json(struct cb_db *db, long long id, json_object **out);

#endif
