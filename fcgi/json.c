/* json.c - request body parsing and typed field access with 422 errors. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "util.h"

/* The code unit of the \uXXXX escape at s[at], or -1 if there is none. */
static long
escape_unit(const char *s, size_t len, size_t at)
{
	long v = 0;

	if (at + 6 > len || s[at] != '\\' || s[at + 1] != 'u')
		return -1;
	for (size_t k = at + 2; k < at + 6; k++) {
		int d = isdigit((unsigned char)s[k]) ? s[k] - '0'
		    : isxdigit((unsigned char)s[k])  ? tolower((unsigned char)s[k]) - 'a' + 10
		                                     : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/*
 * How many characters after s[i] (a backslash in a string) its escape takes,
 * or -1 when it is half of a surrogate pair: UTF-8 cannot hold that, and
 * json-c would store U+FFFD in its place, changing the text unasked.
 */
static long
escape_length(const char *s, size_t len, size_t i)
{
	long unit = escape_unit(s, len, i);

	if (unit >= 0xdc00 && unit <= 0xdfff)
		return -1;
	if (unit >= 0xd800 && unit <= 0xdbff) {
		long low = escape_unit(s, len, i + 6);
		return low >= 0xdc00 && low <= 0xdfff ? 11 : -1;
	}
	return 1;
}

/* Digits from s[i] on; how many. */
static size_t
digits(const char *s, size_t len, size_t i)
{
	size_t n = 0;

	while (i + n < len && isdigit((unsigned char)s[i + n]))
		n++;
	return n;
}

/*
 * The length of the number at s[i] as RFC 8259 writes numbers:
 * -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, or 0 when it is not one
 * (01, -01, 1., 1.e5, 1e).
 */
static size_t
number_length(const char *s, size_t len, size_t i)
{
	size_t at = i + (s[i] == '-'), n = digits(s, len, at);

	if (n == 0 || (n > 1 && s[at] == '0'))
		return 0;
	at += n;
	if (at < len && s[at] == '.') {
		if ((n = digits(s, len, at + 1)) == 0)
			return 0;
		at += 1 + n;
	}
	if (at < len && (s[at] == 'e' || s[at] == 'E')) {
		at += 1 + (at + 1 < len && (s[at + 1] == '+' || s[at + 1] == '-'));
		if ((n = digits(s, len, at)) == 0)
			return 0;
		at += n;
	}
	if (at < len && s[at] != '\0' && strchr(".eE+-", s[at]) != NULL)
		return 0;
	return at - i;
}

/*
 * json-c, even in strict mode, accepts single-quoted strings, NaN and
 * Infinity, raw control characters inside strings, a \u escape of half a
 * surrogate pair, and numbers such as 1. and -01. This scan rejects them;
 * json-c checks the rest of the grammar.
 */
static const char *
lexically_strict(const char *s, size_t len)
{
	int in_string = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (in_string) {
			if (c == '\\') {
				long skip = escape_length(s, len, i);
				if (skip < 0)
					return "the body is not valid JSON: a \\u escape names half of a "
					       "surrogate pair";
				i += (size_t)skip;
			} else if (c == '"') {
				in_string = 0;
			} else if (c < 0x20) {
				return "the body is not valid JSON: a control character in a string";
			}
		} else if (c == '"') {
			in_string = 1;
		} else if (c == '\'') {
			return "the body is not valid JSON: strings take double quotes";
		} else if (c == '-' || isdigit(c)) {
			size_t n = number_length(s, len, i);
			if (n == 0)
				return "the body is not valid JSON: a malformed number";
			i += n - 1;
		} else if (isalpha(c)) {
			size_t n = 1;
			while (i + n < len && isalpha((unsigned char)s[i + n]))
				n++;
			if (!(n == 4 && memcmp(s + i, "true", 4) == 0) &&
			    !(n == 5 && memcmp(s + i, "false", 5) == 0) &&
			    !(n == 4 && memcmp(s + i, "null", 4) == 0))
				return "the body is not valid JSON: a word that is not true, false "
				       "or null";
			i += n - 1;
		}
	}
	return NULL;
}

/*
 * Says why body did not parse. json-c reports "continue" both for a body cut
 * short and for a bare top-level scalar such as 1 (a number might go on), so
 * that case is told apart by the first character.
 */
static const char *
bad_json_why(const char *body, size_t len, enum json_tokener_error jerr)
{
	static char why[128];
	size_t i = 0;

	while (i < len && isspace((unsigned char)body[i]))
		i++;
	if (jerr == json_tokener_continue && i < len && body[i] != '{' && body[i] != '[' &&
	    body[i] != '"')
		return "the body must be a JSON object";
	if (jerr == json_tokener_continue)
		return "the body is not valid JSON: it ends before the value does";
	/* Parsed, yet asked why: only because something follows the value. */
	if (jerr == json_tokener_success)
		return "the body is not valid JSON: data follows the value";
	snprintf(why, sizeof why, "the body is not valid JSON: %s", json_tokener_error_desc(jerr));
	return why;
}

int
cb_json_parse_body(const char *body, size_t len, json_object **out, struct cb_error *e)
{
	json_tokener *tok;
	json_object *obj;

	*out = NULL;
	if (len == 0) {
		*out = json_object_new_object();
		return CB_OK;
	}
	if (!cb_utf8_valid(body, len)) {
		cb_error_set(e, 400, "bad_json", NULL, "the body is not valid UTF-8");
		return CB_ERR_REPLY;
	}
	tok = json_tokener_new_ex(32);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, body, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t used = (size_t)json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	/* Only white space may follow the value. */
	while (jerr == json_tokener_success && used < len && isspace((unsigned char)body[used]))
		used++;
	const char *lexical = lexically_strict(body, len);
	if (jerr != json_tokener_success || used != len || lexical != NULL) {
		if (obj != NULL)
			json_object_put(obj);
		/* json-c's own complaint first: it reads the body in order. */
		int parsed = jerr == json_tokener_success && used == len;
		cb_error_set(e, 400, "bad_json", NULL, "%s",
		    parsed ? lexical : bad_json_why(body, len, jerr));
		return CB_ERR_REPLY;
	}
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		cb_error_set(e, 400, "bad_json", NULL, "the body must be a JSON object");
		return CB_ERR_REPLY;
	}
	*out = obj;
	return CB_OK;
}

