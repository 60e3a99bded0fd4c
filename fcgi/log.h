/* log.h - one line per event on stderr, which the pool sends to fcgi.log. */
#ifndef CB_LOG_H
#define CB_LOG_H

enum cb_log_level { CB_LOG_DEBUG, CB_LOG_INFO, CB_LOG_WARN, CB_LOG_ERROR };

void cb_log_set_level(enum cb_log_level level);
/* Parses "debug", "info", "warn" or "error"; CB_OK or CB_ERR. */
int cb_log_parse_level(const char *name, enum cb_log_level *out);
void cb_log(enum cb_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define cb_debug(...) cb_log(CB_LOG_DEBUG, __VA_ARGS__)
#define cb_info(...) cb_log(CB_LOG_INFO, __VA_ARGS__)
#define cb_warn(...) cb_log(CB_LOG_WARN, __VA_ARGS__)
#define cb_error(...) cb_log(CB_LOG_ERROR, __VA_ARGS__)

#endif
