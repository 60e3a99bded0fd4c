/* api-users.c - the user and agent-presence endpoints of contract section 5, under the roles of 3. */
#include <string.h>

#include "db-assign.h"
#include "db-users.h"
#include "json.h"
#include "logic-directory.h"
#include "router.h"
#include "util.h"
#include "validate.h"

static const char *const roles[] = {"admin", "agent", "customer", NULL};
static const char *const statuses[] = {"available", "busy", "offline", NULL};

/* A query parameter that must be one of choices, if present; 400 otherwise. */
static int
query_enum(struct cb_request *req, const char *name, const char *const *choices, const char **out)
{
	const char *v = cb_query_get(req, name);

	*out = v;
	if (v == NULL)
		return CB_OK;
	for (size_t i = 0; choices[i] != NULL; i++)
		if (strcmp(v, choices[i]) == 0)
			return CB_OK;
	return cb_fail(req, 400, "bad_request", name, "%s is not one of the allowed values", name);
}

/* Runs the filtered, paged query and replies with X-Total-Count. */
static int
reply_list(struct cb_request *req, const struct cb_user_filter *f)
{
	long long limit, offset, total;
	json_object *arr;
	int rc;

	if ((rc = cb_query_int(req, "limit", 1, 200, 1, 50, &limit)) ||
	    (rc = cb_query_int(req, "offset", 0, 1000000000LL, 1, 0, &offset)) ||
	    (rc = cb_db_users_list(req->db, f, limit, offset, &arr, &total)))
		return rc;
	cb_reply_header(req, "X-Total-Count: %lld", total);
	cb_reply_json(req, 200, arr);
	return CB_OK;
}

static int
list(struct cb_request *req)
{
	struct cb_user_filter f = {.staff_only = req->user.role != CB_ROLE_ADMIN};
	int rc;

	if ((rc = query_enum(req, "role", roles, &f.role)) ||
	    (rc = query_enum(req, "status", statuses, &f.status)) ||
	    (rc = cb_query_int(req, "department_id", 1, CB_ID_MAX, 0, 0, &f.department_id)))
		return rc;
	return reply_list(req, &f);
}

static int
available(struct cb_request *req)
{
	struct cb_user_filter f = {.staff_only = 1, .role = "agent", .status = "available"};
	int rc = cb_query_int(req, "department_id", 1, CB_ID_MAX, 0, 0, &f.department_id);

	return rc != CB_OK ? rc : reply_list(req, &f);
}

/* Replies with the user object of id. */
static int
reply_user(struct cb_request *req, int status, long long id)
{
	json_object *user;
	int rc = cb_db_user_json(req->db, id, &user);

	if (rc == CB_OK)
		cb_reply_json(req, status, user);
	return rc;
}

static int
access_fail(struct cb_request *req, int status)
{
	return status == 404 ? cb_not_found(req) : cb_forbidden(req);
}

static int
show(struct cb_request *req)
{
	struct cb_user_access a = {
	    .caller_role = req->user.role, .caller_id = req->user.id, .target_id = req->ids[0]};
	int rc = cb_db_user_facts(req->db, a.target_id, &a.target_role, &a.target_active);

	if (rc == CB_OK && req->user.role == CB_ROLE_AGENT && a.target_role == CB_ROLE_CUSTOMER)
		rc = cb_db_user_in_visible_chat(req->db, req->user.id, req->user.department_id,
		    a.target_id, &a.target_in_visible_chat);
	if (rc != CB_OK)
		return rc;
	int denied = cb_logic_user_read_access(&a);
	return denied ? access_fail(req, denied) : reply_user(req, 200, a.target_id);
}

/* A user write: its input, the password hash it carries and the events it gathers. */
struct write {
	struct cb_request *req;
	struct cb_user_input in;
	char hash[CB_PWHASH_LEN];
	long long id;
	struct cb_events ev;
};

/* Reads the self-service fields: full_name, email, password (hashed here, outside any transaction). */
static int
parse_self_fields(struct cb_request *req, int create, struct write *w)
{
	struct cb_field full_name, email, password;
	int rc;

	if ((rc = cb_json_string(req->json, "password", create ? CB_F_REQUIRED : 0, CB_PASSWORD_MIN,
	         CB_PASSWORD_MAX, &password, &req->error)) ||
	    (rc = cb_json_string(req->json, "full_name",
	         (create ? CB_F_REQUIRED : 0) | CB_F_NOTBLANK, 1, CB_NAME_MAX, &full_name,
	         &req->error)) ||
	    (rc = cb_json_string(
	         req->json, "email", CB_F_NULLABLE, 0, CB_EMAIL_MAX, &email, &req->error)))
		return rc;
	if (email.s != NULL && !cb_valid_email(email.s))
		return cb_invalid(req, "email", "email must be an e-mail address");
	w->in.has_full_name = full_name.present;
	w->in.full_name = full_name.s;
	w->in.has_email = email.present;
	w->in.email = email.s;
	w->in.has_password = password.present;
	if (password.present && cb_auth_password_hash(password.s, w->hash) != CB_OK)
		return CB_ERR;
	w->in.password_hash = password.present ? w->hash : NULL;
	/* Changing one's own password keeps the session that did it. */
	w->in.keep_session = req->ids[0] == req->user.id ? req->user.session_id : 0;
	return CB_OK;
}

