/*
 * json.h - parsing request bodies and reading their fields with validation.
 * Pure: no FastCGI and no database, so every rule is unit-tested.
 */
#ifndef CB_JSON_H
#define CB_JSON_H

#include <json-c/json.h>
#include <stddef.h>

#include "request.h"

#define CB_F_REQUIRED 0x1u /* absent → 422 */
#define CB_F_NULLABLE 0x2u /* an explicit null is accepted (f->is_null) */
#define CB_F_NOTBLANK 0x4u /* strings: not only white space */
#define CB_F_BLANK_NULL 0x8u /* strings: empty or only white space reads as null */

struct cb_field {
	int present; /* the key is in the body */
	int is_null; /* its value is null (only with CB_F_NULLABLE) */
	long long i; /* integers and booleans */
	const char *s; /* strings; owned by the parsed body */
};

/*
 * Parses a request body that must be one JSON object in valid UTF-8.
 * An empty body reads as {}. CB_OK, or CB_ERR_REPLY with e set to 400 bad_json.
 */
int cb_json_parse_body(const char *body, size_t len, json_object **out, struct cb_error *e);

/*
 * Each reads obj[key] into f and returns CB_OK, or CB_ERR_REPLY with e set
 * to 422 validation_error naming key. An absent optional key leaves
 * f->present at 0. Lengths are counted in characters (code points).
 */
int cb_json_string(json_object *obj, const char *key, unsigned flags, size_t min, size_t max,
    struct cb_field *f, struct cb_error *e);
int cb_json_int(json_object *obj, const char *key, unsigned flags, long long min, long long max,
    struct cb_field *f, struct cb_error *e);
int cb_json_bool(
    json_object *obj, const char *key, unsigned flags, struct cb_field *f, struct cb_error *e);
/* A string that must be one of choices (a NULL-terminated list). */
int cb_json_enum(json_object *obj, const char *key, unsigned flags, const char *const *choices,
    struct cb_field *f, struct cb_error *e);

/* Serialises without escaping slashes; the string lives as long as obj. */
const char *cb_json_text(json_object *obj);
/*
 * Appends s as a JSON string literal, escaped byte for byte as cb_json_text
 * escapes it, for answers written straight from rows (cb_res_write_array).
 */
void cb_json_write_string(struct cb_buf *b, const char *s);

#endif
