/*
 * api-internal.c - GET /_auth: nginx's auth_request asks here before Nchan
 * takes a subscription (contract section 7). GET /_bad_msgid and
 * GET /_bad_handshake: nginx, for a subscription whose message id Nchan could
 * not read or whose WebSocket handshake Nchan would refuse. nginx reaches
 * them only through `internal` locations, passing the subscriber's original
 * URI in CAREBOT_AUTH_URI and the channel its location matched in
 * CAREBOT_CHANNEL ("chat/7"); no public path maps to them.
 *
 * Answers 204 (allowed; /_bad_msgid and /_bad_handshake: 400), 401 (no or
 * bad token), 403 (not allowed) or, for /_auth, 409 (a resume with nothing
 * kept to resume from). /_auth and /_resume_from answer auth_request, which
 * passes on no body and no status but 401 and 403: their refusals are a 401
 * or a 403 whose headers carry the real status and the JSON error
 * (cb_reply_failure), which nginx answers with.
 *
 * GET /_resume_from: the same question for a subscription that resumes from
 * Last-Event-ID or ?last_event_id= (an EventSource reconnecting, above all),
 * which nginx sends through its own location (/_resume), and which message
 * id Nchan is to resume from. GET /_auth_resume is the token question alone,
 * for an nginx config from before 2026-11-25, whose Nchan asked it after
 * /_resume_from.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "db-chat-ops.h"
#include "db-sessions.h"
#include "publish.h"
#include "router.h"
#include "util.h"

enum channel { CH_CHAT, CH_AGENT, CH_DEPARTMENT };

/* "/ws/chat/7?token=..." (or "/ws/chat/7/") → kind and id; CB_ERR when it is
 * no channel path. */
static int
parse_channel(const char *uri, enum channel *kind, long long *id)
{
	static const struct {
		const char *pattern;
		enum channel kind;
	} kinds[] = {
	    {"/ws/chat/{id}", CH_CHAT},
	    {"/ws/agent/{id}", CH_AGENT},
	    {"/ws/department/{id}", CH_DEPARTMENT},
	};
	int rc = CB_ERR;

	if (uri == NULL)
		return CB_ERR;
	char *path = cb_path_clean(uri);
	for (size_t i = 0; rc != CB_OK && i < CB_ARRAY_LEN(kinds); i++) {
		unsigned n;
		if (cb_router_match(kinds[i].pattern, path, id, &n)) {
			*kind = kinds[i].kind;
			rc = CB_OK;
		}
	}
	free(path);
	return rc;
}

/* The value of cookie name in a Cookie header, copied into out; NULL if absent. */
static const char *
cookie(const char *header, const char *name, char *out, size_t outlen)
{
	size_t nlen = strlen(name);

	while (header != NULL && *header != '\0') {
		header += strspn(header, " ;");
		size_t len = strcspn(header, ";");
		if (len > nlen && strncmp(header, name, nlen) == 0 && header[nlen] == '=') {
			snprintf(out, outlen, "%.*s", (int)(len - nlen - 1), header + nlen + 1);
			return out;
		}
		header += len;
	}
	return NULL;
}

/* The value of ?name= in the subscriber's URI, decoded into buf; NULL if absent or too long. */
static const char *
uri_query(const char *uri, const char *name, char *buf, size_t buflen)
{
	const char *qs = strchr(uri, '?'), *value = NULL;
	struct cb_request original = {0};

	if (qs != NULL && cb_request_parse_query(&original, qs + 1) == CB_OK) {
		const char *v = cb_query_get(&original, name);
		if (v != NULL && snprintf(buf, buflen, "%s", v) < (int)buflen)
			value = buf;
	}
	for (unsigned i = 0; i < original.nquery; i++) {
		free(original.query[i].name);
		free(original.query[i].value);
	}
	return value;
}

/*
 * The subscriber's token: ?token=, then the bearer header, then the
 * carebot_token cookie (*from_cookie set). The first one present is the one
 * checked: what the client sent on purpose comes before what its browser
 * sends anyway.
 */
static const char *
subscriber_token(
    struct cb_request *req, const char *uri, char *buf, size_t buflen, int *from_cookie)
{
	const char *token = uri_query(uri, "token", buf, buflen);

