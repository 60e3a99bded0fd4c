/*
 * auth.h - roles, bearer tokens and password hashes. Tokens are 256 random
 * bits shown once as 64 hex characters and stored only as their SHA-256;
 * passwords only as Argon2id strings (libsodium crypto_pwhash).
 */
#ifndef CB_AUTH_H
#define CB_AUTH_H

#include <sodium.h>

#define CB_ROLE_ADMIN 0x1u
#define CB_ROLE_AGENT 0x2u
#define CB_ROLE_CUSTOMER 0x4u
#define CB_ROLE_ANON 0x8u /* a route open to callers without a token */
#define CB_ROLE_STAFF (CB_ROLE_ADMIN | CB_ROLE_AGENT)
#define CB_ROLE_USER (CB_ROLE_ADMIN | CB_ROLE_AGENT | CB_ROLE_CUSTOMER)

#define CB_TOKEN_HEX 64
#define CB_TOKEN_HASH 32
#define CB_PWHASH_LEN crypto_pwhash_STRBYTES

struct cb_user {
	long long id;
	unsigned role; /* one CB_ROLE_ bit */
	long long department_id;
	long long session_id;
	char full_name[401];
};

const char *cb_role_name(unsigned role);
/* "admin" | "agent" | "customer" to its bit; 0 if unknown. */
unsigned cb_role_parse(const char *name);

/* Calls sodium_init once; CB_OK or CB_ERR. */
int cb_auth_init(void);
/* A fresh token (hex, NUL-terminated) and the hash that is stored for it. */
void cb_auth_token_new(char token[CB_TOKEN_HEX + 1], unsigned char hash[CB_TOKEN_HASH]);
/* CB_OK and the stored hash for a well-formed token; CB_ERR if malformed. */
int cb_auth_token_hash(const char *token, unsigned char hash[CB_TOKEN_HASH]);
/* The token of an "Authorization: Bearer X" header value, or NULL. */
const char *cb_auth_bearer(const char *header);
/*
 * May a subscription that rides on the carebot_token cookie come from the
 * page at origin (the Origin header; NULL if none)? Yes without an Origin
 * (no browser, or a same-origin GET), for the instance's own host (the Host
 * header) and for an origin in allowed (cookie_origins: origins separated by
 * spaces or commas, "*" for any). Case-insensitive; non-zero when allowed.
 */
int cb_auth_cookie_origin_ok(const char *origin, const char *host, const char *allowed);
/*
 * May a page at origin (the Origin header; NULL if none) read the API's
 * answers in a browser (cors_origins: the same list syntax)? No without an
 * Origin or for one longer than CB_CORS_ORIGIN_MAX, which no listed page has.
 */
#define CB_CORS_ORIGIN_MAX 256
int cb_auth_cors_origin_ok(const char *origin, const char *allowed);
/* Argon2id hash string of password (NUL-terminated); CB_OK or CB_ERR. */
int cb_auth_password_hash(const char *password, char out[CB_PWHASH_LEN]);
/* Non-zero when password matches stored; with stored NULL, burns the same time and fails. */
int cb_auth_password_ok(const char *password, const char *stored);

#endif
