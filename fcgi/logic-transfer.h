/*
 * logic-transfer.h - contract 6.3 as pure functions: may this transfer
 * happen, and what does the system message say. No I/O: the data layer reads
 * the chat, the target department and the named agent under the department
 * locks (db-chat-ops.c), asks here, and applies the answer.
 */
#ifndef CB_LOGIC_TRANSFER_H
#define CB_LOGIC_TRANSFER_H

#include <stddef.h>

/* The chat as it stands, locked. */
struct cb_transfer_chat {
	int closed;
	long long department_id;
	long long agent_id; /* 0: waiting */
};

/* The target department; exists is 0 for an unknown or deleted one. */
struct cb_transfer_dept {
	long long id;
	int exists, is_active;
};

/* The named agent (only read when the request names one). */
struct cb_transfer_agent {
	long long id; /* 0: the request names no agent */
	int exists; /* a user with that id exists */
	int is_agent; /* role agent */
	int is_active;
	long long department_id;
	int available; /* presence available */
	int active_chats, max_chats;
};

enum cb_transfer_verdict {
	CB_TRANSFER_OK,
	CB_TRANSFER_CHAT_CLOSED, /* 409 chat_closed */
	CB_TRANSFER_BAD_DEPARTMENT, /* 422 department_id: unknown or inactive */
	CB_TRANSFER_SAME_DEPARTMENT, /* 422 department_id: same department, no agent named */
	CB_TRANSFER_BAD_AGENT, /* 422 agent_id: not an active agent of the target */
	CB_TRANSFER_ALREADY_HOLDS, /* 422 agent_id: the named agent has the chat already */
	CB_TRANSFER_AGENT_UNAVAILABLE /* 409 agent_unavailable: not available or full */
};

/* The first rule of 6.3 the transfer breaks, in the contract's order, or CB_TRANSFER_OK. */
enum cb_transfer_verdict cb_logic_transfer_check(const struct cb_transfer_chat *chat,
    const struct cb_transfer_dept *target, const struct cb_transfer_agent *agent);

/* The HTTP status, error code, field (NULL: none) and message of a verdict other than OK. */
void cb_logic_transfer_error(enum cb_transfer_verdict v, int *status, const char **code,
    const char **field, const char **message);

/*
 * "Chat transferred from <from> to <to> by <by>." plus " Reason: <reason>"
 * when reason is neither NULL nor empty; into out (size outlen, always
 * terminated). Returns the length it needed, like snprintf.
 */
size_t cb_logic_transfer_message(
    char *out, size_t outlen, const char *from, const char *to, const char *by, const char *reason);

#endif