	if (token == NULL)
		token = cb_auth_bearer(req->authorization);
	*from_cookie = 0;
	if (token == NULL) {
		token = cookie(
		    FCGX_GetParam("HTTP_COOKIE", req->fcgx->envp), "carebot_token", buf, buflen);
		*from_cookie = token != NULL;
	}
	return token;
}

/* May the user read this chat (contract 3, the rule of GET /api/chats/{id})? */
static int
chat_allowed(struct cb_request *req, long long chat_id, int *allowed)
{
	struct cb_chat_state st;
	struct cb_error ignored;
	int rc = cb_db_chat_state_read(req->db, chat_id, &st);

	*allowed = 0;
	if (rc == CB_ERR_NOTFOUND)
		return CB_OK;
	if (rc == CB_OK)
		*allowed = cb_chat_access_check(&req->user, &st, CB_CHAT_READ, &ignored) == CB_OK;
	return rc;
}

/* Does the agent or department behind a channel exist (for admins, who may ask for any)? */
static int
channel_exists(struct cb_request *req, enum channel kind, long long id, int *exists)
{
	struct cb_res *res;
	int rc = cb_db_query_one(req->db, &res,
	    kind == CH_AGENT
	        ? "SELECT 1 AS present FROM users WHERE id = ? AND role = 'agent'"
	        : "SELECT 1 AS present FROM departments WHERE id = ? AND deleted_at IS NULL",
	    "i", id);

	*exists = rc == CB_OK;
	if (rc == CB_OK)
		cb_res_free(res);
	return rc == CB_ERR_NOTFOUND ? CB_OK : rc;
}

/*
 * The subscription's channel: the one nginx matched (CAREBOT_CHANNEL,
 * "chat/7") when its config passes it, as the URI itself may be spelt in
 * ways nginx normalizes (/ws/chat/%37, /ws//chat/7) and this parser does
 * not. channel, unless NULL, gets its Nchan id.
 */
static int
subscriber_channel(
    struct cb_request *req, enum channel *kind, long long *id, char *channel, size_t channel_len)
{
	static const char *const kind_names[] = {
	    [CH_CHAT] = "chat", [CH_AGENT] = "agent", [CH_DEPARTMENT] = "department"};
	const char *matched = FCGX_GetParam("CAREBOT_CHANNEL", req->fcgx->envp);
	char buf[256];
	int rc;

	if (matched != NULL && *matched != '\0' &&
	    snprintf(buf, sizeof buf, "/ws/%s", matched) < (int)sizeof buf)
		rc = parse_channel(buf, kind, id);
	else
		rc = parse_channel(FCGX_GetParam("CAREBOT_AUTH_URI", req->fcgx->envp), kind, id);
	if (rc == CB_OK && channel != NULL)
		snprintf(channel, channel_len, "%s/%lld", kind_names[*kind], *id);
	return rc;
}

/*
 * The subscriber's token and its right to the channel, in that order: 403
 * for no such channel, 401 for no token or a dead one, 403 when not
 * allowed. CB_OK with nothing sent when the subscription may go ahead;
 * then channel, unless NULL, holds its Nchan id ("chat/7").
 */