/* Reads the fields only an admin may set. */
static int
parse_admin_fields(struct cb_request *req, int create, struct write *w)
{
	struct cb_field username, role, dept, max_chats, is_active;
	int rc;

	if ((rc = cb_json_string(req->json, "username", create ? CB_F_REQUIRED : 0, CB_USERNAME_MIN,
	         CB_USERNAME_MAX, &username, &req->error)))
		return rc;
	if (username.present && !cb_valid_username(username.s))
		return cb_invalid(
		    req, "username", "username may only hold letters, digits, _ . and -");
	if ((rc = cb_json_enum(
	         req->json, "role", create ? CB_F_REQUIRED : 0, roles, &role, &req->error)) ||
	    (rc = cb_json_int(
	         req->json, "department_id", CB_F_NULLABLE, 1, CB_ID_MAX, &dept, &req->error)) ||
	    (rc = cb_json_int(req->json, "max_chats", 0, 1, 100, &max_chats, &req->error)) ||
	    (rc = cb_json_bool(req->json, "is_active", 0, &is_active, &req->error)))
		return rc;
	w->in.has_username = username.present;
	w->in.username = username.s;
	w->in.has_role = role.present;
	w->in.role = role.present ? cb_role_parse(role.s) : 0;
	w->in.has_department = dept.present;
	w->in.department_id = dept.i; /* 0 when null */
	w->in.has_max_chats = max_chats.present;
	w->in.max_chats = max_chats.i;
	w->in.has_active = is_active.present;
	w->in.is_active = (int)is_active.i;
	return CB_OK;
}

static int
create_tx(struct cb_db *db, void *arg)
{
	struct write *w = arg;

	cb_events_clear(&w->ev);
	return cb_db_user_create(db, &w->in, &w->id, &w->ev, &w->req->error);
}

static int
update_tx(struct cb_db *db, void *arg)
{
	struct write *w = arg;

	cb_events_clear(&w->ev);
	return cb_db_user_update(db, w->id, &w->in, &w->ev, &w->req->error);
}

static int
deactivate_tx(struct cb_db *db, void *arg)
{
	struct write *w = arg;

	cb_events_clear(&w->ev);
	return cb_db_user_deactivate(db, w->id, w->req->user.id, &w->ev, &w->req->error);
}

/* Runs fn, publishes after COMMIT, forgets the hash, maps a taken username to 409. */
static int
run(struct write *w, cb_db_tx_cb fn)
{
	int rc = cb_db_tx(w->req->db, fn, w);

	sodium_memzero(w->hash, sizeof w->hash);
	if (rc == CB_OK)
		cb_db_events_publish(w->req->db, &w->ev);
	cb_events_clear(&w->ev);
	if (rc == CB_ERR_DUPLICATE)
		rc = cb_fail(w->req, 409, "duplicate", NULL, "this username is taken");
	return rc;
}

/* A new user's role and department must fit together (logic-directory.h). */
static int
check_shape(struct cb_request *req, const struct cb_user_input *in)
{
	struct cb_user_state st = {in->role, in->department_id, 1};
	const char *field = cb_logic_user_shape_field(&st);

	if (field == NULL)
		return CB_OK;
	return cb_invalid(req, field,
	    in->role == CB_ROLE_AGENT ? "an agent needs a department_id"
	                              : "only agents belong to a department");
}

static int
create(struct cb_request *req)
{
	struct write w = {.req = req};
	int rc;

	if ((rc = parse_admin_fields(req, 1, &w)) || (rc = check_shape(req, &w.in)) ||
	    (rc = parse_self_fields(req, 1, &w)))
		goto out;
	w.in.has_active = 0; /* a new user is active; is_active is for PUT */
	if ((rc = run(&w, create_tx)) == CB_OK)
		rc = reply_user(req, 201, w.id);
out:
	sodium_memzero(w.hash, sizeof w.hash);
	return rc;
}

/*
 * A self-service PUT may carry only full_name, email and password; any
 * other field of the user object refuses the whole request (403) before
 * anything changes.
 */
