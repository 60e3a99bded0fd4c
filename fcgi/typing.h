/*
 * typing.h - which typing events are worth publishing (POST
 * /api/chats/{id}/typing; README 11).
 *
 * A client may send {"typing": true} with every keystroke. Each event goes
 * to every subscriber of the chat and takes a place in the chat channel's
 * 200-event replay buffer, so repeats are limited: for each user and chat
 * the last value published is remembered, by every worker of the instance
 * (a table on the second page of shared_file, cache.c), and the same value
 * again is published at most once per typing_interval_ms. A change of value
 * is always published: remembered by one worker only, a start that followed
 * another worker's stop looked like a repeat of this worker's earlier start
 * and was dropped, leaving the others to see the user not typing (or, the
 * other way round, typing for ever).
 *
 * Each slot is one 64-bit word: a 32-bit tag of (user, chat), the time of the
 * last published value (milliseconds of the monotonic clock, 31 bits) and
 * the value; it is replaced with a compare-and-swap, so two workers never
 * both decide on one stale word. A slot taken by another (user, chat) just
 * lets the next event through. Without a shared file the table is this
 * process's own, and the limit is per worker, as it was.
 */
#ifndef CB_TYPING_H
#define CB_TYPING_H

#include <stdint.h>

#define CB_TYPING_SLOTS 1024

/*
 * The rule: whether value on for (user, chat) tagged tag is published at
 * now_ms, given the slot's word old; *next is the word to store if so.
 */
int cb_typing_decide(
    uint64_t old, uint32_t tag, int on, long long now_ms, int interval_ms, uint64_t *next);
/* Non-zero if the event is to be published; then it is remembered as the last. */
int cb_typing_due(long long user_id, long long chat_id, int on, int interval_ms);

#endif
