/* logic-assign.c - least-loaded choice with its two tie-breaks (contract 6.2.3). */
#include "logic-assign.h"

/* Non-zero when a should get a chat before b. */
static int
before(const struct cb_candidate *a, const struct cb_candidate *b)
{
	if (a->active_chats != b->active_chats)
		return a->active_chats < b->active_chats;
	if (a->last_assigned != b->last_assigned)
		return a->last_assigned < b->last_assigned; /* 0, never, sorts first */
	return a->id < b->id;
}

int
cb_logic_assign_pick(const struct cb_candidate *agents, size_t n)
{
	int best = -1;

	for (size_t i = 0; i < n; i++) {
		if (agents[i].active_chats >= agents[i].max_chats)
			continue;
		if (best < 0 || before(&agents[i], &agents[best]))
			best = (int)i;
	}
	return best;
}

size_t
cb_logic_assign_plan(struct cb_candidate *agents, size_t n, size_t nchats, int *out)
{
	long long clock = 0;
	size_t placed = 0;

	for (size_t i = 0; i < n; i++)
		if (agents[i].last_assigned > clock)
			clock = agents[i].last_assigned;
	while (placed < nchats) {
		int pick = cb_logic_assign_pick(agents, n);
		if (pick < 0)
			break;
		agents[pick].active_chats++;
		agents[pick].last_assigned = ++clock;
		out[placed++] = pick;
	}
	return placed;
}
