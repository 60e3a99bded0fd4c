/* auth.c - token and password primitives; no database, no FastCGI. */
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "log.h"
#include "util.h"

static const struct {
	unsigned bit;
	const char *name;
} roles[] = {
    {CB_ROLE_ADMIN, "admin"},
    {CB_ROLE_AGENT, "agent"},
    {CB_ROLE_CUSTOMER, "customer"},
};

const char *
cb_role_name(unsigned role)
{
	for (size_t i = 0; i < CB_ARRAY_LEN(roles); i++)
		if (roles[i].bit == role)
			return roles[i].name;
	return "none";
}

unsigned
cb_role_parse(const char *name)
{
	for (size_t i = 0; i < CB_ARRAY_LEN(roles); i++)
		if (name != NULL && strcmp(roles[i].name, name) == 0)
			return roles[i].bit;
	return 0;
}

int
cb_auth_init(void)
{
	return sodium_init() < 0 ? CB_ERR : CB_OK;
}

void
cb_auth_token_new(char token[CB_TOKEN_HEX + 1], unsigned char hash[CB_TOKEN_HASH])
{
	unsigned char raw[CB_TOKEN_HEX / 2];

	randombytes_buf(raw, sizeof raw);
	sodium_bin2hex(token, CB_TOKEN_HEX + 1, raw, sizeof raw);
	crypto_hash_sha256(hash, (const unsigned char *)token, CB_TOKEN_HEX);
}

int
cb_auth_token_hash(const char *token, unsigned char hash[CB_TOKEN_HASH])
{
	if (token == NULL || strlen(token) != CB_TOKEN_HEX ||
	    strspn(token, "0123456789abcdef") != CB_TOKEN_HEX)
		return CB_ERR;
	crypto_hash_sha256(hash, (const unsigned char *)token, CB_TOKEN_HEX);
	return CB_OK;
}

const char *
cb_auth_bearer(const char *header)
{
	if (header == NULL || strncasecmp(header, "Bearer ", 7) != 0)
		return NULL;
	header += 7;
	while (*header == ' ')
		header++;
	return *header ? header : NULL;
}

/* Does the list hold origin? Entries may end in a slash, as URLs written by hand do. */
static int
origin_listed(const char *origin, const char *list)
{
	size_t olen = strlen(origin);

	while (list != NULL && *list != '\0') {
		list += strspn(list, " ,\t");
		size_t len = strcspn(list, " ,\t");
		size_t cmp = len > 0 && list[len - 1] == '/' ? len - 1 : len;
		if ((cmp == 1 && list[0] == '*') ||
		    (cmp > 0 && cmp == olen && strncasecmp(list, origin, olen) == 0))
			return 1;
		list += len;
	}
	return 0;
}

/*
 * A browser attaches the cookie to every page's request, a foreign page's
 * too, which could then read the user's events (cross-site WebSocket
 * hijacking); a token in ?token= or a bearer header is one the page knew.
 */
int
cb_auth_cookie_origin_ok(const char *origin, const char *host, const char *allowed)
{
	if (origin == NULL || *origin == '\0')
		return 1;
	const char *sep = strstr(origin, "://");
	if (sep != NULL && host != NULL && *host != '\0' && strcasecmp(sep + 3, host) == 0)
		return 1;
	return origin_listed(origin, allowed);
}

/* Bearer tokens are not sent by the browser on its own, so this opens no
 * user's data to a page: it only lets a listed page read what it asked. */
int
cb_auth_cors_origin_ok(const char *origin, const char *allowed)
{
	return origin != NULL && *origin != '\0' && strlen(origin) <= CB_CORS_ORIGIN_MAX &&
	    origin_listed(origin, allowed);
}

/*
 * Interactive limits: about 64 MiB and a few tens of milliseconds per hash,
 * libsodium's recommendation for logins. The memory is returned to the
 * system after each call (glibc serves it with mmap).
 */
int
cb_auth_password_hash(const char *password, char out[CB_PWHASH_LEN])
{
	if (crypto_pwhash_str_alg(out, password, strlen(password),
	        crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE,
	        crypto_pwhash_ALG_ARGON2ID13) != 0) {
		cb_error("password hashing failed (out of memory?)");
		return CB_ERR;
	}
	return CB_OK;
}

int
cb_auth_password_ok(const char *password, const char *stored)
{
	if (stored == NULL) {
		static char dummy[CB_PWHASH_LEN];

		/* Unknown user: spend what a real check costs, so timing tells nothing. */
		if (dummy[0] == '\0' &&
		    cb_auth_password_hash("carebot-timing-equaliser", dummy) != CB_OK)
			return 0;
		volatile int burnt = crypto_pwhash_str_verify(dummy, password, strlen(password));
		(void)burnt;
		return 0;
	}
	return crypto_pwhash_str_verify(stored, password, strlen(password)) == 0;
}
