/*
 * publish.h - events to Nchan. The workers publish over one kept-alive
 * HTTP/1.1 connection to nginx's private publisher server (a unix socket no
 * public listener reaches). A failed publish never fails the API request:
 * it is logged and counted, and the history endpoint stays the truth. After
 * a publish that got no answer, publishing pauses for two seconds, so a
 * publisher that hangs costs one request a timeout, not every request; a
 * refused one (Nchan's memory full) pauses nothing.
 */
#ifndef CB_PUBLISH_H
#define CB_PUBLISH_H

#include "config.h"

int cb_publish_init(const struct cb_config *cfg);
void cb_publish_cleanup(void);
/*
 * Publishes the JSON text to every channel in channels (comma-separated
 * Nchan ids such as "chat/7,agent/3"), in one request. CB_OK once Nchan
 * has accepted it, CB_ERR otherwise.
 */
int cb_publish(const char *channels, const char *json);
/* CB_OK when Nchan takes an event (one to a channel no one subscribes to). */
int cb_publish_ping(void);
/* Publishes that failed since the process started (the warnings count them). */
unsigned long cb_publish_failures(void);

#endif
