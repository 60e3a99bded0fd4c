/* util.h - return codes, the allocation family and a growable string buffer. */
#ifndef CB_UTIL_H
#define CB_UTIL_H

#include <stdarg.h>
#include <stddef.h>

/*
 * Every function that can fail returns CB_OK or one of these negative codes.
 * Callers branch on the precise ones; anything else is an internal error.
 */
#define CB_OK 0
#define CB_ERR -1 /* internal error, already logged */
#define CB_ERR_UNAVAILABLE -2 /* the database cannot be reached */
#define CB_ERR_NOTFOUND -3
#define CB_ERR_CONFLICT -4
#define CB_ERR_DUPLICATE -5 /* unique key violated */
#define CB_ERR_RETRY -6 /* deadlock or lock wait timeout: run the transaction again */
#define CB_ERR_REPLY -7 /* an error response has been recorded for the client */
#define CB_ERR_SCHEMA -8 /* a table or column missing: the schema is older than the program */
#define CB_ERR_FULL -9 /* the database has no room (its disk full): the statement did nothing */
#define CB_ERR_NO_IDS -10 /* a table's ids are used up (at CB_ID_MAX): the statement did nothing */

/*
 * The largest id: every id is a positive BIGINT (schema/), so up to 2^63 - 1.
 * Paths, queries and bodies take every id the database can hand out; past
 * this, nothing can have it.
 */
#define CB_ID_MAX 9223372036854775807LL

#define CB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define CB_XSTR(x) #x
#define CB_STR(x) CB_XSTR(x)

/* Allocation failure aborts, so callers never check for NULL. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct cb_buf {
	char *data;
	size_t len;
	size_t cap;
};

void cb_buf_append(struct cb_buf *b, const char *data, size_t len);
void cb_buf_printf(struct cb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cb_buf_free(struct cb_buf *b);
/* Room for len more bytes (and the NUL): where they go. The caller then adds len to b->len. */
char *cb_buf_space(struct cb_buf *b, size_t len);
/* Appends v in decimal, as "%lld" would, without the cost of printf. */
void cb_buf_append_int(struct cb_buf *b, long long v);

/*
 * Writes the time as RFC 3339 UTC with milliseconds, "YYYY-MM-DDTHH:MM:SS.mmmZ",
 * each field cut to its width as "%04u-%02u-..." of the value modulo 10^width.
 */
void cb_format_utc(char out[32], unsigned year, unsigned month, unsigned day, unsigned hour,
    unsigned minute, unsigned second, unsigned long ms);

/* Number of Unicode code points in valid UTF-8 text. */
size_t cb_utf8_length(const char *s, size_t bytes);
/* Non-zero when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
int cb_utf8_valid(const char *s, size_t len);
/* Turns every byte of s that is not part of well-formed UTF-8 into '?', in place. */
void cb_utf8_scrub(char *s);
/* Parse a whole decimal integer in [min, max]; CB_OK or CB_ERR. */
int cb_parse_int(const char *s, long long min, long long max, long long *out);
/* Current time in milliseconds since the epoch. */
long long cb_now_ms(void);
/* Milliseconds on the monotonic clock, which every process of the host shares. */
long long cb_monotonic_ms(void);

#endif
