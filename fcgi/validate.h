/* validate.h - field rules shared by every resource; pure, unit-tested. */
#ifndef CB_VALIDATE_H
#define CB_VALIDATE_H

#include <stddef.h>

#define CB_USERNAME_MIN 3
#define CB_USERNAME_MAX 50
#define CB_PASSWORD_MIN 8
#define CB_PASSWORD_MAX 1024
#define CB_NAME_MAX 100
#define CB_EMAIL_MAX 254

/* 3-50 of [A-Za-z0-9_.-]. */
int cb_valid_username(const char *s);
/* A plausible address: local@domain.tld, no spaces or control characters. */
int cb_valid_email(const char *s);
/* 1-128 printable ASCII characters (contract section 2). */
int cb_valid_idempotency_key(const char *s);

#endif