static int
self_fields_only(struct cb_request *req)
{
	json_object_object_foreach(req->json, key, val)
	{
		(void)val;
		if (cb_logic_user_field_not_self_service(key))
			return cb_fail(req, 403, "forbidden", key,
			    "%s cannot be changed here: a user changes only its own full_name, "
			    "email and password",
			    key);
	}
	return CB_OK;
}

/* An admin may not lock itself out: no demotion and no deactivation of itself. */
static int
admin_keeps_itself(struct cb_request *req, const struct cb_user_input *in)
{
	if (req->ids[0] != req->user.id)
		return CB_OK;
	if ((in->has_role && in->role != CB_ROLE_ADMIN) || (in->has_active && !in->is_active))
		return cb_fail(
		    req, 409, "conflict", NULL, "an admin cannot demote or deactivate itself");
	return CB_OK;
}

static int
update(struct cb_request *req)
{
	struct write w = {.req = req, .id = req->ids[0]};
	int admin = req->user.role == CB_ROLE_ADMIN;
	int denied = cb_logic_user_write_access(req->user.role, req->user.id, w.id);
	int rc;

	if (denied) {
		rc = access_fail(req, denied);
		goto out;
	}
	w.in.admin_id = admin ? req->user.id : 0;
	if ((rc = admin ? parse_admin_fields(req, 0, &w) : self_fields_only(req)) ||
	    (rc = admin_keeps_itself(req, &w.in)) || (rc = parse_self_fields(req, 0, &w)) ||
	    (rc = run(&w, update_tx)))
		goto out;
	rc = reply_user(req, 200, w.id);
out:
	sodium_memzero(w.hash, sizeof w.hash);
	return rc;
}

static int delete (struct cb_request *req)
{
	struct write w = {.req = req, .id = req->ids[0]};
	int rc;

	if (w.id == req->user.id)
		return cb_fail(req, 409, "conflict", NULL, "an admin cannot delete itself");
	if ((rc = run(&w, deactivate_tx)) == CB_OK)
		cb_reply_empty(req, 204);
	return rc;
}

struct presence {
	long long id;
	const char *status;
	struct cb_events ev;
};

static int
presence_tx(struct cb_db *db, void *arg)
{
	struct presence *p = arg;
	unsigned role;
	int is_active;
	int rc = cb_db_user_facts(db, p->id, &role, &is_active);

	cb_events_clear(&p->ev);
	/* Only active agents have a presence; for anyone else the resource does not exist. */
	if (rc == CB_OK && (role != CB_ROLE_AGENT || !is_active))
		rc = CB_ERR_NOTFOUND;
	if (rc == CB_OK)
		rc = cb_db_agent_set_presence(db, p->id, p->status, 0, &p->ev, NULL, NULL);
	return rc;
}

static int
set_status(struct cb_request *req)
{
	struct presence p = {.id = req->ids[0]};
	struct cb_field status;
	int denied = cb_logic_user_write_access(req->user.role, req->user.id, p.id);
	int rc;

	if (denied)
		return access_fail(req, denied);
	if ((rc = cb_json_enum(req->json, "status", CB_F_REQUIRED, statuses, &status, &req->error)))
		return rc;
	p.status = status.s;
	rc = cb_db_tx(req->db, presence_tx, &p);
	if (rc == CB_OK)
		cb_db_events_publish(req->db, &p.ev);
	cb_events_clear(&p.ev);
	return rc != CB_OK ? rc : reply_user(req, 200, p.id);
}

static int
heartbeat(struct cb_request *req)
{
	int denied = cb_logic_user_write_access(req->user.role, req->user.id, req->ids[0]);
	int rc;

	if (denied)
		return access_fail(req, denied);
	if ((rc = cb_db_user_heartbeat(req->db, req->ids[0])) == CB_OK)
		cb_reply_empty(req, 204);
	return rc;
}

const struct cb_route cb_api_users_routes[] = {
    {"GET", "/api/users", CB_ROLE_STAFF, 0, list},
    {"POST", "/api/users", CB_ROLE_ADMIN, CB_ROUTE_BODY, create},
    {"GET", "/api/users/agents/available", CB_ROLE_STAFF, 0, available},
    {"GET", "/api/users/{id}", CB_ROLE_USER, 0, show},
    {"PUT", "/api/users/{id}", CB_ROLE_USER, CB_ROUTE_BODY, update},
    {"DELETE", "/api/users/{id}", CB_ROLE_ADMIN, 0, delete},
    {"PUT", "/api/users/{id}/status", CB_ROLE_STAFF, CB_ROUTE_BODY, set_status},
    {"POST", "/api/users/{id}/heartbeat", CB_ROLE_STAFF, 0, heartbeat},
    {NULL, NULL, 0, 0, NULL},
};
