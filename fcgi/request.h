/*
 * request.h - one HTTP request as the worker sees it, and the replies to it.
 * request.c fills it from FastCGI; response.c is the only code that writes
 * to the FastCGI stream.
 */
#ifndef CB_REQUEST_H
#define CB_REQUEST_H

#include <fcgiapp.h>
#include <json-c/json.h>
#include <stddef.h>

#include "auth.h"
#include "config.h"
#include "db.h"
#include "util.h"

#define CB_MAX_BODY (64 * 1024)
#define CB_MAX_IDS 4
#define CB_MAX_QUERY 32

struct cb_error {
	int status;
	const char *code;
	const char *field; /* NULL unless one field is at fault */
	char message[256];
};

struct cb_param {
	char *name, *value; /* percent-decoded */
};

struct cb_request {
	FCGX_Request *fcgx;
	const struct cb_config *cfg;
	struct cb_db *db;

	const char *method;
	char *path; /* without query string and trailing slash */
	const char *content_type;
	const char *remote_addr;
	const char *authorization;
	const char *idempotency_key;
	struct cb_param query[CB_MAX_QUERY];
	unsigned nquery;
	char *body;
	size_t body_len;
	json_object *json; /* the body, when the route takes one */

	long long ids[CB_MAX_IDS]; /* the {id} parts of the path, in order */
	unsigned nids;
	struct cb_user user; /* valid when user.id != 0 */

	struct cb_error error; /* recorded by cb_fail, sent by the router */
	/* An answer to nginx's auth_request: a failure also rides in headers (cb_reply_failure). */
	int refusal_in_headers;
	int replied;
	int status; /* what was sent */
	struct cb_buf headers; /* extra response header lines */
};

/*
 * Reads the request (parameters, query, body up to CB_MAX_BODY). CB_OK, or
 * CB_ERR_REPLY with req->error set (413 too large, 400 malformed query).
 */
int cb_request_read(struct cb_request *req, FCGX_Request *fcgx);
void cb_request_free(struct cb_request *req);
/* A request URI's path: without the query string and any trailing slash
 * (but the root's), so "/api/chats/" is "/api/chats". Caller frees. */
char *cb_path_clean(const char *uri);
/* Parses a query string into req->query; CB_OK or CB_ERR (bad encoding). */
int cb_request_parse_query(struct cb_request *req, const char *qs);
const char *cb_query_get(const struct cb_request *req, const char *name);
/*
 * The integer query parameter name in [min, max] (with cap set, a value
 * past max, however many digits it has, reads as max). Absent: *out = def. Malformed: records 400
 * bad_request naming the parameter and returns CB_ERR_REPLY.
 */
int cb_query_int(struct cb_request *req, const char *name, long long min, long long max, int cap,
    long long def, long long *out);

/* Record an error for the router to send; returns CB_ERR_REPLY. */
int cb_fail(struct cb_request *req, int status, const char *code, const char *field,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int cb_invalid(struct cb_request *req, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int cb_not_found(struct cb_request *req);
int cb_forbidden(struct cb_request *req);

/* Fills e; the same shape cb_fail records, for code without a request. */
void cb_error_set(struct cb_error *e, int status, const char *code, const char *field,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The body {"error": {...}} for e. */
json_object *cb_error_json(const struct cb_error *e);

/* response.c: each sends the whole response; the json is released. */
void cb_reply_json(struct cb_request *req, int status, json_object *body);
void cb_reply_raw(struct cb_request *req, int status, const char *body);
void cb_reply_empty(struct cb_request *req, int status);
void cb_reply_header(struct cb_request *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Sends the recorded error, or the one that rc stands for. */
void cb_reply_failure(struct cb_request *req, int rc);

#endif
