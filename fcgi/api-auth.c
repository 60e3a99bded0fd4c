/* api-auth.c - POST /api/auth/login, /guest, /logout and GET /api/auth/me (contract section 3). */
#include <stdlib.h>
#include <string.h>

#include "db-sessions.h"
#include "db-users.h"
#include "json.h"
#include "router.h"
#include "util.h"
#include "validate.h"

/* {"token","expires_at","user"} for a fresh session of user_id. */
static int
session_reply(struct cb_request *req, int status, long long user_id)
{
	char token[CB_TOKEN_HEX + 1];
	char *expires_at = NULL;
	json_object *user;
	int rc = cb_db_session_create(req->db, user_id, req->cfg->token_ttl, token, &expires_at);

	if (rc == CB_OK)
		rc = cb_db_user_json(req->db, user_id, &user);
	if (rc == CB_OK) {
		json_object *body = json_object_new_object();
		json_object_object_add(body, "token", json_object_new_string(token));
		json_object_object_add(body, "expires_at", json_object_new_string(expires_at));
		json_object_object_add(body, "user", user);
		cb_reply_json(req, status, body);
	}
	sodium_memzero(token, sizeof token);
	free(expires_at);
	return rc;
}

static int
login(struct cb_request *req)
{
	struct cb_field username, password;
	struct cb_res *res = NULL;
	int rc;

	if ((rc = cb_json_string(
	         req->json, "username", CB_F_REQUIRED, 1, 255, &username, &req->error)) ||
	    (rc = cb_json_string(
	         req->json, "password", CB_F_REQUIRED, 1, CB_PASSWORD_MAX, &password, &req->error)))
		return rc;
	/* Every attempt counts, good or bad, before its password is looked at. */
	long long retry_after;
	if ((rc = cb_db_login_attempt(req->db, req->remote_addr, &retry_after)) != CB_OK)
		return rc;
	if (retry_after > 0) {
		cb_reply_header(req, "Retry-After: %lld", retry_after);
		return cb_fail(req, 429, "rate_limited", NULL,
		    "too many login attempts from this address; try again in %lld s", retry_after);
	}
	rc = cb_db_query(req->db, &res,
	    "SELECT id, password_hash FROM users WHERE username = ? AND is_active", "s",
	    username.s);
	if (rc != CB_OK)
		return rc;
	/*
	 * MariaDB's collation also matches "alicé_cc" or "alice_cc " to alice_cc;
	 * only a name a user could have (README 11) is taken, in any letter case.
	 */
	const char *stored = res->nrows && cb_valid_username(username.s)
	    ? cb_res_str(res, 0, "password_hash")
	    : NULL;
	/* Unknown user, guest without password, wrong password: one answer for all. */
	if (!cb_auth_password_ok(password.s, stored))
		rc = cb_fail(req, 401, "unauthorized", NULL, "wrong username or password");
	else
		rc = session_reply(req, 200, cb_res_int(res, 0, "id"));
	cb_res_free(res);
	return rc;
}

struct guest {
	const char *full_name, *email;
	long long user_id;
};

static int
guest_insert(struct cb_db *db, void *arg)
{
	struct guest *g = arg;
	unsigned char raw[8];
	char hex[17], username[32];

	/* Visitors pick no username; a random one keeps the column unique and unguessable. */
	randombytes_buf(raw, sizeof raw);
	sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
	snprintf(username, sizeof username, "guest_%s", hex);
	int rc = cb_db_exec(db,
	    "INSERT INTO users (username, full_name, email, role) VALUES (?, ?, ?, 'customer')",
	    "sss", username, g->full_name, g->email);
	g->user_id = cb_db_insert_id(db);
	return rc;
}

static int
guest(struct cb_request *req)
{
	struct cb_field full_name, email;
	struct guest g = {0};
	int rc;

	if ((rc = cb_json_string(req->json, "full_name", CB_F_REQUIRED | CB_F_NOTBLANK, 1,
	         CB_NAME_MAX, &full_name, &req->error)) ||
	    (rc = cb_json_string(
	         req->json, "email", CB_F_NULLABLE, 0, CB_EMAIL_MAX, &email, &req->error)))
		return rc;
	if (email.s != NULL && !cb_valid_email(email.s))
		return cb_invalid(req, "email", "email must be an e-mail address");
	g.full_name = full_name.s;
	g.email = email.s;
	if ((rc = cb_db_tx(req->db, guest_insert, &g)) != CB_OK)
		return rc;
	return session_reply(req, 201, g.user_id);
}

static int
logout(struct cb_request *req)
{
	int rc = cb_db_session_revoke(req->db, req->user.session_id);

	if (rc == CB_OK)
		cb_reply_empty(req, 204);
	return rc;
}

static int
me(struct cb_request *req)
{
	json_object *user;
	int rc = cb_db_user_json(req->db, req->user.id, &user);

	if (rc == CB_OK)
		cb_reply_json(req, 200, user);
	return rc;
}

const struct cb_route cb_api_auth_routes[] = {
    {"POST", "/api/auth/login", CB_ROLE_ANON, CB_ROUTE_BODY, login},
    {"POST", "/api/auth/guest", CB_ROLE_ANON, CB_ROUTE_BODY, guest},
    {"POST", "/api/auth/logout", CB_ROLE_USER, 0, logout},
    {"GET", "/api/auth/me", CB_ROLE_USER, 0, me},
    {NULL, NULL, 0, 0, NULL},
};
