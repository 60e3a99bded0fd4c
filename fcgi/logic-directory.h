/*
 * logic-directory.h - the pure rules of departments and users (contract
 * sections 3, 4 and 5): who may read or change a user, which fields a user
 * may change on itself, the single-default rule, and what an update of a user
 * must do to the assignment engine. No I/O and no JSON, so every rule is
 * unit-tested; the data layer and the handlers apply the answers.
 */
#ifndef CB_LOGIC_DIRECTORY_H
#define CB_LOGIC_DIRECTORY_H

/*
 * Non-zero when key is a field of the user object (contract 5) other than
 * the self-service ones (full_name, email, password): the admin-only ones
 * (username, role, department_id, max_chats, is_active), the ones no PUT
 * sets (status and presence have their own endpoint) and the read-only
 * ones. A self-service PUT carrying one is refused whole with 403 (contract
 * 3: "any other field"); a key that is no field of the object is unknown,
 * ignored (contract 2).
 */
int cb_logic_user_field_not_self_service(const char *key);

/* What a caller wants to know before it may read a user. */
struct cb_user_access {
	unsigned caller_role; /* one CB_ROLE_ bit */
	long long caller_id;
	long long target_id;
	unsigned target_role;
	int target_active;
	int target_in_visible_chat; /* a customer of a chat visible to the calling agent */
};

/*
 * GET /api/users/{id}: 0 when allowed, else the HTTP status to answer.
 * Admins read anyone, deactivated users too (they can reactivate them).
 * For everyone else a deactivated user does not exist (404). An agent reads
 * staff, itself and the customers of its visible chats (else 403); a
 * customer only itself (else 404, so it learns nothing about other ids).
 */
int cb_logic_user_read_access(const struct cb_user_access *a);

/*
 * PUT /api/users/{id}, .../status and .../heartbeat: 0 when allowed, else
 * the status. Admins may act on anyone; others only on themselves, an agent
 * getting 403 and a customer 404 for anybody else.
 */
int cb_logic_user_write_access(unsigned caller_role, long long caller_id, long long target_id);

/* A user's state as far as departments and the engine are concerned. */
struct cb_user_state {
	unsigned role; /* one CB_ROLE_ bit */
	long long department_id; /* 0: none */
	int is_active;
};

/* What an update from before to after must do. */
struct cb_user_plan {
	int requeue; /* return the agent's active chats to their queues first (6.4) */
	int check_department; /* after.department_id must be a live, active department */
	long long drain[2]; /* departments whose queues to serve afterwards (0: none) */
	int status_event; /* agent.status is due */
};

/*
 * The department a user ends with: the one asked for if any (want_dept
 * given, 0 for null), else the current one for an agent and none for
 * everyone else (a user who stops being an agent leaves its department).
 */
long long cb_logic_user_department(
    unsigned role, int has_dept, long long want_dept, long long current_dept);

/*
 * NULL when the shape is valid, else the field at fault: an agent needs a
 * department, and only agents may have one.
 */
const char *cb_logic_user_shape_field(const struct cb_user_state *s);

/*
 * Plans an update of a user. An active agent that leaves its department,
 * stops being an agent or is deactivated gives its chats back first; an
 * agent that joins a department (a deactivated one too), is reactivated or
 * becomes an agent must go to a live, active one; every department an
 * active agent leaves or joins
 * is drained afterwards (capacity may have appeared: rule 6.2.5).
 * max_chats_raised asks for a drain too.
 */
void cb_logic_user_plan(const struct cb_user_state *before, const struct cb_user_state *after,
    int max_chats_raised, struct cb_user_plan *out);

/*
 * The single-default rule (contract 4) for a department that was_default,
 * asked to end as (is_default, is_active): NULL when allowed, else why not.
 * Exactly one department is the default, so the default cannot give the
 * role up except by another taking it, and it cannot be inactive.
 */
const char *cb_logic_department_default_rule(int was_default, int is_default, int is_active);

#endif
