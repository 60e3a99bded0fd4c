/* log.h - one line per event on stderr, which the pool sends to fcgi.log. */
#ifndef CB_LOG_H
#define CB_LOG_H

/*
 * A line: "2026-11-25T14:02:03.123Z [pid] level: req=<id> message", the
 * req= part only while a request is served (cb_log_request).
 */
enum cb_log_level { CB_LOG_DEBUG, CB_LOG_INFO, CB_LOG_WARN, CB_LOG_ERROR };

/* nginx's $request_id is 32 hex digits. */
#define CB_LOG_REQUEST_ID_MAX 32

void cb_log_set_level(enum cb_log_level level);
/* Parses "debug", "info", "warn" or "error"; CB_OK or CB_ERR. */
int cb_log_parse_level(const char *name, enum cb_log_level *out);
/*
 * The request the lines that follow belong to: nginx's id of it (the
 * REQUEST_ID parameter, 32 hex digits), which each line then carries as
 * "req=<id>"; NULL (or anything that is not 1-32 hex digits) when no
 * request is being served. It is copied.
 */
void cb_log_request(const char *id);
void cb_log(enum cb_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define cb_debug(...) cb_log(CB_LOG_DEBUG, __VA_ARGS__)
#define cb_info(...) cb_log(CB_LOG_INFO, __VA_ARGS__)
#define cb_warn(...) cb_log(CB_LOG_WARN, __VA_ARGS__)
#define cb_error(...) cb_log(CB_LOG_ERROR, __VA_ARGS__)

#endif
