/* db-chat-ops.c - the chat endpoints' reads and writes; see db-chat-ops.h and db-assign.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "db-assign.h"
#include "db-chat-ops.h"
#include "history.h"
#include "logic-transfer.h"
#include "util.h"

int
cb_chat_access_check(const struct cb_user *who, const struct cb_chat_state *chat,
    enum cb_chat_access access, struct cb_error *e)
{
	if (who->role == CB_ROLE_ADMIN)
		return CB_OK;
	if (who->role == CB_ROLE_CUSTOMER) {
		if (chat->customer_id == who->id && access != CB_CHAT_TRANSFER)
			return CB_OK;
		if (chat->customer_id != who->id) {
			cb_error_set(e, 404, "not_found", NULL, "no such chat");
			return CB_ERR_REPLY;
		}
	} else if (who->role == CB_ROLE_AGENT) {
		if (chat->agent_id == who->id)
			return CB_OK;
		if (access == CB_CHAT_READ && chat->department_id == who->department_id)
			return CB_OK;
	}
	cb_error_set(e, 403, "forbidden", NULL,
	    access == CB_CHAT_READ ? "this chat is not visible to you"
	                           : "only the assigned agent may do this");
	return CB_ERR_REPLY;
}

/* The state in row 0, under its plain names or (hidden) under the "_" ones of sql-messages.h. */
static void
state_from_row(const struct cb_res *res, int hidden, struct cb_chat_state *out)
{
	static const char *const names[2][5] = {
	    {"id", "customer_id", "department_id", "agent_id", "status"},
	    {"_id", "_customer_id", "_department_id", "_agent_id", "_status"}};
	const char *const *n = names[hidden != 0];

	memset(out, 0, sizeof *out);
	out->id = cb_res_int(res, 0, n[0]);
	out->customer_id = cb_res_int(res, 0, n[1]);
	out->department_id = cb_res_int(res, 0, n[2]);
	out->agent_id = cb_res_int(res, 0, n[3]);
	snprintf(out->status, sizeof out->status, "%s", cb_res_str(res, 0, n[4]));
}

int
cb_db_chat_state(struct cb_db *db, long long id, struct cb_chat_state *out)
{
	struct cb_res *res;
	int rc = cb_db_query(db, &res,
	    "SELECT id, customer_id, department_id, agent_id, status FROM chats WHERE id = ?", "i",
	    id);

	if (rc != CB_OK)
		return rc;
	if (res->nrows == 1)
		state_from_row(res, 0, out);
	else
		rc = CB_ERR_NOTFOUND;
	cb_res_free(res);
	return rc;
}

/*
 * Reads check access against a chat's state on every request; it changes only
 * with a commit that moves the state generation, so each worker keeps the
 * states it read (cache.h), direct-mapped by id.
 */
#define STATE_SLOTS 4096

struct state_slot {
	struct cb_chat_state st; /* st.id 0: empty */
	struct cb_stamp stamp;
};

static struct state_slot state_cache[STATE_SLOTS];

int
cb_db_chat_state_read(struct cb_db *db, long long id, struct cb_chat_state *out)
{
	struct state_slot *slot = &state_cache[(unsigned long long)id % STATE_SLOTS];
	struct cb_stamp stamp;

	if (slot->st.id == id && cb_cache_fresh(&slot->stamp)) {
		*out = slot->st;
		return CB_OK;
	}
	int keep = cb_cache_stamp(&stamp);
	int rc = cb_db_chat_state(db, id, out);
	if (rc == CB_OK && keep)
		*slot = (struct state_slot){*out, stamp};
	return rc;
}

/*
 * What each role may see (contract 3), as sets MariaDB reads newest first
 * off an index and stops at the page's end: everything (an admin), the
 * customer's own chats, and for an agent the union of two disjoint sets,
 * the department's chats and the agent's own in other departments. One
 * "department_id = ? OR agent_id = ?" instead made MariaDB sort every chat
 * an agent may see, for every page (30 ms at 50,000 chats, 150 at 200,000;
 * README 5, "Lists at scale"). The agent's department binds as 'i', so an
 * agent without one (0) sees only its own chats. F stands for the filters
 * given (list_sql).
 */
#define F "%1$s"
#define LIST_COLUMNS "SELECT c.id, c.department_id, c.status FROM chats c "
#define LIST_DEPT "WHERE c.department_id = ? " F
#define LIST_OWN "WHERE c.agent_id = ? AND c.department_id <> ? " F

