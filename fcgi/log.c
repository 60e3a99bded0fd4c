/* log.c - timestamped log lines on stderr. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static enum cb_log_level threshold = CB_LOG_INFO;
static const char *const names[] = {"debug", "info", "warn", "error"};
/* "req=<id> " while a request is served (cb_log_request), else "". */
static char request_prefix[sizeof "req= " + CB_LOG_REQUEST_ID_MAX];

void
cb_log_set_level(enum cb_log_level level)
{
	threshold = level;
}

int
cb_log_parse_level(const char *name, enum cb_log_level *out)
{
	for (size_t i = 0; i < CB_ARRAY_LEN(names); i++) {
		if (strcmp(name, names[i]) == 0) {
			*out = (enum cb_log_level)i;
			return CB_OK;
		}
	}
	return CB_ERR;
}

/*
 * Kept in a static buffer, filled once per request: a line costs no more
 * than before, and a request no allocation. Only hex digits are taken, so
 * the id can neither break a line nor be mistaken for the message.
 */
void
cb_log_request(const char *id)
{
	size_t len = id != NULL ? strspn(id, "0123456789abcdefABCDEF") : 0;

	if (len == 0 || len > CB_LOG_REQUEST_ID_MAX || id[len] != '\0') {
		request_prefix[0] = '\0';
		return;
	}
	memcpy(request_prefix, "req=", 4);
	memcpy(request_prefix + 4, id, len);
	request_prefix[4 + len] = ' ';
	request_prefix[5 + len] = '\0';
}

/*
 * Copies line into out (size bytes), control characters written as \xNN (as
 * nginx writes them in its access log): a message may quote the request (a
 * path, which nginx has percent-decoded), and a newline in it would start a
 * line of its own, one that looks like any other worker's. What does not fit
 * is cut, as vsnprintf cuts the message: a line of 4 times the room went out
 * in two writes (stdio's buffer is 8 KiB), between which another worker's
 * line could land.
 */
static void
escape_controls(const char *line, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	char *end = out + size - 1;

	for (; *line != '\0'; line++) {
		unsigned char c = (unsigned char)*line;
		if (c >= 0x20 && c != 0x7f) {
			if (end - out < 1)
				break;
			*out++ = (char)c;
			continue;
		}
		if (end - out < 4)
			break;
		*out++ = '\\';
		*out++ = 'x';
		*out++ = hex[c >> 4];
		*out++ = hex[c & 0xf];
	}
	*out = '\0';
}

void
cb_log(enum cb_log_level level, const char *fmt, ...)
{
	char line[2048], safe[sizeof line], stamp[32];
	struct timeval tv;
	struct tm tm;
	va_list ap;

	if (level < threshold)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	escape_controls(line, safe, sizeof safe);
	/* One write per line, so lines of concurrent workers never interleave. */
	fprintf(stderr, "%s.%03ldZ [%d] %s: %s%s\n", stamp, (long)(tv.tv_usec / 1000),
	    (int)getpid(), names[level], request_prefix, safe);
	fflush(stderr);
}