/* Finds key; handles absence and null per flags. 1: a value to read, 0: done, <0: error. */
static int
lookup(json_object *obj, const char *key, unsigned flags, struct cb_field *f, struct cb_error *e,
    json_object **val)
{
	memset(f, 0, sizeof *f);
	if (!json_object_object_get_ex(obj, key, val)) {
		if (flags & CB_F_REQUIRED) {
			cb_error_set(e, 422, "validation_error", key, "%s is required", key);
			return CB_ERR_REPLY;
		}
		return 0;
	}
	f->present = 1;
	if (*val == NULL) {
		if (flags & CB_F_NULLABLE) {
			f->is_null = 1;
			return 0;
		}
		cb_error_set(e, 422, "validation_error", key, "%s must not be null", key);
		return CB_ERR_REPLY;
	}
	return 1;
}

/*
 * Unicode's White_Space characters, and the zero-width ones that show as
 * nothing either (U+180E, U+200B-U+200D, U+2060, U+FEFF).
 */
static int
invisible(unsigned long c)
{
	return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
	    c == 0x180e || (c >= 0x2000 && c <= 0x200d) || c == 0x2028 || c == 0x2029 ||
	    c == 0x202f || c == 0x205f || c == 0x2060 || c == 0x3000 || c == 0xfeff;
}

/* Whether s (valid UTF-8: the body was checked) is only white space. */
static int
blank(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0') {
		unsigned long c = *p;
		int more = c < 0x80 ? 0 : c < 0xe0 ? 1 : c < 0xf0 ? 2 : 3;

		if (more > 0)
			c &= 0x3fu >> more;
		for (p++; more > 0 && (*p & 0xc0) == 0x80; more--, p++)
			c = (c << 6) | (*p & 0x3fu);
		if (!invisible(c))
			return 0;
	}
	return 1;
}

int
cb_json_string(json_object *obj, const char *key, unsigned flags, size_t min, size_t max,
    struct cb_field *f, struct cb_error *e)
{
	json_object *v;
	int rc = lookup(obj, key, flags, f, e, &v);

