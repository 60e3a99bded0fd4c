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

/*
 * How long Nchan keeps an event (nchan_message_timeout in the nginx templates;
 * contract 7: a subscriber may resume within 10 minutes), and how long the
 * newest kept one must still live for a resume to be let through.
 */
#define CB_PUBLISH_KEEP_S 600
#define CB_PUBLISH_RESUME_MARGIN_S 5

/*
 * What Nchan keeps on one channel ("chat/7"): *messages (0 when the
 * channel does not exist) and *newest_s, the time in the newest one's id
 * (seconds; 0 when none). CB_ERR when the publisher does not answer.
 */
int cb_publish_channel_info(const char *channel, long *messages, long long *newest_s);

/*
 * Whether a subscription asks Nchan to resume from a message id, by Nchan
 * 1.3's own order (nchan_subscriber_get_msg_id): If-Modified-Since first (a
 * time at or before 1970 means none; a date this cannot read counts as one,
 * the cautious side), else If-None-Match "<time>:<tag>", else Last-Event-ID,
 * else ?last_event_id=. NULL or "" for what the request does not carry.
 */
int cb_publish_resume_asked(const char *if_modified_since, const char *if_none_match,
    const char *last_event_id, const char *arg_last_event_id);

/*
 * Whether Nchan can take a resume on a channel that keeps messages events,
 * the newest published at newest_s, at now_s: Nchan 1.3.6 aborts its worker
 * (every subscriber of the instance dropped; slact/nchan #534, #676) when a
 * subscriber resumes on a channel that keeps nothing, so there must be one
 * event, and the newest must outlive the moment it takes to subscribe.
 */
int cb_publish_resumable(long messages, long long newest_s, long long now_s);

#endif