#define PAGE_ADMIN LIST_COLUMNS "WHERE 1 " F "ORDER BY c.id DESC LIMIT ? OFFSET ?"
#define COUNT_ADMIN "(SELECT COUNT(*) FROM chats c WHERE 1 " F ")"
#define PAGE_CUSTOMER \
	LIST_COLUMNS "WHERE c.customer_id = ? " F "ORDER BY c.id DESC LIMIT ? OFFSET ?"
#define COUNT_CUSTOMER "(SELECT COUNT(*) FROM chats c WHERE c.customer_id = ? " F ")"
#define PAGE_AGENT \
	"SELECT * FROM ((" LIST_COLUMNS LIST_DEPT \
	"ORDER BY c.id DESC LIMIT ?) UNION ALL (" LIST_COLUMNS LIST_OWN \
	"ORDER BY c.id DESC LIMIT ?)) u ORDER BY u.id DESC LIMIT ? OFFSET ?"
#define COUNT_AGENT \
	"((SELECT COUNT(*) FROM chats c " LIST_DEPT ") + (SELECT COUNT(*) FROM chats c " LIST_OWN \
	"))"

/*
 * The page's ids first, and only then its columns: a place in the queue
 * computed for every matching chat before the sort made a list of a
 * department with 2,000 waiting chats take a second. The places are
 * numbered in one pass over the queues of the page's departments, not
 * counted chat by chat. The total is a subquery of the same statement, so
 * it and the page are one snapshot (counted by a statement of its own, a
 * chat created or closed between the two made X-Total-Count disagree with
 * the page); a window count would have kept the page from stopping at its
 * LIMIT (78 ms against 29 for 184,000 chats).
 */
#define LIST_SQL(page, count) \
	"WITH page AS (" page "), " \
	"queue AS (SELECT w.id, ROW_NUMBER() OVER " \
	"  (PARTITION BY w.department_id ORDER BY w.queued_at, w.id) AS place " \
	"  FROM chats w WHERE w.status = 'waiting' " \
	"  AND w.department_id IN (SELECT department_id FROM page WHERE status = 'waiting')) " \
	"SELECT " CB_CHAT_ROW_COLUMNS "CAST(q.place AS SIGNED) AS queue_position, " CB_CHAT_NAMES \
	", " count " AS _total " \
	"FROM page JOIN chats c ON c.id = page.id " CB_CHAT_JOINS \
	"LEFT JOIN queue q ON q.id = c.id ORDER BY c.id DESC"

enum list_role { LIST_ADMIN, LIST_CUSTOMER, LIST_AGENT };

/* Each role's statements and their parameters' types, F for the filters'. */
static const struct {
	const char *page, *page_types, *count, *count_types;
} list_forms[] = {
    [LIST_ADMIN] = {LIST_SQL(PAGE_ADMIN, COUNT_ADMIN), F "ii" F, "SELECT " COUNT_ADMIN " AS n", F},
    [LIST_CUSTOMER] = {LIST_SQL(PAGE_CUSTOMER, COUNT_CUSTOMER), "i" F "iii" F,
        "SELECT " COUNT_CUSTOMER " AS n", "i" F},
    [LIST_AGENT] = {LIST_SQL(PAGE_AGENT, COUNT_AGENT), "i" F "iii" F "iiii" F "ii" F,
        "SELECT " COUNT_AGENT " AS n", "i" F "ii" F},
};

/*
 * The filters of GET /api/chats/, in the order of their arguments. Only the
 * filters given are in a statement: "? IS NULL OR c.status = ?" for each,
 * bound NULL when not given, kept MariaDB from reading the chats off the
 * index that fits the filters given (an agent's closed chats: 47 ms at
 * 50,000 chats) and made it read a row for every chat it counted. An
 * argument of a filter not given is passed but not bound ('_', '-').
 */
#define LIST_FILTER_ARGS(f) (f)->status, (f)->department_id, (f)->agent_id, (f)->customer_id
static const char *const filter_sql[] = {"AND c.status = ? ", "AND c.department_id = ? ",
    "AND c.agent_id = ? ", "AND c.customer_id = ? "};
static const char filter_given[] = "siii", filter_absent[] = "_---";

struct list_statements {
	char *page, *page_types, *count, *count_types;
};