	if (rc <= 0)
		return rc;
	if (!json_object_is_type(v, json_type_string)) {
		cb_error_set(e, 422, "validation_error", key, "%s must be a string", key);
		return CB_ERR_REPLY;
	}
	const char *s = json_object_get_string(v);
	size_t bytes = (size_t)json_object_get_string_len(v);
	size_t chars = cb_utf8_length(s, bytes);
	if (strlen(s) != bytes) {
		cb_error_set(
		    e, 422, "validation_error", key, "%s must not contain NUL characters", key);
		return CB_ERR_REPLY;
	}
	if (chars < min || chars > max) {
		cb_error_set(e, 422, "validation_error", key,
		    "%s must be %zu to %zu characters long", key, min, max);
		return CB_ERR_REPLY;
	}
	if ((flags & CB_F_BLANK_NULL) && blank(s)) {
		f->is_null = 1;
		return CB_OK;
	}
	if ((flags & CB_F_NOTBLANK) && blank(s)) {
		cb_error_set(
		    e, 422, "validation_error", key, "%s must not be only white space", key);
		return CB_ERR_REPLY;
	}
	f->s = s;
	return CB_OK;
}

int
cb_json_int(json_object *obj, const char *key, unsigned flags, long long min, long long max,
    struct cb_field *f, struct cb_error *e)
{
	json_object *v;
	int rc = lookup(obj, key, flags, f, e, &v);

	if (rc <= 0)
		return rc;
	/* json-c keeps integers apart from doubles: 1.0 and "1" are not integers. */
	if (!json_object_is_type(v, json_type_int)) {
		cb_error_set(e, 422, "validation_error", key, "%s must be an integer", key);
		return CB_ERR_REPLY;
	}
	/*
	 * Values past the int64 range saturate: json-c reads 2^63 and above as
	 * INT64_MAX, which the uint64 reading tells apart from INT64_MAX itself
	 * (a valid id), and below -2^63 as INT64_MIN, under every min we use.
	 */
	long long i = json_object_get_int64(v);
	if (i < min || i > max || (i == INT64_MAX && json_object_get_uint64(v) > INT64_MAX)) {
		cb_error_set(
		    e, 422, "validation_error", key, "%s must be from %lld to %lld", key, min, max);
		return CB_ERR_REPLY;
	}
	f->i = i;
	return CB_OK;
}

int
cb_json_bool(
    json_object *obj, const char *key, unsigned flags, struct cb_field *f, struct cb_error *e)
{
	json_object *v;
	int rc = lookup(obj, key, flags, f, e, &v);

	if (rc <= 0)
		return rc;
	if (!json_object_is_type(v, json_type_boolean)) {
		cb_error_set(e, 422, "validation_error", key, "%s must be true or false", key);
		return CB_ERR_REPLY;
	}
	f->i = json_object_get_boolean(v);
	return CB_OK;
}

int
cb_json_enum(json_object *obj, const char *key, unsigned flags, const char *const *choices,
    struct cb_field *f, struct cb_error *e)
{
	int rc = cb_json_string(obj, key, flags, 1, 64, f, e);

	if (rc != CB_OK || !f->present || f->is_null)
		return rc;
	for (size_t i = 0; choices[i] != NULL; i++)
		if (strcmp(choices[i], f->s) == 0)
			return CB_OK;
	struct cb_buf list = {0};
	for (size_t i = 0; choices[i] != NULL; i++)
		cb_buf_printf(&list, "%s%s", i ? ", " : "", choices[i]);
	cb_error_set(e, 422, "validation_error", key, "%s must be one of: %s", key, list.data);
	cb_buf_free(&list);
	return CB_ERR_REPLY;
}

const char *
cb_json_text(json_object *obj)
{
	return json_object_to_json_string_ext(
	    obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* json-c's escapes: the five short ones, \" and \\, other controls as \u00xx. */
void
cb_json_write_string(struct cb_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *run = s;

	cb_buf_append(b, "\"", 1);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[7] = {'\\', 0};
		size_t n = 2;

		switch (c) {
		case '\b': esc[1] = 'b'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		case '\f': esc[1] = 'f'; break;
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		default:
			if (c >= 0x20)
				continue;
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			n = 6;
		}
		cb_buf_append(b, run, (size_t)(s - run));
		cb_buf_append(b, esc, n);
		run = s + 1;
	}
	cb_buf_append(b, run, (size_t)(s - run));
	cb_buf_append(b, "\"", 1);
}
