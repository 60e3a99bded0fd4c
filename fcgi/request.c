/* request.c - copy FastCGI parameters, decode the query, read the body with a cap. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "request.h"
#include "util.h"

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Percent-decodes s[0..len); NULL when the encoding or the UTF-8 is broken. */
static char *
decode(const char *s, size_t len)
{
	char *out = xmalloc(len + 1);
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%') {
			int hi = i + 2 < len ? hexval((unsigned char)s[i + 1]) : -1;
			int lo = i + 2 < len ? hexval((unsigned char)s[i + 2]) : -1;
			if (hi < 0 || lo < 0) {
				free(out);
				return NULL;
			}
			out[n++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			out[n++] = s[i] == '+' ? ' ' : s[i];
		}
	}
	out[n] = '\0';
	if (strlen(out) != n || !cb_utf8_valid(out, n)) {
		free(out);
		return NULL;
	}
	return out;
}

int
cb_request_parse_query(struct cb_request *req, const char *qs)
{
	while (qs != NULL && *qs != '\0') {
		size_t len = strcspn(qs, "&");
		const char *eq = memchr(qs, '=', len);
		size_t nlen = eq ? (size_t)(eq - qs) : len;

		if (len > 0) {
			if (req->nquery == CB_MAX_QUERY)
				return CB_ERR;
			struct cb_param *p = &req->query[req->nquery];
			p->name = decode(qs, nlen);
			p->value = eq ? decode(eq + 1, len - nlen - 1) : xstrdup("");
			if (p->name == NULL || p->value == NULL) {
				free(p->name);
				free(p->value);
				return CB_ERR;
			}
			req->nquery++;
		}
		qs += len;
		if (*qs == '&')
			qs++;
	}
	return CB_OK;
}

const char *
cb_query_get(const struct cb_request *req, const char *name)
{
	/* The last occurrence wins, as in most web frameworks. */
	for (unsigned i = req->nquery; i > 0; i--)
		if (strcmp(req->query[i - 1].name, name) == 0)
			return req->query[i - 1].value;
	return NULL;
}

/* A run of digits, however long, whose value is above max. */
static int
above(const char *v, long long max)
{
	if (v[0] == '\0' || v[strspn(v, "0123456789")] != '\0')
		return 0;
	errno = 0;
	long long x = strtoll(v, NULL, 10);
	return errno == ERANGE || x > max;
}

int
cb_query_int(struct cb_request *req, const char *name, long long min, long long max, int cap,
    long long def, long long *out)
{
	const char *v = cb_query_get(req, name);

	*out = def;
	if (v == NULL || cb_parse_int(v, min, max, out) == CB_OK)
		return CB_OK;
	if (cap && above(v, max)) {
		*out = max;
		return CB_OK;
	}
	return cb_fail(req, 400, "bad_request", name, "%s must be an integer from %lld%s", name,
	    min, cap ? " up" : "");
}

char *
cb_path_clean(const char *uri)
{
	size_t len = strcspn(uri, "?");

	while (len > 1 && uri[len - 1] == '/')
		len--;
	return xstrndup(uri, len);
}

static const char *
param(FCGX_Request *fcgx, const char *name)
{
	return FCGX_GetParam(name, fcgx->envp);
}

static int
read_body(struct cb_request *req)
{
	const char *cl = param(req->fcgx, "CONTENT_LENGTH");
	long long declared = 0;

	if (cl != NULL && *cl != '\0' && cb_parse_int(cl, 0, 1LL << 40, &declared) != CB_OK)
		return cb_fail(req, 400, "bad_request", NULL, "bad Content-Length");
	if (declared > CB_MAX_BODY)
		return cb_fail(req, 413, "too_large", NULL, "request body over 64 KiB");
	req->body = xmalloc((size_t)declared + 1);
	while (req->body_len < (size_t)declared) {
		int n = FCGX_GetStr(req->body + req->body_len,
		    (int)((size_t)declared - req->body_len), req->fcgx->in);
		if (n <= 0)
			break;
		req->body_len += (size_t)n;
	}
	req->body[req->body_len] = '\0';
	return CB_OK;
}

int
cb_request_read(struct cb_request *req, FCGX_Request *fcgx)
{
	const char *uri;

	req->fcgx = fcgx;
	req->method = param(fcgx, "REQUEST_METHOD");
	if (req->method == NULL)
		req->method = "GET";
	uri = param(fcgx, "DOCUMENT_URI");
	if (uri == NULL)
		uri = param(fcgx, "REQUEST_URI");
	req->path = cb_path_clean(uri ? uri : "/");
	req->content_type = param(fcgx, "CONTENT_TYPE");
	req->remote_addr = param(fcgx, "REMOTE_ADDR");
	req->authorization = param(fcgx, "HTTP_AUTHORIZATION");
	req->idempotency_key = param(fcgx, "HTTP_IDEMPOTENCY_KEY");
	if (cb_request_parse_query(req, param(fcgx, "QUERY_STRING")) != CB_OK)
		return cb_fail(req, 400, "bad_request", NULL, "malformed query string");
	return read_body(req);
}

void
cb_request_free(struct cb_request *req)
{
	for (unsigned i = 0; i < req->nquery; i++) {
		free(req->query[i].name);
		free(req->query[i].value);
	}
	free(req->path);
	free(req->body);
	cb_buf_free(&req->headers);
	if (req->json != NULL)
		json_object_put(req->json);
	memset(req, 0, sizeof *req);
}
