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

void
cb_log(enum cb_log_level level, const char *fmt, ...)
{
	char line[2048], stamp[32];
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
	/* One write per line, so lines of concurrent workers never interleave. */
	fprintf(stderr, "%s.%03ldZ [%d] %s: %s\n", stamp, (long)(tv.tv_usec / 1000), (int)getpid(),
	    names[level], line);
	fflush(stderr);
}
