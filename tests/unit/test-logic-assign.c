/* test-logic-assign.c - rule 6.2.3: least loaded, then oldest last assignment, then lowest id (fcgi/logic-assign.c). */
#include "logic-assign.h"
#include "tests.h"
#include "util.h"

START_TEST(fewest_active_chats_wins)
{
	struct cb_candidate a[] = {{1, 3, 5, 10}, {2, 1, 5, 50}, {3, 2, 5, 0}};

	ck_assert_int_eq(cb_logic_assign_pick(a, 3), 1);
}
END_TEST

START_TEST(tie_goes_to_oldest_assignment_never_first)
{
	struct cb_candidate a[] = {{1, 1, 5, 300}, {2, 1, 5, 100}, {3, 1, 5, 200}};
	struct cb_candidate b[] = {{1, 1, 5, 300}, {2, 1, 5, 100}, {3, 1, 5, 0}};

	ck_assert_int_eq(cb_logic_assign_pick(a, 3), 1);
	ck_assert_int_eq(cb_logic_assign_pick(b, 3), 2); /* never assigned beats everyone */
}
END_TEST

START_TEST(then_lowest_id)
{
	struct cb_candidate a[] = {{9, 0, 5, 0}, {4, 0, 5, 0}, {7, 0, 5, 0}};

	ck_assert_int_eq(cb_logic_assign_pick(a, 3), 1);
}
END_TEST

START_TEST(full_agents_are_skipped)
{
	struct cb_candidate a[] = {{1, 2, 2, 0}, {2, 4, 5, 0}};
	struct cb_candidate full[] = {{1, 2, 2, 0}, {2, 5, 5, 0}};

	ck_assert_int_eq(cb_logic_assign_pick(a, 2), 1);
	ck_assert_int_eq(cb_logic_assign_pick(full, 2), -1);
	ck_assert_int_eq(cb_logic_assign_pick(full, 0), -1);
}
END_TEST

START_TEST(plan_round_robins_equal_agents_and_stops_at_capacity)
{
	struct cb_candidate a[] = {{1, 0, 2, 0}, {2, 0, 2, 0}, {3, 1, 2, 5}};
	int plan[10];

	size_t placed = cb_logic_assign_plan(a, 3, 10, plan);
	ck_assert_uint_eq(placed, 5); /* 2 + 2 + 1 spare seats */
	/* ids 1 and 2 tie on load, never assigned: 1 (lowest id), then 2; then all
	 * three have one chat and 3 was assigned longest ago. */
	ck_assert_int_eq(plan[0], 0);
	ck_assert_int_eq(plan[1], 1);
	ck_assert_int_eq(plan[2], 2);
	ck_assert_int_eq(plan[3], 0);
	ck_assert_int_eq(plan[4], 1);
	ck_assert_int_eq(a[0].active_chats, 2);
	ck_assert_int_eq(a[2].active_chats, 2);
}
END_TEST

START_TEST(plan_with_fewer_chats_than_seats)
{
	struct cb_candidate a[] = {{1, 0, 5, 0}, {2, 0, 5, 0}};
	int plan[1];

	ck_assert_uint_eq(cb_logic_assign_plan(a, 2, 1, plan), 1);
	ck_assert_int_eq(plan[0], 0);
	ck_assert_int_eq(a[1].active_chats, 0);
}
END_TEST

Suite *
cb_suite_logic_assign(void)
{
	Suite *s = suite_create("logic-assign");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, fewest_active_chats_wins);
	tcase_add_test(tc, tie_goes_to_oldest_assignment_never_first);
	tcase_add_test(tc, then_lowest_id);
	tcase_add_test(tc, full_agents_are_skipped);
	tcase_add_test(tc, plan_round_robins_equal_agents_and_stops_at_capacity);
	tcase_add_test(tc, plan_with_fewer_chats_than_seats);
	suite_add_tcase(s, tc);
	return s;
}
