/*
 * fuzz-input.c - a libFuzzer target for every parser a client's bytes reach
 * before the database: the JSON body and its typed fields, the query string
 * and its integers, the route table's path patterns, UTF-8 and integers, the
 * validators, the bearer header and token, and carebot.conf lines.
 *
 * The first byte of an input picks the parser, the rest is its input (as
 * libFuzzer's own buffer for the parsers that take a length, so reading one
 * byte past it is caught; as a C string for the others). Built
 * with ASan and UBSan (tools/carebot fuzz), a stray read, an overflow or an
 * undefined shift is a crash; beyond that, each part checks the promises its
 * callers rely on and aborts when one breaks: a parsed body is an object that
 * survives a round trip, a refused one is a 400 bad_json, a field is either
 * read within its bounds or refused with a 422 naming it, a decoded query is
 * UTF-8 without NUL, and cb_json_write_string escapes as json-c does.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "config.h"
#include "json.h"
#include "request.h"
#include "router.h"
#include "util.h"
#include "validate.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void broken(const char *what, int line) __attribute__((noreturn));

#define REQUIRE(cond) ((cond) ? (void)0 : broken(#cond, __LINE__))

static void
broken(const char *what, int line)
{
	fprintf(stderr, "fuzz-input.c:%d: broken promise: %s\n", line, what);
	abort();
}

static int
is_string(const char *s, size_t len)
{
	return strlen(s) == len && cb_utf8_valid(s, len);
}

/*
 * A refused field: 422 validation_error naming it. A read one: within bounds.
 * Each call gets its own cb_error, so a refusal that sets none cannot pass
 * on an earlier one's.
 */
static void
fields(json_object *obj, const char *key)
{
	static const char *const choices[] = {"a", "b", NULL};
	struct cb_field f;
	struct cb_error es = {0}, ei = {0}, eb = {0}, ee = {0};

	if (cb_json_string(obj, key, CB_F_NOTBLANK | CB_F_NULLABLE, 1, 20, &f, &es) == CB_OK) {
		REQUIRE(f.present);
		size_t chars = f.is_null ? 1 : cb_utf8_length(f.s, strlen(f.s));
		REQUIRE(f.is_null || cb_utf8_valid(f.s, strlen(f.s)));
		REQUIRE(chars >= 1 && chars <= 20);
	} else {
		REQUIRE(es.status == 422 && strcmp(es.field, key) == 0);
	}
	if (cb_json_int(obj, key, CB_F_REQUIRED, -5, 5, &f, &ei) == CB_OK)
		REQUIRE(f.i >= -5 && f.i <= 5);
	else
		REQUIRE(ei.status == 422 && strcmp(ei.field, key) == 0);
	if (cb_json_bool(obj, key, 0, &f, &eb) == CB_OK)
		REQUIRE(f.i == 0 || f.i == 1);
	else
		REQUIRE(eb.status == 422);
	if (cb_json_enum(obj, key, 0, choices, &f, &ee) == CB_OK)
		REQUIRE(strcmp(f.s, "a") == 0 || strcmp(f.s, "b") == 0);
	else
		REQUIRE(ee.status == 422);
}

static void
body(const char *s, size_t len)
{
	json_object *obj, *again;
	struct cb_error e = {0};

	if (cb_json_parse_body(s, len, &obj, &e) != CB_OK) {
		REQUIRE(obj == NULL && e.status == 400 && strcmp(e.code, "bad_json") == 0);
		return;
	}
	REQUIRE(json_object_is_type(obj, json_type_object));
	json_object_object_foreach(obj, key, val)
	{
		(void)val;
		fields(obj, key);
	}
	const char *text = cb_json_text(obj);
	REQUIRE(cb_json_parse_body(text, strlen(text), &again, &e) == CB_OK);
	REQUIRE(json_object_equal(obj, again));
	json_object_put(again);
	json_object_put(obj);
}

/* cb_json_write_string must write what json-c writes for the same string. */
static void
escaping(const char *s, size_t len)
{
	if (!is_string(s, len))
		return;
	json_object *str = json_object_new_string(s);
	struct cb_buf b = {0};
	cb_json_write_string(&b, s);
	REQUIRE(
	    b.len == strlen(cb_json_text(str)) && memcmp(b.data, cb_json_text(str), b.len) == 0);
	cb_buf_free(&b);
	json_object_put(str);
}

static void
query(const char *s)
{
	struct cb_request req = {0};
	long long v;

	if (cb_request_parse_query(&req, s) == CB_OK) {
		REQUIRE(strstr(s, "%00") == NULL);
		for (unsigned i = 0; i < req.nquery; i++) {
			const struct cb_param *p = &req.query[i];
			REQUIRE(is_string(p->name, strlen(p->name)));
			REQUIRE(is_string(p->value, strlen(p->value)));
			req.error.status = 0;
			if (cb_query_int(&req, p->name, 1, 200, i % 2, 50, &v) == CB_OK)
				REQUIRE(v >= 1 && v <= 200);
			else
				REQUIRE(req.error.status == 400);
		}
	}
	REQUIRE(req.nquery <= CB_MAX_QUERY);
	cb_request_free(&req);
}

/* Every pattern of the real route tables; a match has positive ids only. */
static void
paths(const char *s)
{
	const struct cb_route *const tables[] = {cb_api_auth_routes, cb_api_health_routes,
	    cb_api_departments_routes, cb_api_users_routes, cb_api_chats_routes,
	    cb_api_internal_routes};
	long long ids[CB_MAX_IDS];
	unsigned n;

	for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
		for (const struct cb_route *r = tables[t]; r->method != NULL; r++)
			if (cb_router_match(r->pattern, s, ids, &n))
				for (unsigned i = 0; i < n; i++)
					REQUIRE(i < CB_MAX_IDS && ids[i] > 0);
}

/* raw is the input itself, not NUL-terminated, for the parsers that take a length. */
static void
scalars(const char *raw, const char *s, size_t len)
{
	long long v;

	if (cb_utf8_valid(raw, len))
		REQUIRE(cb_utf8_length(raw, len) <= len);
	if (cb_parse_int(s, -1000, 1000, &v) == CB_OK)
		REQUIRE(v >= -1000 && v <= 1000);
	cb_valid_username(s);
	cb_valid_email(s);
	cb_valid_idempotency_key(s);
	cb_role_parse(s);
	const char *token = cb_auth_bearer(s);
	if (token != NULL) {
		unsigned char hash[CB_TOKEN_HASH];

		cb_auth_token_hash(token, hash);
	}
}

static void
conf_line(const char *s)
{
	struct cb_config cfg;
	char err[256];

	/* A refusal must say why: a message, NUL-terminated within err. */
	memset(err, 'x', sizeof err);
	cb_config_defaults(&cfg);
	if (cb_config_line(&cfg, s, err, sizeof err) != CB_OK)
		REQUIRE(err[0] != 'x' && memchr(err, '\0', sizeof err) != NULL);
	cb_config_free(&cfg);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return cb_auth_init() == CB_OK ? 0 : 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	unsigned part = data[0];
	size_t len = size - 1;
	char *s = xmalloc(len + 1);
	memcpy(s, data + 1, len);
	s[len] = '\0';
	switch (part % 6) {
	case 0: body((const char *)data + 1, len); break;
	case 1: escaping(s, len); break;
	case 2: query(s); break;
	case 3: paths(s); break;
	case 4: scalars((const char *)data + 1, s, len); break;
	default: conf_line(s); break;
	}
	free(s);
	return 0;
}