/* The statements of role with the filters in mask (bit i: filter i given), made once. */
static const struct list_statements *
list_sql(enum list_role role, unsigned mask)
{
	static struct list_statements made[CB_ARRAY_LEN(list_forms)][1u << 4];
	struct list_statements *st = &made[role][mask];
	char where[128] = "", types[5] = "";

	if (st->page != NULL)
		return st;
	for (unsigned i = 0; i < 4; i++) {
		if (mask & (1u << i))
			strcat(where, filter_sql[i]);
		types[i] = (mask & (1u << i)) ? filter_given[i] : filter_absent[i];
	}
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	st->page = xasprintf(list_forms[role].page, where);
	st->page_types = xasprintf(list_forms[role].page_types, types);
	st->count = xasprintf(list_forms[role].count, where);
	st->count_types = xasprintf(list_forms[role].count_types, types);
#pragma GCC diagnostic pop
	return st;
}

static const struct list_statements *
list_statements(const struct cb_user *who, const struct cb_chat_filter *f)
{
	unsigned mask = (f->status != NULL) | (f->department_id > 0) << 1 | (f->agent_id > 0) << 2 |
	    (f->customer_id > 0) << 3;

	return list_sql(who->role == CB_ROLE_ADMIN ? LIST_ADMIN
	        : who->role == CB_ROLE_CUSTOMER    ? LIST_CUSTOMER
	                                           : LIST_AGENT,
	    mask);
}

static int
list_page(struct cb_db *db, const struct cb_user *who, const struct cb_chat_filter *f,
    long long limit, long long offset, struct cb_res **res)
{
	const struct list_statements *st = list_statements(who, f);
	long long dept = who->department_id, me = who->id, upto = offset + limit;

	switch (who->role) {
	case CB_ROLE_ADMIN:
		return cb_db_query(db, res, st->page, st->page_types, LIST_FILTER_ARGS(f), limit,
		    offset, LIST_FILTER_ARGS(f));
	case CB_ROLE_CUSTOMER:
		return cb_db_query(db, res, st->page, st->page_types, me, LIST_FILTER_ARGS(f),
		    limit, offset, me, LIST_FILTER_ARGS(f));
	default:
		return cb_db_query(db, res, st->page, st->page_types, dept, LIST_FILTER_ARGS(f),
		    upto, me, dept, LIST_FILTER_ARGS(f), upto, limit,
		    offset, /* the page, then its total */
		    dept, LIST_FILTER_ARGS(f), me, dept, LIST_FILTER_ARGS(f));
	}
}

/* A page past the end carries no total; it is counted on its own (rarely). */
static int
list_count(struct cb_db *db, const struct cb_user *who, const struct cb_chat_filter *f,
    struct cb_res **res)
{
	const struct list_statements *st = list_statements(who, f);
	long long dept = who->department_id, me = who->id;

	switch (who->role) {
	case CB_ROLE_ADMIN:
		return cb_db_query(db, res, st->count, st->count_types, LIST_FILTER_ARGS(f));
	case CB_ROLE_CUSTOMER:
		return cb_db_query(db, res, st->count, st->count_types, me, LIST_FILTER_ARGS(f));
	default:
		return cb_db_query(db, res, st->count, st->count_types, dept, LIST_FILTER_ARGS(f),
		    me, dept, LIST_FILTER_ARGS(f));
	}
}

int
cb_db_chats_list(struct cb_db *db, const struct cb_user *who, const struct cb_chat_filter *f,
    long long limit, long long offset, json_object **out, long long *total)
{
	struct cb_res *res;
	int rc = list_page(db, who, f, limit, offset, &res);

	*out = NULL;
	if (rc != CB_OK)
		return rc;
	*total = res->nrows ? cb_res_int(res, 0, "_total") : 0;
	*out = json_object_new_array();
	for (unsigned r = 0; r < res->nrows; r++)
		json_object_array_add(*out, cb_db_chat_row_json(res, r));
	cb_res_free(res);
	if (offset == 0 || *total > 0)
		return CB_OK;
	if ((rc = list_count(db, who, f, &res)) == CB_OK)
		*total = cb_res_int(res, 0, "n");
	cb_res_free(res);
	if (rc != CB_OK) {
		json_object_put(*out);
		*out = NULL;
	}
	return rc;
}

int
cb_db_chat_transfers_json(struct cb_db *db, long long chat_id, json_object **out)
{
	struct cb_res *res;
	int rc = cb_db_query(db, &res,
	    "SELECT id, chat_id, from_department_id, to_department_id, from_agent_id, to_agent_id, "
	    "reason, transferred_by, created_at FROM transfers WHERE chat_id = ? ORDER BY id",
	    "i", chat_id);

	*out = NULL;
	if (rc != CB_OK)
		return rc;
	*out = cb_res_json_array(res);
	cb_res_free(res);
	return CB_OK;
}

