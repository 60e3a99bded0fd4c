/* logic-directory.c - the pure rules of departments and users; see logic-directory.h. */
#include <stddef.h>
#include <string.h>

#include "auth.h"
#include "logic-directory.h"
#include "util.h"

int
cb_logic_user_field_not_self_service(const char *key)
{
	static const char *const others[] = {"username", "role", "department_id", "max_chats",
	    "is_active", "status", "presence", "id", "active_chats", "last_seen_at", "created_at",
	    "updated_at"};

	for (size_t i = 0; i < CB_ARRAY_LEN(others); i++)
		if (strcmp(key, others[i]) == 0)
			return 1;
	return 0;
}

int
cb_logic_user_read_access(const struct cb_user_access *a)
{
	if (a->caller_role == CB_ROLE_ADMIN)
		return 0;
	if (!a->target_active)
		return 404;
	if (a->caller_id == a->target_id)
		return 0;
	if (a->caller_role != CB_ROLE_AGENT)
		return 404;
	if (a->target_role & CB_ROLE_STAFF)
		return 0;
	return a->target_in_visible_chat ? 0 : 403;
}

int
cb_logic_user_write_access(unsigned caller_role, long long caller_id, long long target_id)
{
	if (caller_role == CB_ROLE_ADMIN || caller_id == target_id)
		return 0;
	return caller_role == CB_ROLE_AGENT ? 403 : 404;
}

long long
cb_logic_user_department(unsigned role, int has_dept, long long want_dept, long long current_dept)
{
	if (has_dept)
		return want_dept > 0 ? want_dept : 0;
	return role == CB_ROLE_AGENT ? current_dept : 0;
}

const char *
cb_logic_user_shape_field(const struct cb_user_state *s)
{
	if ((s->role == CB_ROLE_AGENT) != (s->department_id > 0))
		return "department_id";
	return NULL;
}

/* An agent that serves a department's queue: active, of role agent. */
static long long
serving(const struct cb_user_state *s)
{
	return s->role == CB_ROLE_AGENT && s->is_active ? s->department_id : 0;
}

/* The department an agent belongs to, active or not. */
static long long
agent_department(const struct cb_user_state *s)
{
	return s->role == CB_ROLE_AGENT ? s->department_id : 0;
}

/*
 * The department is checked whenever an agent gets one (a move, a new
 * agent) and when an agent starts serving again: also for a deactivated
 * agent, whose department must exist (a missing one would break the foreign
 * key: a 500) and be active, so that its reactivation finds it usable.
 */
void
cb_logic_user_plan(const struct cb_user_state *before, const struct cb_user_state *after,
    int max_chats_raised, struct cb_user_plan *out)
{
	long long from = serving(before), to = serving(after);
	long long dept = agent_department(after);

	memset(out, 0, sizeof *out);
	out->requeue = from > 0 && from != to;
	out->check_department =
	    (to > 0 && to != from) || (dept > 0 && dept != agent_department(before));
	if (from != to) {
		out->drain[0] = from;
		out->drain[1] = to;
	} else if (to > 0 && max_chats_raised) {
		out->drain[0] = to;
	}
	out->status_event = before->role == CB_ROLE_AGENT || after->role == CB_ROLE_AGENT;
}

const char *
cb_logic_department_default_rule(int was_default, int is_default, int is_active)
{
	if (was_default && !is_default)
		return "exactly one department is the default: make another one the default instead";
	if (is_default && !is_active)
		return "the default department cannot be inactive";
	return NULL;
}
