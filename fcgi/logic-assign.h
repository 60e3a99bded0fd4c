/*
 * logic-assign.h - rule 6.2.3 as a pure function: which eligible agent gets
 * the next chat. No I/O: the data layer gathers the candidates under its
 * department lock and applies the result.
 */
#ifndef CB_LOGIC_ASSIGN_H
#define CB_LOGIC_ASSIGN_H

#include <stddef.h>

struct cb_candidate {
	long long id;
	int active_chats;
	int max_chats;
	/* When the agent was last given a chat (any increasing clock); 0: never. */
	long long last_assigned;
};

/*
 * The index of the agent the next chat goes to, or -1 when nobody has spare
 * capacity: fewest active chats, then the oldest last assignment (never
 * assigned first), then the lowest id.
 */
int cb_logic_assign_pick(const struct cb_candidate *agents, size_t n);

/*
 * Plans up to nchats assignments in queue order: out[i] is the index of the
 * agent for the i-th waiting chat. Each pick counts against the agent's
 * capacity and makes it the most recently assigned. Returns how many chats
 * were placed (the queue head that can be served now).
 */
size_t cb_logic_assign_plan(struct cb_candidate *agents, size_t n, size_t nchats, int *out);

#endif