/*
 * The page from MariaDB, with the chat's state and total, whoever may read it.
 * One round trip (sql-messages.h): the chat's state, its total and the page.
 * The newest page is read newest first straight off the (chat_id, id) index
 * and turned round as it is written, which costs MariaDB far less than a
 * derived table sorted again. The rows go straight to text: a page is the
 * largest answer there is.
 */
static int
page_read(struct cb_db *db, long long chat_id, long long after_id, long long before_id,
    long long limit, struct cb_history_page *p, struct cb_buf *out)
{
	struct cb_res *res;
	long long upto = before_id > 0 ? before_id - 1 : CB_ID_MAX;
	int rc;

	if (after_id >= 0)
		rc = cb_db_query(db, &res, CB_SQL_MESSAGES_AFTER, "iiiii", chat_id, after_id, upto,
		    chat_id, limit);
	else
		rc = cb_db_query(
		    db, &res, CB_SQL_MESSAGES_NEWEST, "iiii", chat_id, upto, chat_id, limit);
	if (rc != CB_OK)
		return rc;
	if (res->nrows > 0) {
		state_from_row(res, 1, &p->st);
		p->total = cb_res_int(res, 0, "_total");
		p->last_id = cb_res_int(res, after_id < 0 ? 0 : res->nrows - 1, "id");
		cb_res_write_array(res, after_id < 0, out);
		cb_res_free(res);
		return CB_OK;
	}
	/* No page, so no state either: the chat, if any, and its count on their own. */
	cb_res_free(res);
	if ((rc = cb_db_chat_state(db, chat_id, &p->st)) != CB_OK)
		return rc;
	rc = cb_db_query(
	    db, &res, "SELECT COUNT(*) AS n FROM messages WHERE chat_id = ?", "i", chat_id);
	if (rc != CB_OK)
		return rc;
	p->total = cb_res_int(res, 0, "n");
	p->last_id = 0;
	cb_buf_append(out, "[]", 2);
	cb_res_free(res);
	return CB_OK;
}

/*
 * Whether a kept page is still the chat's newest: the same newest message
 * and the same state. Messages are only ever added, so the total holds too.
 */
static int
page_current(struct cb_db *db, const struct cb_history_page *p, int *current)
{
	struct cb_chat_state st;
	struct cb_res *res;
	int rc = cb_db_query(db, &res,
	    "SELECT id, customer_id, department_id, agent_id, status, "
	    "(SELECT MAX(m.id) FROM messages m WHERE m.chat_id = c.id) AS last_id "
	    "FROM chats c WHERE c.id = ?",
	    "i", p->st.id);

	if (rc != CB_OK)
		return rc;
	*current = 0;
	if (res->nrows == 1) {
		state_from_row(res, 0, &st);
		*current = cb_res_int(res, 0, "last_id") == p->last_id &&
		    st.customer_id == p->st.customer_id &&
		    st.department_id == p->st.department_id && st.agent_id == p->st.agent_id &&
		    strcmp(st.status, p->st.status) == 0;
	}
	cb_res_free(res);
	return CB_OK;
}

int
cb_db_messages_read(struct cb_db *db, const struct cb_user *who, long long chat_id,
    long long after_id, long long before_id, long long limit, struct cb_buf *out, long long *total,
    struct cb_error *e)
{
	struct cb_history_stamp stamp;
	struct cb_history_page p;
	size_t from = out->len;
	int newest = after_id < 0 && before_id <= 0, current = 0, rc;

	/* The newest page is what a client opens a chat with: kept for the instance (history.h). */
	enum cb_history_found kept =
	    newest ? cb_history_get(chat_id, limit, &p, out) : CB_HISTORY_NONE;
	int keep = newest && cb_history_stamp(chat_id, &stamp);
	if (kept == CB_HISTORY_OLD && keep) {
		/* Asking whether it is current costs MariaDB far less than the page. */
		if ((rc = page_current(db, &p, &current)) != CB_OK)
			return rc;
		if (current)
			cb_history_confirm(&stamp, chat_id, limit);
	}
	if (kept == CB_HISTORY_FRESH || current) {
		*total = p.total;
		return cb_chat_access_check(who, &p.st, CB_CHAT_READ, e);
	}
	out->len = from;
	if ((rc = page_read(db, chat_id, after_id, before_id, limit, &p, out)) != CB_OK)
		return rc;
	if (keep)
		cb_history_put(&stamp, limit, &p, out->data + from, out->len - from);
	*total = p.total;
	return cb_chat_access_check(who, &p.st, CB_CHAT_READ, e);
}

