/* api-departments.c - the department endpoints of contract section 4. */
#include <stdlib.h>

#include "cache.h"
#include "db-assign.h"
#include "db-departments.h"
#include "json.h"
#include "router.h"
#include "util.h"

/*
 * Department lists are read on every page of a site that shows its chat
 * widget, and change only when departments, agents or chats do: each worker
 * keeps the last few pages it rendered (cache.h), keyed by their query.
 */
#define LIST_SLOTS 8

struct list_page {
	int used, active_only;
	long long limit, offset, total;
	struct cb_stamp stamp;
	char *body;
};

static struct list_page list_cache[LIST_SLOTS];
static unsigned list_next; /* the slot to reuse next */

/* The slot holding this page, fresh or not; NULL if none does. */
static struct list_page *
list_find(int active_only, long long limit, long long offset)
{
	for (unsigned i = 0; i < LIST_SLOTS; i++) {
		struct list_page *p = &list_cache[i];
		if (p->used && p->active_only == active_only && p->limit == limit &&
		    p->offset == offset)
			return p;
	}
	return NULL;
}

static void
list_keep(const struct cb_stamp *stamp, int active_only, long long limit, long long offset,
    long long total, const char *body)
{
	struct list_page *p = list_find(active_only, limit, offset);

	if (p == NULL)
		p = &list_cache[list_next++ % LIST_SLOTS];
	free(p->body);
	*p = (struct list_page){1, active_only, limit, offset, total, *stamp, xstrdup(body)};
}

/* A paged list with X-Total-Count (contract 2). */
static int
list(struct cb_request *req, int active_only)
{
	long long limit, offset, total;
	struct list_page *page;
	struct cb_stamp stamp;
	json_object *arr;
	int rc;

	if ((rc = cb_query_int(req, "limit", 1, 200, 1, 50, &limit)) ||
	    (rc = cb_query_int(req, "offset", 0, 1000000000LL, 1, 0, &offset)))
		return rc;
	if ((page = list_find(active_only, limit, offset)) != NULL &&
	    cb_cache_fresh(&page->stamp)) {
		cb_reply_header(req, "X-Total-Count: %lld", page->total);
		cb_reply_raw(req, 200, page->body);
		return CB_OK;
	}
	int keep = cb_cache_stamp(&stamp);
	if ((rc = cb_db_departments_list(req->db, active_only, limit, offset, &arr, &total)) !=
	    CB_OK)
		return rc;
	const char *body = json_object_to_json_string_ext(
	    arr, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (keep)
		list_keep(&stamp, active_only, limit, offset, total, body);
	cb_reply_header(req, "X-Total-Count: %lld", total);
	cb_reply_raw(req, 200, body);
	json_object_put(arr);
	return CB_OK;
}

static int
list_all(struct cb_request *req)
{
	return list(req, 0);
}

static int
list_active(struct cb_request *req)
{
	return list(req, 1);
}

static int
show(struct cb_request *req)
{
	json_object *dept;
	int rc = cb_db_department_json(req->db, req->ids[0], &dept);

	if (rc == CB_OK)
		cb_reply_json(req, 200, dept);
	return rc;
}

/* Reads the body's fields into in; create requires a name. */
static int
parse_input(struct cb_request *req, int create, struct cb_department_input *in)
{
	struct cb_field name, description, is_active, is_default;
	int rc;

	if ((rc = cb_json_string(req->json, "name", (create ? CB_F_REQUIRED : 0) | CB_F_NOTBLANK, 1,
	         100, &name, &req->error)) ||
	    (rc = cb_json_string(
	         req->json, "description", CB_F_NULLABLE, 0, 1000, &description, &req->error)) ||
	    (rc = cb_json_bool(req->json, "is_active", 0, &is_active, &req->error)) ||
	    (rc = cb_json_bool(req->json, "is_default", 0, &is_default, &req->error)))
		return rc;
	in->has_name = name.present;
	in->name = name.s;
	in->has_description = description.present;
	in->description = description.s;
	in->has_active = is_active.present;
	in->is_active = (int)is_active.i;
	in->has_default = is_default.present;
	in->is_default = (int)is_default.i;
	return CB_OK;
}

struct write {
	struct cb_request *req;
	struct cb_department_input in;
	long long id;
	struct cb_events ev;
};

static int
create_tx(struct cb_db *db, void *arg)
{
	struct write *w = arg;

	return cb_db_department_create(db, &w->in, &w->id, &w->req->error);
}

static int
update_tx(struct cb_db *db, void *arg)
{
	struct write *w = arg;

	cb_events_clear(&w->ev);
	return cb_db_department_update(db, w->id, &w->in, &w->ev, &w->req->error);
}

static int
delete_tx(struct cb_db *db, void *arg)
{
	struct write *w = arg;

	return cb_db_department_delete(db, w->id, &w->req->error);
}

/* Runs fn, publishes what it gathered, and maps a name collision to 409 duplicate. */
static int
run(struct write *w, cb_db_tx_cb fn)
{
	int rc = cb_db_tx(w->req->db, fn, w);

	if (rc == CB_OK)
		cb_db_events_publish(w->req->db, &w->ev);
	cb_events_clear(&w->ev);
	if (rc == CB_ERR_DUPLICATE)
		rc = cb_fail(
		    w->req, 409, "duplicate", NULL, "a department with this name already exists");
	return rc;
}

/* Answers with the department object of w->id. */
static int
reply_department(struct write *w, int status)
{
	json_object *dept;
	int rc = cb_db_department_json(w->req->db, w->id, &dept);

	if (rc == CB_OK)
		cb_reply_json(w->req, status, dept);
	return rc;
}

static int
create(struct cb_request *req)
{
	struct write w = {.req = req};
	int rc;

	if ((rc = parse_input(req, 1, &w.in)) || (rc = run(&w, create_tx)))
		return rc;
	return reply_department(&w, 201);
}

static int
update(struct cb_request *req)
{
	struct write w = {.req = req, .id = req->ids[0]};
	int rc;

	if ((rc = parse_input(req, 0, &w.in)) || (rc = run(&w, update_tx)))
		return rc;
	return reply_department(&w, 200);
}

static int delete (struct cb_request *req)
{
	struct write w = {.req = req, .id = req->ids[0]};
	int rc = run(&w, delete_tx);

	if (rc == CB_OK)
		cb_reply_empty(req, 204);
	return rc;
}

const struct cb_route cb_api_departments_routes[] = {
    {"GET", "/api/departments", CB_ROLE_USER, 0, list_all},
    {"GET", "/api/departments/active", CB_ROLE_USER | CB_ROLE_ANON, 0, list_active},
    {"GET", "/api/departments/{id}", CB_ROLE_USER, 0, show},
    {"POST", "/api/departments", CB_ROLE_ADMIN, CB_ROUTE_BODY, create},
    {"PUT", "/api/departments/{id}", CB_ROLE_ADMIN, CB_ROUTE_BODY, update},
    {"DELETE", "/api/departments/{id}", CB_ROLE_ADMIN, 0, delete},
    {NULL, NULL, 0, 0, NULL},
};
