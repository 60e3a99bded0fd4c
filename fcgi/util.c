/* util.c - allocation, string buffers and small text helpers. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

/*
 * GCC 12 with -fsanitize=undefined instruments a null check on fmt and then
 * warns that the format "may be null" in these vsnprintf calls: a false
 * positive (fmt is a format attribute's argument), and -Werror is on there.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

static void
oom(size_t size)
{
	fprintf(stderr, "carebot: out of memory allocating %zu bytes\n", size);
	abort();
}

/*
 * The length vsnprintf measured for a format. It fails (-1) only when the
 * text would pass INT_MAX bytes or a wide character has no encoding: taken
 * as the size it was, -1 left xasprintf's text unterminated and took a byte
 * off a buffer's length. Like running out of memory, that aborts.
 */
static size_t
measured(int n)
{
	if (n < 0) {
		fprintf(stderr, "carebot: cannot format text: %s\n", strerror(errno));
		abort();
	}
	return (size_t)n;
}

void *
xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (p == NULL)
		oom(size);
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		oom(n * size);
	return p;
}

void *
xrealloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);

	if (p == NULL)
		oom(size);
	return p;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	struct cb_buf b = {0};
	char probe[1];
	va_list ap;

	va_start(ap, fmt);
	size_t n = measured(vsnprintf(probe, sizeof probe, fmt, ap));
	va_end(ap);
	b.cap = n + 1;
	b.data = xmalloc(b.cap);
	va_start(ap, fmt);
	vsnprintf(b.data, b.cap, fmt, ap);
	va_end(ap);
	return b.data;
}

static void
buf_reserve(struct cb_buf *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + extra + 1)
		cap *= 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

char *
cb_buf_space(struct cb_buf *b, size_t len)
{
	buf_reserve(b, len);
	return b->data + b->len;
}

void
cb_buf_append(struct cb_buf *b, const char *data, size_t len)
{
	buf_reserve(b, len);
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void
cb_buf_printf(struct cb_buf *b, const char *fmt, ...)
{
	char probe[1];
	va_list ap;

	va_start(ap, fmt);
	size_t n = measured(vsnprintf(probe, sizeof probe, fmt, ap));
	va_end(ap);
	buf_reserve(b, n);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, n + 1, fmt, ap);
	va_end(ap);
	b->len += n;
}

void
cb_buf_append_int(struct cb_buf *b, long long v)
{
	char digits[24], *p = digits + sizeof digits;
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*--p = '-';
	cb_buf_append(b, p, (size_t)(digits + sizeof digits - p));
}

/* Writes the low width decimal digits of v, zero-padded; returns the end. */
static char *
put_digits(char *p, unsigned long v, int width)
{
	for (int i = width - 1; i >= 0; i--, v /= 10)
		p[i] = (char)('0' + v % 10);
	return p + width;
}

void
cb_format_utc(char out[32], unsigned year, unsigned month, unsigned day, unsigned hour,
    unsigned minute, unsigned second, unsigned long ms)
{
	char *p = out;

	p = put_digits(p, year, 4);
	*p++ = '-';
	p = put_digits(p, month, 2);
	*p++ = '-';
	p = put_digits(p, day, 2);
	*p++ = 'T';
	p = put_digits(p, hour, 2);
	*p++ = ':';
	p = put_digits(p, minute, 2);
	*p++ = ':';
	p = put_digits(p, second, 2);
	*p++ = '.';
	p = put_digits(p, ms, 3);
	*p++ = 'Z';
	*p = '\0';
}

void
cb_buf_free(struct cb_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

size_t
cb_utf8_length(const char *s, size_t bytes)
{
	size_t n = 0;

	for (size_t i = 0; i < bytes; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			n++;
	return n;
}

/* The length of the well-formed UTF-8 sequence at s[i], or 0 if there is none. */
static size_t
utf8_sequence(const unsigned char *s, size_t len, size_t i)
{
	unsigned c = s[i], cp;
	size_t need;

	if (c < 0x80)
		return 1;
	else if (c >= 0xC2 && c <= 0xDF)
		need = 1, cp = c & 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		need = 2, cp = c & 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		need = 3, cp = c & 0x07;
	else
		return 0;
	if (i + need >= len)
		return 0;
	for (size_t k = 1; k <= need; k++) {
		if ((s[i + k] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i + k] & 0x3F);
	}
	/* Reject overlong forms, surrogates and code points past U+10FFFF. */
	if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
	    (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
		return 0;
	return need + 1;
}

int
cb_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;

	for (size_t i = 0, n; i < len; i += n)
		if ((n = utf8_sequence(s, len, i)) == 0)
			return 0;
	return 1;
}

void
cb_utf8_scrub(char *str)
{
	unsigned char *s = (unsigned char *)str;
	size_t len = strlen(str), n;

	for (size_t i = 0; i < len; i += n ? n : 1)
		if ((n = utf8_sequence(s, len, i)) == 0)
			s[i] = '?';
}

int
cb_parse_int(const char *s, long long min, long long max, long long *out)
{
	char *end;

	if (s == NULL || *s == '\0' || !(*s == '-' || (*s >= '0' && *s <= '9')))
		return CB_ERR;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return CB_ERR;
	*out = v;
	return CB_OK;
}

long long
cb_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long
cb_monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