/*
 * Queues a chat event carrying data (the chat object when NULL; otherwise
 * data gets the chat object as "chat") to the chat, the given agent and the
 * chat's department plus dept2. The agent is explicit: chat.transferred goes
 * to the previous agent, not to the one who holds the chat now (contract 7).
 * Takes chat and data.
 */
static void
chat_event_of(const char *type, json_object *chat, json_object *data, long long agent,
    long long dept2, struct cb_events *ev)
{
	static const char *const kinds[] = {"chat", "agent", "department", "department"};
	long long chat_id = json_object_get_int64(json_object_object_get(chat, "id"));
	long long ids[] = {chat_id, agent,
	    json_object_get_int64(json_object_object_get(chat, "department_id")), dept2};

	if (data != NULL) {
		json_object_object_add(data, "chat", chat);
		chat = data;
	}
	cb_events_add(ev, type, chat_id, chat, kinds, ids, CB_ARRAY_LEN(ids));
}

/* Is the chat object one of a waiting chat? */
static int
chat_waits(json_object *chat)
{
	return strcmp(json_object_get_string(json_object_object_get(chat, "status")), "waiting") ==
	    0;
}

/* chat_event_of with the chat as it now is. */
static int
chat_event(struct cb_db *db, const char *type, long long chat_id, json_object *data,
    long long agent, long long dept2, struct cb_events *ev)
{
	json_object *chat;
	int rc = cb_db_chat_json(db, chat_id, &chat);

	if (rc != CB_OK) {
		json_object_put(data);
		return rc;
	}
	chat_event_of(type, chat, data, agent, dept2, ev);
	return CB_OK;
}

/*
 * CB_OK if department id (locked by the caller) is live and active; else 422
 * department_id. as_default: the id was read as the default before the lock;
 * if the default moved since (and the old one may be inactive by now), the
 * transaction runs again, so that a chat naming no department never gets a
 * 422 for one it did not name (contract 6.2.1).
 */
static int
department_open(struct cb_db *db, long long id, int as_default, struct cb_error *e)
{
	struct cb_res *res;
	int rc = cb_db_query(db, &res,
	    "SELECT is_active, is_default FROM departments WHERE id = ? AND deleted_at IS NULL",
	    "i", id);

	if (rc != CB_OK)
		return rc;
	int open = res->nrows == 1 && cb_res_int(res, 0, "is_active");
	int moved = as_default && (res->nrows != 1 || !cb_res_int(res, 0, "is_default"));
	cb_res_free(res);
	if (moved)
		return CB_ERR_RETRY;
	if (open)
		return CB_OK;
	cb_error_set(e, 422, "validation_error", "department_id",
	    "department_id must be an active department");
	return CB_ERR_REPLY;
}

static int
default_department(struct cb_db *db, long long *id, struct cb_error *e)
{
	struct cb_res *res;
	int rc = cb_db_query(
	    db, &res, "SELECT id FROM departments WHERE is_default AND deleted_at IS NULL", "");

	if (rc != CB_OK)
		return rc;
	*id = res->nrows ? cb_res_int(res, 0, "id") : 0;
	cb_res_free(res);
	if (*id > 0)
		return CB_OK;
	cb_error_set(e, 422, "validation_error", "department_id", "there is no default department");
	return CB_ERR_REPLY;
}

/* CB_OK if id is an active customer; else 422 customer_id (only an admin can name another). */
static int
customer_active(struct cb_db *db, long long id, struct cb_error *e)
{
	struct cb_res *res;
	int rc = cb_db_query(db, &res,
	    "SELECT id FROM users WHERE id = ? AND role = 'customer' AND is_active", "i", id);

	if (rc != CB_OK)
		return rc;
	int ok = res->nrows == 1;
	cb_res_free(res);
	if (ok)
		return CB_OK;
	cb_error_set(
	    e, 422, "validation_error", "customer_id", "customer_id must be an active customer");
	return CB_ERR_REPLY;
}

int
cb_db_chat_create(struct cb_db *db, const struct cb_chat_new *in, json_object **chat,
    struct cb_events *ev, struct cb_error *e)
{
	long long dept = in->department_id, id;
	int rc = CB_OK;

