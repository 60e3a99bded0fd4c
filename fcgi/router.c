/* router.c - match the route, then authenticate, authorise and parse before the handler runs. */
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "db-sessions.h"
#include "json.h"
#include "log.h"
#include "router.h"
#include "util.h"

static const struct cb_route *const tables[] = {
    cb_api_auth_routes,
    cb_api_health_routes,
    cb_api_departments_routes,
    cb_api_users_routes,
    cb_api_chats_routes,
    cb_api_internal_routes,
};

int
cb_router_match(const char *pattern, const char *path, long long *ids, unsigned *nids)
{
	*nids = 0;
	while (*pattern != '\0') {
		if (strncmp(pattern, "{id}", 4) == 0) {
			long long v = 0;
			size_t digits = strspn(path, "0123456789");

			/* Positive, no leading zero, at most CB_ID_MAX (a BIGINT's). */
			if (digits == 0 || path[0] == '0' || *nids == CB_MAX_IDS)
				return 0;
			for (size_t i = 0; i < digits; i++) {
				if (v > (CB_ID_MAX - (path[i] - '0')) / 10)
					return 0;
				v = v * 10 + (path[i] - '0');
			}
			ids[(*nids)++] = v;
			pattern += 4;
			path += digits;
		} else if (*pattern++ != *path++) {
			return 0;
		}
	}
	return *path == '\0';
}

/* HEAD is answered as GET; nginx sends the headers only (RFC 9110, 9.3.2). */
static int
method_matches(const char *route, const char *method)
{
	return strcmp(route, method) == 0 ||
	    (strcmp(method, "HEAD") == 0 && strcmp(route, "GET") == 0);
}

/* Finds the route; sets *path_known when some route has this path. */
static const struct cb_route *
find(struct cb_request *req, int *path_known, struct cb_buf *allow)
{
	const struct cb_route *found = NULL;
	long long ids[CB_MAX_IDS];
	unsigned nids;

	*path_known = 0;
	for (size_t t = 0; t < CB_ARRAY_LEN(tables); t++) {
		for (const struct cb_route *r = tables[t]; r->method != NULL; r++) {
			if (!cb_router_match(r->pattern, req->path, ids, &nids))
				continue;
			*path_known = 1;
			cb_buf_printf(allow, "%s%s%s", allow->len ? ", " : "", r->method,
			    strcmp(r->method, "GET") == 0 ? ", HEAD" : "");
			if (found == NULL && method_matches(r->method, req->method)) {
				found = r;
				memcpy(req->ids, ids, sizeof ids);
				req->nids = nids;
			}
		}
	}
	return found;
}

static int
authenticate(struct cb_request *req)
{
	const char *token = cb_auth_bearer(req->authorization);

	if (token == NULL)
		return cb_fail(req, 401, "unauthorized", NULL, "a bearer token is required");
	int rc = cb_db_session_lookup(req->db, token, &req->user);
	if (rc == CB_ERR_NOTFOUND)
		return cb_fail(
		    req, 401, "unauthorized", NULL, "the token is unknown, expired or revoked");
	return rc;
}

/*
 * On a route open to callers with and without a token, a token that is sent
 * still names its user: an agent's request refreshes last_seen_at (contract
 * section 5) wherever it goes. An unknown or expired token there is no error;
 * the request is served as an anonymous one.
 */
static int
identify(struct cb_request *req)
{
	const char *token = cb_auth_bearer(req->authorization);
	int rc;

	if (token == NULL)
		return CB_OK;
	if ((rc = cb_db_session_lookup(req->db, token, &req->user)) == CB_ERR_NOTFOUND) {
		memset(&req->user, 0, sizeof req->user);
		rc = CB_OK;
	}
	return rc;
}

/*
 * application/json, with no charset or a UTF-8 one: JSON is UTF-8 (RFC 8259),
 * so a body declared in another charset is refused rather than misread.
 */
static int
media_type_is_json(const char *ct)
{
	if (ct == NULL)
		return 0;
	size_t len = strcspn(ct, "; \t");
	if (len != 16 || strncasecmp(ct, "application/json", 16) != 0)
		return 0;
	for (const char *p = ct + len; (p = strchr(p, ';')) != NULL;) {
		p += 1 + strspn(p + 1, " \t");
		if (strncasecmp(p, "charset=", 8) != 0)
			continue;
		const char *v = p + 8 + (p[8] == '"');
		size_t n = strncasecmp(v, "utf-8", 5) == 0 ? 5
		    : strncasecmp(v, "utf8", 4) == 0       ? 4
		                                           : 0;
		if (n == 0 || strchr(";\" \t", v[n]) == NULL)
			return 0;
	}
	return 1;
}

