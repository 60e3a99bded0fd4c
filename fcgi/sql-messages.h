/*
 * sql-messages.h - the SQL of a chat's message pages, kept apart so that
 * bench/sql-bench.c times exactly the statement the worker sends.
 */
#ifndef CB_SQL_MESSAGES_H
#define CB_SQL_MESSAGES_H

#define CB_MESSAGE_COLUMNS "m.id, m.chat_id, m.sender_id, m.sender_role, m.content, m.created_at "

/* The chat's total rides along as a scalar subquery, evaluated once; parameter: chat id. */
#define CB_SQL_MESSAGES_TOTAL ", (SELECT COUNT(*) FROM messages x WHERE x.chat_id = ?) AS _total "

/*
 * A page comes with its chat's state, for the access check, in one round
 * trip: the chat row joined to each message of the page. An empty page has
 * no rows at all, like a chat that does not exist. (A LEFT JOIN would tell
 * the two apart, but MariaDB then sorts the page in a temporary table, four
 * times the cost.) The state's columns start with "_", so the page written
 * from the rows leaves them out.
 */
#define CB_SQL_PAGE_CHAT \
	"c.id AS _id, c.customer_id AS _customer_id, c.department_id AS _department_id, " \
	"c.agent_id AS _agent_id, c.status AS _status, "

/*
 * The upper bound is inclusive, the last id a page may hold (before_id - 1;
 * without before_id, 2^63 - 1): "m.id < 2^63 - 1" left out a message with
 * the largest id there is.
 */

/* Parameters: chat id (total), after id, upto id, chat id, limit. Oldest first. */
#define CB_SQL_MESSAGES_AFTER \
	"SELECT " CB_SQL_PAGE_CHAT CB_MESSAGE_COLUMNS CB_SQL_MESSAGES_TOTAL \
	"FROM chats c JOIN messages m ON m.chat_id = c.id AND m.id > ? AND m.id <= ? " \
	"WHERE c.id = ? ORDER BY m.id LIMIT ?"

/* Parameters: chat id (total), upto id, chat id, limit. Newest first. */
#define CB_SQL_MESSAGES_NEWEST \
	"SELECT " CB_SQL_PAGE_CHAT CB_MESSAGE_COLUMNS CB_SQL_MESSAGES_TOTAL \
	"FROM chats c JOIN messages m ON m.chat_id = c.id AND m.id <= ? " \
	"WHERE c.id = ? ORDER BY m.id DESC LIMIT ?"

#endif