	if ((rc = customer_active(db, in->customer_id, e)) != CB_OK)
		return rc;
	if (dept <= 0 && (rc = default_department(db, &dept, e)) != CB_OK)
		return rc;
	if ((rc = cb_db_lock_departments(db, dept, 0)) != CB_OK ||
	    (rc = department_open(db, dept, in->department_id <= 0, e)))
		return rc;
	rc = cb_db_exec(db,
	    "INSERT INTO chats (customer_id, department_id, subject, status) VALUES (?, ?, ?, 'waiting')",
	    "iis", in->customer_id, dept, in->subject);
	if (rc != CB_OK)
		return rc;
	id = cb_db_insert_id(db);
	if ((rc = cb_db_chat_mutex(db, id)) != CB_OK)
		return rc;
	/* The customer's words come first, before any "joined" message of the drain. */
	size_t first = ev->n;
	if (in->message != NULL &&
	    (rc = cb_db_message_insert(
	         db, id, in->customer_id, "customer", in->message, 0, ev, NULL)))
		return rc;
	if ((rc = cb_db_assign_drain(db, dept, ev, NULL)) != CB_OK ||
	    (rc = cb_db_chat_json(db, id, chat)) != CB_OK)
		return rc;
	/* The object read once for the answer and chat.waiting: its queue place is a count. */
	if (chat_waits(*chat))
		chat_event_of("chat.waiting", json_object_get(*chat), NULL, 0, 0, ev);
	/* Assigned at once: its agent gets the customer's words too, as it gets the chat's later ones. */
	else if (in->message != NULL)
		cb_events_also_to(ev, first, "agent",
		    json_object_get_int64(json_object_object_get(*chat, "agent_id")));
	return CB_OK;
}

/*
 * Under the chat's mutex the chat cannot change: every change of its status
 * or agent is made under it and moves the state generation before the mutex
 * is released (cache.h). So a state this worker kept that is still fresh is
 * the chat's own, and a post is one INSERT; otherwise one read comes first.
 * No department lock, so messages of one department do not queue up.
 */
int
cb_db_chat_post(struct cb_db *db, const struct cb_user *who, long long chat_id, const char *content,
    struct cb_events *ev, json_object **msg, struct cb_error *e)
{
	struct cb_chat_state st;
	int rc = cb_db_chat_mutex(db, chat_id);

	if (rc == CB_OK)
		rc = cb_db_chat_state_read(db, chat_id, &st);
	if (rc == CB_OK)
		rc = cb_chat_access_check(who, &st, CB_CHAT_WRITE, e);
	if (rc != CB_OK)
		return rc;
	if (strcmp(st.status, "closed") == 0) {
		cb_error_set(e, 409, "chat_closed", NULL, "the chat is closed");
		return CB_ERR_REPLY;
	}
	return cb_db_message_insert(
	    db, chat_id, who->id, cb_role_name(who->role), content, st.agent_id, ev, msg);
}

int
cb_db_chat_close(struct cb_db *db, const struct cb_user *who, long long chat_id,
    struct cb_events *ev, struct cb_error *e)
{
	struct cb_chat_state st;
	int rc = cb_db_chat_lock(db, chat_id, &st);

	if (rc == CB_OK)
		rc = cb_chat_access_check(who, &st, CB_CHAT_WRITE, e);
	if (rc != CB_OK)
		return rc;
	if (strcmp(st.status, "closed") == 0) {
		cb_error_set(e, 409, "chat_closed", NULL, "the chat is already closed");
		return CB_ERR_REPLY;
	}
	/* agent_id stays: the closed chat keeps who served it. */
	rc = cb_db_exec(db,
	    "UPDATE chats SET status = 'closed', closed_at = NOW(3), closed_by = ? WHERE id = ?",
	    "ii", who->id, chat_id);
	if (rc == CB_OK)
		rc = chat_event(db, "chat.closed", chat_id, NULL, st.agent_id, 0, ev);
	/* A waiting chat leaving the queue frees nobody; an active one frees its agent (6.2.5). */
	if (rc == CB_OK && st.agent_id > 0)
		rc = cb_db_assign_drain(db, st.department_id, ev, NULL);
	if (rc == CB_OK && st.agent_id > 0)
		rc = cb_db_agent_status_event(db, st.agent_id, ev);
	return rc;
}

/*
 * Locks the chat's department and the target department (ascending), then
 * the chat. CB_ERR_RETRY if the chat moved department before we had it.
 */
