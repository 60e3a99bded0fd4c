/* response.c - the only code that writes to the FastCGI stream; shapes every error body. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "request.h"
#include "util.h"

static const char *
reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

static void
emit(struct cb_request *req, int status, const char *body)
{
	FCGX_Stream *out = req->fcgx->out;

	if (req->replied) {
		cb_error("bug: second reply to %s %s", req->method, req->path);
		return;
	}
	req->replied = 1;
	req->status = status;
	char status_line[96];
	int n = snprintf(status_line, sizeof status_line,
	    "Status: %d %s\r\nCache-Control: no-store\r\n", status, reason(status));
	FCGX_PutStr(status_line, n, out);
	if (req->headers.len > 0)
		FCGX_PutStr(req->headers.data, (int)req->headers.len, out);
	if (body != NULL) {
		size_t len = strlen(body);
		char head[128];
		/* FCGX_FPrintF knows no %zu; format the header here. */
		int hn = snprintf(head, sizeof head,
		    "Content-Type: application/json; charset=utf-8\r\nContent-Length: %zu\r\n\r\n",
		    len + 1);
		FCGX_PutStr(head, hn, out);
		FCGX_PutStr(body, (int)len, out);
		FCGX_PutChar('\n', out);
	} else {
		FCGX_PutS("\r\n", out);
	}
}

void
cb_reply_json(struct cb_request *req, int status, json_object *body)
{
	emit(req, status,
	    json_object_to_json_string_ext(
	        body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(body);
}

void
cb_reply_raw(struct cb_request *req, int status, const char *body)
{
	emit(req, status, body);
}

void
cb_reply_empty(struct cb_request *req, int status)
{
	emit(req, status, NULL);
}

void
cb_reply_header(struct cb_request *req, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	cb_buf_printf(&req->headers, "%s\r\n", line);
}

static void verror(struct cb_error *e, int status, const char *code, const char *field,
    const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static void
verror(struct cb_error *e, int status, const char *code, const char *field, const char *fmt,
    va_list ap)
{
	e->status = status;
	e->code = code;
	e->field = field;
	vsnprintf(e->message, sizeof e->message, fmt, ap);
	/* A message may quote the request (a path) or be cut inside a character. */
	cb_utf8_scrub(e->message);
}

void
cb_error_set(
    struct cb_error *e, int status, const char *code, const char *field, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verror(e, status, code, field, fmt, ap);
	va_end(ap);
}

int
cb_fail(
    struct cb_request *req, int status, const char *code, const char *field, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verror(&req->error, status, code, field, fmt, ap);
	va_end(ap);
	return CB_ERR_REPLY;
}

int
cb_invalid(struct cb_request *req, const char *field, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verror(&req->error, 422, "validation_error", field, fmt, ap);
	va_end(ap);
	return CB_ERR_REPLY;
}

int
cb_not_found(struct cb_request *req)
{
	return cb_fail(req, 404, "not_found", NULL, "no such object");
}

int
cb_forbidden(struct cb_request *req)
{
	return cb_fail(req, 403, "forbidden", NULL, "your role does not allow this");
}

json_object *
cb_error_json(const struct cb_error *e)
{
	json_object *inner = json_object_new_object();
	json_object *body = json_object_new_object();

	json_object_object_add(inner, "code", json_object_new_string(e->code));
	json_object_object_add(inner, "message", json_object_new_string(e->message));
	if (e->field != NULL)
		json_object_object_add(inner, "field", json_object_new_string(e->field));
	json_object_object_add(body, "error", inner);
	return body;
}

void
cb_reply_failure(struct cb_request *req, int rc)
{
	struct cb_error e;

	if (rc == CB_ERR_REPLY && req->error.code != NULL)
		e = req->error;
	else if (rc == CB_ERR_UNAVAILABLE && cb_db_outcome_unknown(req->db))
		cb_error_set(&e, 503, "unavailable", NULL,
		    "the connection to the database was lost while the change was being committed, "
		    "so it may have been done: read the state, or retry with the same Idempotency-Key");
	else if (rc == CB_ERR_UNAVAILABLE)
		cb_error_set(&e, 503, "unavailable", NULL,
		    "the database cannot be reached; nothing was done");
	else if (rc == CB_ERR_RETRY)
		/* Deadlocked on every attempt (db.c): rolled back each time. */
		cb_error_set(&e, 503, "unavailable", NULL,
		    "the database was too busy to do this; nothing was done, try again");
	else if (rc == CB_ERR_FULL)
		cb_error_set(&e, 503, "unavailable", NULL,
		    "the database has no room for this (its disk is full, most likely); nothing was done");
	else if (rc == CB_ERR_NO_IDS)
		cb_error_set(&e, 503, "unavailable", NULL,
		    "the database has no id left for this (a table's ids are used up); nothing was done");
	else if (rc == CB_ERR_SCHEMA)
		cb_error_set(&e, 503, "unavailable", NULL,
		    "the database's schema is older than this server; nothing was done "
		    "(an operator must run carebot-admin migrate)");
	else if (rc == CB_ERR_NOTFOUND)
		cb_error_set(&e, 404, "not_found", NULL, "no such object");
	else if (rc == CB_ERR_DUPLICATE)
		cb_error_set(&e, 409, "duplicate", NULL, "already exists");
	else if (rc == CB_ERR_CONFLICT)
		cb_error_set(&e, 409, "conflict", NULL, "the current state does not allow this");
	else {
		/* The details are in the log line of whoever failed; never SQL to the client. */
		cb_error("request %s %s failed internally (%d)", req->method, req->path, rc);
		cb_error_set(&e, 500, "internal", NULL, "internal error");
	}
	json_object *body = cb_error_json(&e);
	int status = e.status;
	if (req->refusal_in_headers) {
		/*
		 * nginx's auth_request keeps the status of a 401 or a 403 only (any
		 * other is its own 500, with an error logged) and never the body, so
		 * the status and the error go in headers too, for nginx to answer the
		 * subscriber with (nginx/carebot.conf.in, @refused).
		 */
		status = e.status == 401 ? 401 : 403;
		cb_buf_printf(&req->headers, "X-Carebot-Status: %d\r\nX-Carebot-Error: %s\r\n",
		    e.status,
		    json_object_to_json_string_ext(
		        body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	}
	cb_reply_json(req, status, body);
}
