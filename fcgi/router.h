/*
 * router.h - the declarative route table and the one gate before every
 * handler: path → 404, method → 405, token → 401, role → 403, body → 415/400.
 */
#ifndef CB_ROUTER_H
#define CB_ROUTER_H

#include "request.h"

#define CB_ROUTE_BODY 0x1u /* the handler reads a JSON object body (req->json) */

typedef int (*cb_handler_cb)(struct cb_request *req);

struct cb_route {
	const char *method;
	const char *pattern; /* "/api/chats/{id}/messages": {id} is a positive integer */
	unsigned roles; /* CB_ROLE_ bits allowed; CB_ROLE_ANON: no token needed */
	unsigned flags;
	cb_handler_cb handler;
};

/* Every resource's table, each ending with an entry whose method is NULL. */
extern const struct cb_route cb_api_auth_routes[];
extern const struct cb_route cb_api_health_routes[];
extern const struct cb_route cb_api_departments_routes[];
extern const struct cb_route cb_api_users_routes[];
extern const struct cb_route cb_api_chats_routes[];
extern const struct cb_route cb_api_internal_routes[];

/*
 * Matches path against pattern, storing the {id} values. Non-zero on a match.
 * Pure, for the unit tests.
 */
int cb_router_match(const char *pattern, const char *path, long long *ids, unsigned *nids);
/*
 * The CORS headers of a page listed in cors_origins (README 2, "Pages on
 * other sites"), for every answer, errors too: call before anything replies.
 */
void cb_router_cors(struct cb_request *req);
/* Routes req through the gate to its handler (a CORS preflight is answered
 * here); always replies. */
void cb_router_dispatch(struct cb_request *req);

#endif