static int
transfer_lock(struct cb_db *db, long long chat_id, long long target, struct cb_chat_state *st)
{
	struct cb_res *res;
	int rc = cb_db_chat_state(db, chat_id, st);

	if (rc != CB_OK)
		return rc;
	long long dept = st->department_id;
	if ((rc = cb_db_lock_departments(db, dept, target)) != CB_OK ||
	    (rc = cb_db_chat_mutex(db, chat_id)) != CB_OK)
		return rc;
	rc = cb_db_query(db, &res,
	    "SELECT id, customer_id, department_id, agent_id, status FROM chats WHERE id = ? FOR UPDATE",
	    "i", chat_id);
	if (rc != CB_OK)
		return rc;
	state_from_row(res, 0, st);
	cb_res_free(res);
	return st->department_id == dept ? CB_OK : CB_ERR_RETRY;
}

/* What the rules need to know about the target department and the named agent (locked). */
static int
transfer_facts(struct cb_db *db, const struct cb_chat_transfer *in, struct cb_transfer_dept *d,
    struct cb_transfer_agent *a)
{
	struct cb_res *res;
	int rc = cb_db_query(db, &res,
	    "SELECT is_active FROM departments WHERE id = ? AND deleted_at IS NULL", "i",
	    in->department_id);

	if (rc != CB_OK)
		return rc;
	memset(d, 0, sizeof *d);
	d->id = in->department_id;
	d->exists = res->nrows == 1;
	d->is_active = d->exists && cb_res_int(res, 0, "is_active");
	cb_res_free(res);
	memset(a, 0, sizeof *a);
	if ((a->id = in->agent_id) <= 0)
		return CB_OK;
	rc = cb_db_query(db, &res,
	    "SELECT u.role, u.is_active, u.department_id, u.presence, u.max_chats, "
	    "  (SELECT COUNT(*) FROM chats c WHERE c.agent_id = u.id AND c.status = 'active') AS active "
	    "FROM users u WHERE u.id = ?",
	    "i", in->agent_id);
	if (rc != CB_OK)
		return rc;
	if ((a->exists = res->nrows == 1)) {
		a->is_agent = strcmp(cb_res_str(res, 0, "role"), "agent") == 0;
		a->is_active = (int)cb_res_int(res, 0, "is_active");
		a->department_id = cb_res_int(res, 0, "department_id");
		a->available = strcmp(cb_res_str(res, 0, "presence"), "available") == 0;
		a->max_chats = (int)cb_res_int(res, 0, "max_chats");
		a->active_chats = (int)cb_res_int(res, 0, "active");
	}
	cb_res_free(res);
	return CB_OK;
}

/* The system message of 6.3.5, naming both departments and who moved the chat. */
static int
transfer_message(struct cb_db *db, const struct cb_user *who, long long chat_id, long long from,
    long long to, const char *reason, struct cb_events *ev)
{
	struct cb_res *res;
	int rc = cb_db_query(db, &res,
	    "SELECT (SELECT name FROM departments WHERE id = ?) AS f, "
	    "(SELECT name FROM departments WHERE id = ?) AS t",
	    "ii", from, to);

	if (rc != CB_OK)
		return rc;
	const char *f = cb_res_str(res, 0, "f"), *t = cb_res_str(res, 0, "t");
	size_t need =
	    cb_logic_transfer_message(NULL, 0, f ? f : "", t ? t : "", who->full_name, reason);
	char *text = xmalloc(need + 1);
	cb_logic_transfer_message(text, need + 1, f ? f : "", t ? t : "", who->full_name, reason);
	cb_res_free(res);
	rc = cb_db_message_insert(db, chat_id, 0, "system", text, 0, ev, NULL);
	free(text);
	return rc;
}

