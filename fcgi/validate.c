/* validate.c - the shape rules of usernames, e-mail addresses and idempotency keys. */
#include <string.h>

#include "validate.h"

int
cb_valid_username(const char *s)
{
	size_t len = strlen(s);

	return len >= CB_USERNAME_MIN && len <= CB_USERNAME_MAX &&
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == len;
}

int
cb_valid_email(const char *s)
{
	const char *at = strchr(s, '@');
	size_t len = strlen(s);

	if (len < 3 || len > CB_EMAIL_MAX || at == NULL || at == s || strchr(at + 1, '@') != NULL)
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p == 0x7f)
			return 0;
	const char *dot = strrchr(at + 1, '.');
	return dot != NULL && dot > at + 1 && dot[1] != '\0';
}

int
cb_valid_idempotency_key(const char *s)
{
	size_t len = strlen(s);

	if (len < 1 || len > 128)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}
