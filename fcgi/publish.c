/*
 * publish.c - HTTP/1.1 to nginx's Nchan publisher over its unix socket, on
 * one kept-alive connection per process.
 *
 * The requests are ours and the server is the instance's own nginx, so the
 * client is small: one sendmsg per request, blocking reads with a timeout,
 * a response read to its end (Content-Length, chunked, or until close) so
 * that the connection can carry the next one. A publish is at the heart of
 * every change; libcurl spent about a third of a worker's time per message
 * post on it (bench/RESULTS.md, round 5).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "publish.h"
#include "util.h"

/*
 * After a publish that got no answer, publishing pauses this long (a dead
 * Nchan must not slow every request). The pause and the warnings' spacing
 * are elapsed time: on the wall clock, a step back of an hour (NTP, a VM
 * resumed) within the pause paused publishing for that hour.
 */
#define BACKOFF_MS 2000
/* Failed publishes are logged at most once in this long (the log line counts them all). */
#define WARN_EVERY_MS 1000
/* The longest a connect, a send or a read may block. */
#define IO_TIMEOUT_MS 3000

static const struct cb_config *config;
static unsigned long failures;
static long long paused_until_ms;
static long long warned_ms;
static int conn = -1; /* the kept-alive connection, or -1 */

/* What has been read of one response and not yet consumed. */
struct reader {
	char buf[4096];
	size_t len, pos;
	size_t total; /* bytes received for this response */
	int closed; /* the server closed the connection (rather than a timeout or an error) */
	char *body; /* where the body goes (NUL-terminated, cut at body_cap - 1), or NULL */
	size_t body_cap, body_len;
};

int
cb_publish_init(const struct cb_config *cfg)
{
	config = cfg;
	return CB_OK;
}

static void
hang_up(void)
{
	if (conn >= 0)
		close(conn);
	conn = -1;
}

void
cb_publish_cleanup(void)
{
	hang_up();
}

static int
dial(void)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	struct timeval tv = {IO_TIMEOUT_MS / 1000, IO_TIMEOUT_MS % 1000 * 1000};
	const char *path = config->publish_socket;

	if (strlen(path) >= sizeof addr.sun_path)
		return CB_ERR;
	memcpy(addr.sun_path, path, strlen(path));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return CB_ERR;
	/* SO_SNDTIMEO also bounds connect on a unix socket whose backlog is full. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
	    connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
		cb_debug("publisher %s: %s", path, strerror(errno));
		close(fd);
		return CB_ERR;
	}
	conn = fd;
	return CB_OK;
}

static int
send_all(const char *head, size_t head_len, const char *body, size_t body_len)
{
	struct iovec iov[2] = {{(void *)head, head_len}, {(void *)body, body_len}};
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = body_len ? 2 : 1};

	while (msg.msg_iovlen > 0) {
		ssize_t n = sendmsg(conn, &msg, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return CB_ERR;
		/* A short send: move past what went. */
		while (msg.msg_iovlen > 0 && (size_t)n >= msg.msg_iov->iov_len) {
			n -= (ssize_t)msg.msg_iov->iov_len;
			msg.msg_iov++;
			msg.msg_iovlen--;
		}
		if (msg.msg_iovlen > 0) {
			msg.msg_iov->iov_base = (char *)msg.msg_iov->iov_base + n;
			msg.msg_iov->iov_len -= (size_t)n;
		}
	}
	return CB_OK;
}