/* Writes the Transfer record (to_agent_id: who holds the chat now) and queues chat.transferred. */
static int
transfer_record(struct cb_db *db, const struct cb_user *who, const struct cb_chat_state *before,
    const struct cb_chat_transfer *in, struct cb_events *ev)
{
	struct cb_chat_state now;
	struct cb_res *res;
	int rc = cb_db_chat_state(db, before->id, &now);

	/* Dated when the chat entered the target queue, not after its assignment. */
	if (rc == CB_OK)
		rc = cb_db_exec(db,
		    "INSERT INTO transfers (chat_id, from_department_id, to_department_id, from_agent_id, "
		    "to_agent_id, reason, transferred_by, created_at) "
		    "SELECT id, ?, ?, ?, ?, ?, ?, queued_at FROM chats WHERE id = ?",
		    "iiIIsii", before->department_id, in->department_id, before->agent_id,
		    now.agent_id, in->reason, who->id, before->id);
	if (rc == CB_OK)
		rc = cb_db_query(db, &res,
		    "SELECT id, chat_id, from_department_id, to_department_id, from_agent_id, to_agent_id, "
		    "reason, transferred_by, created_at FROM transfers WHERE id = ?",
		    "i", cb_db_insert_id(db));
	if (rc != CB_OK)
		return rc;
	json_object *data = json_object_new_object();
	json_object_object_add(data, "transfer", cb_res_row_json(res, 0));
	cb_res_free(res);
	return chat_event(
	    db, "chat.transferred", before->id, data, before->agent_id, before->department_id, ev);
}

/*
 * A transferred chat left waiting in the target queue waits there like any
 * other: chat.waiting to the chat and the target department, at position pos
 * (right after chat.transferred, before what the drains did next).
 */
static int
waiting_after_transfer(struct cb_db *db, long long chat_id, size_t pos, struct cb_events *ev)
{
	json_object *chat;
	int rc = cb_db_chat_json(db, chat_id, &chat);

	if (rc != CB_OK)
		return rc;
	if (!chat_waits(chat)) {
		json_object_put(chat);
		return CB_OK;
	}
	chat_event_of("chat.waiting", chat, NULL, 0, 0, ev);
	cb_events_move_last(ev, pos);
	return CB_OK;
}

static int
transfer_refuse(enum cb_transfer_verdict v, struct cb_error *e)
{
	int status;
	const char *code, *field, *message;

	cb_logic_transfer_error(v, &status, &code, &field, &message);
	cb_error_set(e, status, code, field, "%s", message);
	return CB_ERR_REPLY;
}

int
cb_db_chat_transfer(struct cb_db *db, const struct cb_user *who, long long chat_id,
    const struct cb_chat_transfer *in, struct cb_events *ev, struct cb_error *e)
{
	struct cb_chat_state st;
	struct cb_transfer_dept dept;
	struct cb_transfer_agent agent;
	int rc = transfer_lock(db, chat_id, in->department_id, &st);

	if (rc == CB_OK)
		rc = cb_chat_access_check(who, &st, CB_CHAT_TRANSFER, e);
	if (rc == CB_OK)
		rc = transfer_facts(db, in, &dept, &agent);
	if (rc != CB_OK)
		return rc;
	struct cb_transfer_chat chat = {
	    strcmp(st.status, "closed") == 0, st.department_id, st.agent_id};
	enum cb_transfer_verdict v = cb_logic_transfer_check(&chat, &dept, &agent);
	if (v != CB_TRANSFER_OK)
		return transfer_refuse(v, e);
	/* Into the target queue as a newcomer (6.3.4); the previous agent lets go (6.3.3). */
	rc = cb_db_exec(db,
	    "UPDATE chats SET department_id = ?, status = 'waiting', agent_id = NULL, "
	    "assigned_at = NULL, queued_at = NOW(3) WHERE id = ?",
	    "ii", in->department_id, chat_id);
	if (rc == CB_OK)
		rc = transfer_message(
		    db, who, chat_id, st.department_id, in->department_id, in->reason, ev);
	size_t transferred_at = ev->n;
	if (rc == CB_OK)
		rc = in->agent_id > 0 ? cb_db_assign_chat(db, chat_id, in->agent_id, ev)
		                      : cb_db_assign_drain(db, in->department_id, ev, NULL);
	/*
	 * The record needs to know who got the chat, but chat.transferred reports
	 * the change that came first: it goes out before the assignment's events.
	 */
	if (rc == CB_OK)
		rc = transfer_record(db, who, &st, in, ev);
	if (rc == CB_OK)
		cb_events_move_last(ev, transferred_at);
	if (rc == CB_OK)
		rc = waiting_after_transfer(db, chat_id, transferred_at + 1, ev);
	if (rc == CB_OK && st.agent_id > 0)
		rc = cb_db_assign_drain(db, st.department_id, ev, NULL);
	if (rc == CB_OK && st.agent_id > 0)
		rc = cb_db_agent_status_event(db, st.agent_id, ev);
	if (rc == CB_OK && in->agent_id > 0)
		rc = cb_db_agent_status_event(db, in->agent_id, ev);
	return rc;
}