static int
gate(struct cb_request *req, const struct cb_route *route)
{
	int rc;

	if (!(route->roles & CB_ROLE_ANON)) {
		if ((rc = authenticate(req)) != CB_OK)
			return rc;
		if (!(route->roles & req->user.role))
			return cb_forbidden(req);
	} else if ((route->roles & CB_ROLE_USER) && (rc = identify(req)) != CB_OK) {
		return rc;
	}
	/* A body sent where none is read must still be JSON: the contract's 415
	 * and 400 hold for every request that has one. */
	if ((route->flags & CB_ROUTE_BODY) || req->body_len > 0) {
		if (req->body_len > 0 && !media_type_is_json(req->content_type))
			return cb_fail(req, 415, "unsupported_media_type", NULL,
			    "the body must be application/json (UTF-8)");
		return cb_json_parse_body(req->body, req->body_len, &req->json, &req->error);
	}
	return CB_OK;
}

static const char *
listed_origin(const struct cb_request *req)
{
	const char *origin = FCGX_GetParam("HTTP_ORIGIN", req->fcgx->envp);

	return cb_auth_cors_origin_ok(origin, req->cfg->cors_origins) ? origin : NULL;
}

void
cb_router_cors(struct cb_request *req)
{
	const char *origin;

	/*
	 * The answers about a subscription (/_auth, /_bad_msgid and the other
	 * paths of api-internal.c) get the subscription URLs' CORS headers from
	 * nginx (@refused, the internal locations), as Nchan gives its own: a
	 * second Access-Control-Allow-Origin from here made a browser refuse
	 * every refusal (401, 403, 409) a listed page received, as a CORS error
	 * instead of the status.
	 */
	if (req->path != NULL && strncmp(req->path, "/_", 2) == 0)
		return;
	origin = listed_origin(req);

	/* Whether an answer carries the header depends on the Origin: a cache must know. */
	if (req->cfg->cors_origins[0] != '\0')
		cb_reply_header(req, "Vary: Origin");
	if (origin == NULL)
		return;
	cb_reply_header(req, "Access-Control-Allow-Origin: %s", origin);
	cb_reply_header(
	    req, "Access-Control-Expose-Headers: X-Total-Count, Retry-After, X-Request-Id");
}

/*
 * A browser asks before a page's request that carries a token or a JSON
 * body: OPTIONS with Access-Control-Request-Method. Only a listed page is
 * answered; any other OPTIONS stays a 405, so an unlisted page's browser
 * refuses to send the request at all.
 */
static int
is_preflight(const struct cb_request *req)
{
	return strcmp(req->method, "OPTIONS") == 0 &&
	    FCGX_GetParam("HTTP_ACCESS_CONTROL_REQUEST_METHOD", req->fcgx->envp) != NULL &&
	    listed_origin(req) != NULL;
}

void
cb_router_dispatch(struct cb_request *req)
{
	struct cb_buf allow = {0};
	int path_known, rc = CB_OK;
	const struct cb_route *route = find(req, &path_known, &allow);

	if (route == NULL && !path_known) {
		rc = cb_fail(req, 404, "not_found", NULL, "no such path: %s", req->path);
	} else if (route == NULL && is_preflight(req)) {
		cb_reply_header(req, "Access-Control-Allow-Methods: %s", allow.data);
		cb_reply_header(req,
		    "Access-Control-Allow-Headers: Authorization, Content-Type, Idempotency-Key");
		cb_reply_header(req, "Access-Control-Max-Age: 600");
		cb_reply_empty(req, 204);
	} else if (route == NULL) {
		cb_reply_header(req, "Allow: %s", allow.data);
		rc = cb_fail(
		    req, 405, "method_not_allowed", NULL, "%s is not allowed here", req->method);
	} else if ((rc = gate(req, route)) == CB_OK) {
		rc = route->handler(req);
	}
	cb_buf_free(&allow);
	if (!req->replied) {
		if (rc == CB_OK) {
			cb_error("bug: %s %s returned without a reply", req->method, req->path);
			rc = CB_ERR;
		}
		cb_reply_failure(req, rc);
	}
}
