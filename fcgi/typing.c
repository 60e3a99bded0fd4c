/* typing.c - the typing events' limit, shared by the workers (typing.h). */
#include "typing.h"
#include "cache.h"
#include "util.h"

#define AT_MASK 0x7fffffffULL

int
cb_typing_decide(
    uint64_t old, uint32_t tag, int on, long long now_ms, int interval_ms, uint64_t *next)
{
	uint64_t now = (uint64_t)now_ms & AT_MASK;
	uint64_t at = (old >> 1) & AT_MASK;

	/* The age modulo 2^31 ms (24 days): a wrapped clock only lets one event through. */
	if (old != 0 && (uint32_t)(old >> 32) == tag && (int)(old & 1) == (on != 0) &&
	    ((now - at) & AT_MASK) < (uint64_t)interval_ms)
		return 0;
	*next = (uint64_t)tag << 32 | now << 1 | (uint64_t)(on != 0);
	return 1;
}

int
cb_typing_due(long long user_id, long long chat_id, int on, int interval_ms)
{
	static uint64_t own[CB_TYPING_SLOTS];
	uint64_t *slots = cb_cache_typing_slots();
	uint64_t h =
	    (uint64_t)user_id * 0x9E3779B97F4A7C15ULL ^ (uint64_t)chat_id * 0xC2B2AE3D27D4EB4FULL;
	uint64_t *slot = &(slots != NULL ? slots : own)[(h >> 32) % CB_TYPING_SLOTS];
	uint64_t old = __atomic_load_n(slot, __ATOMIC_SEQ_CST), next;
	long long now = cb_monotonic_ms();

	do {
		if (!cb_typing_decide(old, (uint32_t)h, on, now, interval_ms, &next))
			return 0;
	} while (
	    !__atomic_compare_exchange_n(slot, &old, next, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
	return 1;
}