static int
check_subscriber(struct cb_request *req, char *channel, size_t channel_len)
{
	const char *uri = FCGX_GetParam("CAREBOT_AUTH_URI", req->fcgx->envp);
	char buf[256];
	enum channel kind;
	long long id;
	int allowed = 0, from_cookie, rc;

	if (subscriber_channel(req, &kind, &id, channel, channel_len) != CB_OK)
		return cb_fail(req, 403, "forbidden", NULL, "no such channel");
	const char *token =
	    subscriber_token(req, uri != NULL ? uri : "", buf, sizeof buf, &from_cookie);
	if (token == NULL)
		return cb_fail(req, 401, "unauthorized", NULL, "a token is required");
	/* Before the token is looked up: a foreign page learns nothing of it. */
	if (from_cookie &&
	    !cb_auth_cookie_origin_ok(FCGX_GetParam("HTTP_ORIGIN", req->fcgx->envp),
	        FCGX_GetParam("HTTP_HOST", req->fcgx->envp), req->cfg->cookie_origins))
		return cb_fail(req, 403, "forbidden", NULL,
		    "the carebot_token cookie is not accepted from this page's origin; "
		    "send the token as ?token=");
	rc = cb_db_session_lookup(req->db, token, &req->user);
	if (rc == CB_ERR_NOTFOUND)
		return cb_fail(
		    req, 401, "unauthorized", NULL, "the token is unknown, expired or revoked");
	if (rc != CB_OK)
		return rc;
	switch (kind) {
	case CH_CHAT:
		if ((rc = chat_allowed(req, id, &allowed)) != CB_OK)
			return rc;
		break;
	case CH_AGENT:
		allowed = req->user.role == CB_ROLE_ADMIN ||
		    (req->user.role == CB_ROLE_AGENT && req->user.id == id);
		break;
	case CH_DEPARTMENT:
		allowed = req->user.role == CB_ROLE_ADMIN ||
		    (req->user.role == CB_ROLE_AGENT && req->user.department_id == id);
		break;
	}
	/* As for chats: a channel of nothing is 403, for admins too. */
	if (allowed && kind != CH_CHAT && req->user.role == CB_ROLE_ADMIN &&
	    (rc = channel_exists(req, kind, id, &allowed)) != CB_OK)
		return rc;
	return allowed ? CB_OK : cb_forbidden(req);
}

/*
 * The longest between /_resume_from's answer and Nchan's subscribing. Nchan
 * subscribes as soon as nginx has the answer, but an nginx config from before
 * 2026-11-25 has its Nchan ask /_auth_resume first: the checker server's
 * fastcgi_connect_timeout (5 s) and fastcgi_read_timeout (10 s); past them
 * the subscription is a 503 and never reaches Nchan. The newest kept event
 * must outlive that too.
 */
#define RESUME_TOKEN_CHECK_S 15

/*
 * Whether Nchan keeps an event on the channel to resume from, one that
 * outlives the margin (cb_publish_resumable) and the hold_s seconds before
 * Nchan subscribes. When the publisher cannot say (out of reach, or this
 * worker backing off after a failed publish), no: the nginx that serves the
 * subscription, Nchan with it, is up all the same, and a resume it takes on
 * a channel that keeps nothing aborts its worker.
 */
static int
resume_kept(const char *channel, int hold_s)
{
	long messages;
	long long newest_s;

	return cb_publish_channel_info(channel, &messages, &newest_s) == CB_OK &&
	    cb_publish_resumable(messages, newest_s, (long long)time(NULL) + hold_s);
}

/*
 * A subscription that resumes from a message id on a channel for which
 * Nchan keeps nothing would abort nginx's worker, and with it every
 * subscription of the instance (resume_kept). It is refused with 409
 * instead: whatever the subscriber missed is older than Nchan keeps, so only
 * the history can tell it.
 */
static int
check_resume(struct cb_request *req, const char *channel)
{
	char **envp = req->fcgx->envp;
	const char *uri = FCGX_GetParam("CAREBOT_AUTH_URI", envp);
	char arg[128];

	if (!cb_publish_resume_asked(FCGX_GetParam("HTTP_IF_MODIFIED_SINCE", envp),
	        FCGX_GetParam("HTTP_IF_NONE_MATCH", envp),
	        FCGX_GetParam("HTTP_LAST_EVENT_ID", envp),
	        uri != NULL ? uri_query(uri, "last_event_id", arg, sizeof arg) : NULL) ||
	    resume_kept(channel, 0))
		return CB_OK;
	return cb_fail(req, 409, "conflict", NULL,
	    "nothing is kept on this channel to resume from (events are kept 10 minutes): "
	    "subscribe again without a message id, and read what was missed from the history");
}

/* GET /_auth: nginx's question; 204 lets the subscription go ahead. */
static int
authorize(struct cb_request *req)
{
	char channel[64];
	int rc;

	req->refusal_in_headers = 1;
	rc = check_subscriber(req, channel, sizeof channel);

	if (rc == CB_OK)
		rc = check_resume(req, channel);
	if (rc == CB_OK)
		cb_reply_empty(req, 204);
	return rc;
}