/* Reads more into r. 1: got some; 0: the server closed; -1: error or timeout. */
static int
fill(struct reader *r)
{
	if (r->pos > 0) {
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->len -= r->pos;
		r->pos = 0;
	}
	if (r->len == sizeof r->buf)
		return -1; /* a line longer than the buffer: not nginx */
	for (;;) {
		ssize_t n = read(conn, r->buf + r->len, sizeof r->buf - r->len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			r->closed = 1;
		if (n <= 0)
			return n == 0 ? 0 : -1;
		r->len += (size_t)n;
		r->total += (size_t)n;
		return 1;
	}
}

/* One line without its CRLF, NUL-terminated in place. NULL at error or close. */
static char *
line(struct reader *r)
{
	for (;;) {
		char *nl = memchr(r->buf + r->pos, '\n', r->len - r->pos);

		if (nl != NULL) {
			char *start = r->buf + r->pos;

			r->pos = (size_t)(nl - r->buf) + 1;
			if (nl > start && nl[-1] == '\r')
				nl--;
			*nl = '\0';
			return start;
		}
		if (fill(r) != 1)
			return NULL;
	}
}

/* Consumes n bytes of body, keeping what fits when the caller asked for it. */
static int
skip(struct reader *r, unsigned long long n)
{
	while (n > 0) {
		if (r->pos == r->len) {
			r->pos = r->len = 0;
			if (fill(r) != 1)
				return CB_ERR;
		}
		size_t have = r->len - r->pos;
		size_t take = n < have ? (size_t)n : have;

		if (r->body != NULL && r->body_len + 1 < r->body_cap) {
			size_t room = r->body_cap - 1 - r->body_len;
			size_t copy = take < room ? take : room;

			memcpy(r->body + r->body_len, r->buf + r->pos, copy);
			r->body_len += copy;
			r->body[r->body_len] = '\0';
		}
		r->pos += take;
		n -= take;
	}
	return CB_OK;
}

static int
skip_chunks(struct reader *r)
{
	for (;;) {
		char *size = line(r), *end;

		if (size == NULL)
			return CB_ERR;
		unsigned long long n = strtoull(size, &end, 16);
		if (end == size)
			return CB_ERR;
		if (n == 0)
			break;
		if (skip(r, n) != CB_OK || line(r) == NULL)
			return CB_ERR;
	}
	/* Trailers, if any, up to the empty line. */
	for (char *l; (l = line(r)) != NULL;)
		if (*l == '\0')
			return CB_OK;
	return CB_ERR;
}

/* Whether a header value mentions word, in any case (as "chunked" or "close"). */
static int
mentions(const char *value, const char *word)
{
	for (size_t n = strlen(word); *value != '\0'; value++)
		if (strncasecmp(value, word, n) == 0)
			return 1;
	return 0;
}

/*
 * Reads one whole response: its status, and whether the connection may
 * carry another request (*keep).
 */
static int
read_response(struct reader *r, long *status, int *keep)
{
	long long length = -1;
	int chunked = 0, minor;
	char *l = line(r);

	if (l == NULL || sscanf(l, "HTTP/1.%d %ld", &minor, status) != 2)
		return CB_ERR;
	*keep = minor >= 1;
	while ((l = line(r)) != NULL && *l != '\0') {
		char *colon = strchr(l, ':'), *v;

		if (colon == NULL)
			continue;
		*colon = '\0';
		for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
			;
		if (strcasecmp(l, "Content-Length") == 0)
			length = strtoll(v, NULL, 10);
		else if (strcasecmp(l, "Transfer-Encoding") == 0)
			chunked = mentions(v, "chunked");
		else if (strcasecmp(l, "Connection") == 0)
			*keep = !mentions(v, "close") && (minor >= 1 || mentions(v, "keep-alive"));
	}
	if (l == NULL)
		return CB_ERR;
	if (*status < 200 || *status == 204 || *status == 304)
		return CB_OK;
	if (chunked)
		return skip_chunks(r);
	if (length >= 0)
		return skip(r, (unsigned long long)length);
	/* Neither: the body ends when the server closes; kept as skip keeps one. */
	*keep = 0;
	do
		skip(r, r->len - r->pos);
	while (fill(r) == 1);
	return CB_OK;
}

/*
 * One request to the publisher. A kept-alive connection that the server
 * closed while idle fails before any answer comes; then, and only then,
 * the request is sent again on a new connection (nginx had not read it).
 * A server that does not answer is not asked twice. With answer, the
 * response's body (JSON asked for) is kept there, cut to fit answer_cap.
 */
static int
request(const char *method, const char *path, const char *body, long *status, char *answer,
    size_t answer_cap)
{
	size_t body_len = body ? strlen(body) : 0;

	*status = 0;
	if (config == NULL || config->publish_socket[0] == '\0')
		return CB_ERR;
	char *head = xasprintf("%s %s HTTP/1.1\r\nHost: localhost\r\n%s%s"
	                       "Content-Length: %zu\r\n\r\n",
	    method, path, body ? "Content-Type: application/json\r\n" : "",
	    answer ? "Accept: application/json\r\n" : "", body_len);
	int rc = CB_ERR;

	if (answer != NULL && answer_cap > 0)
		answer[0] = '\0';
	for (int attempt = 0; attempt < 2 && rc != CB_OK; attempt++) {
		struct reader r = {.body = answer, .body_cap = answer_cap};
		int reused = conn >= 0, keep = 0;

		if (!reused && dial() != CB_OK)
			break;
		rc = send_all(head, strlen(head), body, body_len);
		if (rc != CB_OK)
			r.closed = errno == EPIPE || errno == ECONNRESET;
		else
			rc = read_response(&r, status, &keep);
		/* Anything left over would be read as the next answer. */
		if (rc != CB_OK || !keep || r.pos != r.len)
			hang_up();
		if (rc != CB_OK && !(reused && r.total == 0 && r.closed))
			break;
	}
	free(head);
	if (rc != CB_OK)
		cb_debug("publisher %s %s: no answer", method, path);
	return rc;
}

int
cb_publish(const char *channels, const char *json)
{
	long status;
	int rc;

	if (cb_monotonic_ms() < paused_until_ms) {
		failures++;
		return CB_ERR;
	}
	/* Raw, not escaped: nginx hands $arg_id to Nchan undecoded, and '/' and ',' are legal here. */
	char *path = xasprintf("/pub?id=%s", channels);
	int answered = request("POST", path, json, &status, NULL, 0) == CB_OK;
	/* Nchan answers 201 for a new message on a subscribed channel, 202 when nobody listens. */
	rc = answered && status >= 200 && status <= 299 ? CB_OK : CB_ERR;
	if (rc != CB_OK) {
		long long now = cb_monotonic_ms();
		failures++;
		/*
		 * No answer: Nchan is down or hung, and the next publish would wait
		 * as long. A refusal came at once (Nchan's memory full: 500), and the
		 * next message may fit, so that one is tried.
		 */
		if (!answered)
			paused_until_ms = now + BACKOFF_MS;
		if (now - warned_ms >= WARN_EVERY_MS) {
			warned_ms = now;
			cb_warn("publish to %s failed (%s); %lu failures so far%s", channels,
			    answered ? "refused" : "no answer", failures,
			    answered ? "" : "; pausing " CB_STR(BACKOFF_MS) " ms");
		}
	}
	free(path);
	return rc;
}

int
cb_publish_ping(void)
{
	long status;

	return request("POST", "/ping", "{}", &status, NULL, 0) == CB_OK && status >= 200 &&
	        status < 300
	    ? CB_OK
	    : CB_ERR;
}

unsigned long
cb_publish_failures(void)
{
	return failures;
}

int
cb_publish_channel_info(const char *channel, long *messages, long long *newest_s)
{
	char answer[512], *at;
	long status;

	*messages = 0;
	*newest_s = 0;
	if (cb_monotonic_ms() < paused_until_ms)
		return CB_ERR;
	char *path = xasprintf("/pub?id=%s", channel);
	int rc = request("GET", path, NULL, &status, answer, sizeof answer);
	free(path);
	if (rc != CB_OK || (status != 200 && status != 404))
		return CB_ERR;
	if (status == 404) /* no such channel: nothing kept */
		return CB_OK;
	/* {"messages": 2, "requested": -1, "subscribers": 0, "last_message_id": "1795604968:1" } */
	if ((at = strstr(answer, "\"messages\":")) == NULL)
		return CB_ERR;
	*messages = strtol(at + strlen("\"messages\":"), NULL, 10);
	if ((at = strstr(answer, "\"last_message_id\":")) != NULL &&
	    (at = strchr(at + strlen("\"last_message_id\":"), '"')) != NULL)
		*newest_s = strtoll(at + 1, NULL, 10);
	return CB_OK;
}

/* Whether an HTTP date is after 1970-01-01 00:00:00, or unreadable here (RFC 1123 only). */
static int
after_epoch(const char *date)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char month[4];
	int day, year, h, m, s;

	if (sscanf(date, "%*3s, %d %3s %d %d:%d:%d GMT", &day, month, &year, &h, &m, &s) != 6 ||
	    strlen(month) != 3 || strstr(months, month) == NULL)
		return 1;
	if (year != 1970)
		return year > 1970;
	return strcmp(month, "Jan") != 0 || day != 1 || h != 0 || m != 0 || s != 0;
}

int
cb_publish_resume_asked(const char *if_modified_since, const char *if_none_match,
    const char *last_event_id, const char *arg_last_event_id)
{
	if (if_modified_since != NULL && *if_modified_since != '\0')
		return after_epoch(if_modified_since);
	if (if_none_match != NULL && *if_none_match != '\0')
		return strchr(if_none_match, ':') != NULL;
	return (last_event_id != NULL && *last_event_id != '\0') ||
	    (arg_last_event_id != NULL && *arg_last_event_id != '\0');
}

int
cb_publish_resumable(long messages, long long newest_s, long long now_s)
{
	return messages > 0 && newest_s + CB_PUBLISH_KEEP_S - now_s >= CB_PUBLISH_RESUME_MARGIN_S;
}
