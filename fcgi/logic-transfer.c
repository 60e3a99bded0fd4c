/* logic-transfer.c - the checks and the system message of a transfer (contract 6.3). */
#include <stdio.h>

#include "logic-transfer.h"

enum cb_transfer_verdict
cb_logic_transfer_check(const struct cb_transfer_chat *chat, const struct cb_transfer_dept *target,
    const struct cb_transfer_agent *agent)
{
	if (chat->closed)
		return CB_TRANSFER_CHAT_CLOSED;
	if (!target->exists || !target->is_active)
		return CB_TRANSFER_BAD_DEPARTMENT;
	if (agent->id <= 0)
		return target->id == chat->department_id ? CB_TRANSFER_SAME_DEPARTMENT
		                                         : CB_TRANSFER_OK;
	if (!agent->exists || !agent->is_agent || !agent->is_active ||
	    agent->department_id != target->id)
		return CB_TRANSFER_BAD_AGENT;
	if (agent->id == chat->agent_id)
		return CB_TRANSFER_ALREADY_HOLDS;
	if (!agent->available || agent->active_chats >= agent->max_chats)
		return CB_TRANSFER_AGENT_UNAVAILABLE;
	return CB_TRANSFER_OK;
}

void
cb_logic_transfer_error(enum cb_transfer_verdict v, int *status, const char **code,
    const char **field, const char **message)
{
	*status = 422;
	*code = "validation_error";
	*field = NULL;
	switch (v) {
	case CB_TRANSFER_OK: *status = 200, *code = NULL, *message = "ok"; break;
	case CB_TRANSFER_CHAT_CLOSED:
		*status = 409, *code = "chat_closed", *message = "the chat is closed";
		break;
	case CB_TRANSFER_BAD_DEPARTMENT:
		*field = "department_id", *message = "department_id must be an active department";
		break;
	case CB_TRANSFER_SAME_DEPARTMENT:
		*field = "department_id";
		*message =
		    "the chat is already in this department; name an agent_id to move it within it";
		break;
	case CB_TRANSFER_BAD_AGENT:
		*field = "agent_id",
		*message = "agent_id must be an active agent of the target department";
		break;
	case CB_TRANSFER_ALREADY_HOLDS:
		*field = "agent_id", *message = "the chat is already assigned to this agent";
		break;
	case CB_TRANSFER_AGENT_UNAVAILABLE:
		*status = 409, *code = "agent_unavailable";
		*message = "the agent is not available or has no spare capacity";
		break;
	}
}

size_t
cb_logic_transfer_message(
    char *out, size_t outlen, const char *from, const char *to, const char *by, const char *reason)
{
	int n;

	if (reason != NULL && reason[0] != '\0')
		n = snprintf(out, outlen, "Chat transferred from %s to %s by %s. Reason: %s", from,
		    to, by, reason);
	else
		n = snprintf(out, outlen, "Chat transferred from %s to %s by %s.", from, to, by);
	return n < 0 ? 0 : (size_t)n;
}