/*
 * GET /_resume_from: nginx's question (auth_request) before a subscription
 * that resumes from Last-Event-ID or ?last_event_id= and sends neither
 * If-Modified-Since nor If-None-Match (nginx/carebot.conf.in,
 * $cb_event_id_resume). 204 for a subscriber /_auth would let in: with the
 * message id Nchan is to resume from in X-Carebot-Resume-From, or without
 * one when the channel keeps nothing to resume from (resume_kept), and then
 * Nchan takes the subscription as a new one instead of aborting. Within the
 * 10 minutes Nchan keeps events the subscriber loses nothing by it: none was
 * published on the channel in that time, or none since nginx started (unless
 * the publisher could not say; then the history has what it missed). A browser's
 * EventSource, whose own reconnects send Last-Event-ID, cannot act on the
 * 409 /_auth gives: it stops for good on any status but 200. The token and
 * the channel are checked first, as /_auth checks them, with its refusals.
 */
static int
resume_from(struct cb_request *req)
{
	char **envp = req->fcgx->envp;
	const char *uri = FCGX_GetParam("CAREBOT_AUTH_URI", envp);
	const char *id = FCGX_GetParam("HTTP_LAST_EVENT_ID", envp);
	/* cppcheck-suppress variableScope ; id may point into arg after the if that fills it */
	char arg[128], channel[64];
	int rc;

	req->refusal_in_headers = 1;
	if ((rc = check_subscriber(req, channel, sizeof channel)) != CB_OK)
		return rc;
	if ((id == NULL || *id == '\0') && uri != NULL)
		id = uri_query(uri, "last_event_id", arg, sizeof arg);
	/* nginx passes ids of Nchan's form only ($cb_bad_msgid); this keeps the header clean. */
	if (id != NULL && *id != '\0' && strspn(id, "0123456789:") == strlen(id) &&
	    resume_kept(channel, RESUME_TOKEN_CHECK_S))
		cb_reply_header(req, "X-Carebot-Resume-From: %s", id);
	cb_reply_empty(req, 204);
	return CB_OK;
}

/*
 * GET /_auth_resume: the token and the channel only, for an nginx config from
 * before 2026-11-25, whose Nchan asked it after /_resume_from had vetted the
 * message id. Today's config has /_resume_from check both.
 */
static int
authorize_vetted(struct cb_request *req)
{
	int rc = check_subscriber(req, NULL, 0);

	if (rc == CB_OK)
		cb_reply_empty(req, 204);
	return rc;
}

/*
 * GET /_bad_msgid: a subscription whose message id to resume from nginx
 * found malformed (nginx/carebot.conf.in, $cb_bad_msgid). Nchan would
 * answer a plain-text 400 before the token is looked at; here the token
 * comes first, as for every subscription, then a JSON 400.
 */
static int
bad_message_id(struct cb_request *req)
{
	int rc = check_subscriber(req, NULL, 0);

	if (rc == CB_OK)
		return cb_fail(req, 400, "bad_request", NULL,
		    "the message id to resume from (Last-Event-ID or last_event_id) is malformed; "
		    "send one the server sent, or none");
	return rc;
}

/*
 * GET /_bad_handshake: a WebSocket handshake Nchan would refuse after the
 * token check with a plain-text 400 (no Sec-WebSocket-Key, a version other
 * than 13; nginx/carebot.conf.in, $cb_bad_handshake). The same order here,
 * and the version this server speaks, as RFC 6455 asks.
 */
static int
bad_handshake(struct cb_request *req)
{
	int rc = check_subscriber(req, NULL, 0);

	if (rc != CB_OK)
		return rc;
	cb_reply_header(req, "Sec-WebSocket-Version: 13");
	return cb_fail(req, 400, "bad_request", NULL,
	    "malformed WebSocket handshake: it needs Sec-WebSocket-Version: 13 and a "
	    "Sec-WebSocket-Key");
}

const struct cb_route cb_api_internal_routes[] = {
    {"GET", "/_auth", CB_ROLE_ANON, 0, authorize},
    {"GET", "/_resume_from", CB_ROLE_ANON, 0, resume_from},
    {"GET", "/_auth_resume", CB_ROLE_ANON, 0, authorize_vetted},
    {"GET", "/_bad_msgid", CB_ROLE_ANON, 0, bad_message_id},
    {"GET", "/_bad_handshake", CB_ROLE_ANON, 0, bad_handshake},
    {NULL, NULL, 0, 0, NULL},
};
