/* test-logic-directory.c - the pure rules of departments and users (fcgi/logic-directory.c). */
#include "auth.h"
#include "logic-directory.h"
#include "tests.h"

START_TEST(only_three_fields_of_a_user_are_self_service)
{
	const char *others[] = {"username", "role", "department_id", "max_chats", "is_active",
	    "status", "presence", "id", "active_chats", "last_seen_at", "created_at", "updated_at"};
	const char *self[] = {"full_name", "email", "password", "unknown", "", "Role", "statuses"};

	for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
		ck_assert_msg(cb_logic_user_field_not_self_service(others[i]), "%s", others[i]);
	for (size_t i = 0; i < sizeof self / sizeof self[0]; i++)
		ck_assert_msg(!cb_logic_user_field_not_self_service(self[i]), "%s", self[i]);
}
END_TEST

static int
read_access(unsigned caller_role, long long caller, long long target, unsigned target_role,
    int active, int visible)
{
	struct cb_user_access a = {caller_role, caller, target, target_role, active, visible};

	return cb_logic_user_read_access(&a);
}

START_TEST(read_access_follows_the_role_table)
{
	/* admin: anyone, deactivated too */
	ck_assert_int_eq(read_access(CB_ROLE_ADMIN, 1, 9, CB_ROLE_CUSTOMER, 0, 0), 0);
	ck_assert_int_eq(read_access(CB_ROLE_ADMIN, 1, 9, CB_ROLE_AGENT, 1, 0), 0);
	/* agent: staff, self, customers of visible chats; else 403 */
	ck_assert_int_eq(read_access(CB_ROLE_AGENT, 2, 3, CB_ROLE_AGENT, 1, 0), 0);
	ck_assert_int_eq(read_access(CB_ROLE_AGENT, 2, 1, CB_ROLE_ADMIN, 1, 0), 0);
	ck_assert_int_eq(read_access(CB_ROLE_AGENT, 2, 2, CB_ROLE_AGENT, 1, 0), 0);
	ck_assert_int_eq(read_access(CB_ROLE_AGENT, 2, 9, CB_ROLE_CUSTOMER, 1, 1), 0);
	ck_assert_int_eq(read_access(CB_ROLE_AGENT, 2, 9, CB_ROLE_CUSTOMER, 1, 0), 403);
	/* deactivated users do not exist for non-admins */
	ck_assert_int_eq(read_access(CB_ROLE_AGENT, 2, 3, CB_ROLE_AGENT, 0, 0), 404);
	ck_assert_int_eq(read_access(CB_ROLE_AGENT, 2, 9, CB_ROLE_CUSTOMER, 0, 1), 404);
	/* customer: self only, else 404 */
	ck_assert_int_eq(read_access(CB_ROLE_CUSTOMER, 9, 9, CB_ROLE_CUSTOMER, 1, 0), 0);
	ck_assert_int_eq(read_access(CB_ROLE_CUSTOMER, 9, 2, CB_ROLE_AGENT, 1, 0), 404);
	ck_assert_int_eq(read_access(CB_ROLE_CUSTOMER, 9, 8, CB_ROLE_CUSTOMER, 1, 1), 404);
}
END_TEST

START_TEST(write_access_is_admin_or_self)
{
	ck_assert_int_eq(cb_logic_user_write_access(CB_ROLE_ADMIN, 1, 7), 0);
	ck_assert_int_eq(cb_logic_user_write_access(CB_ROLE_AGENT, 2, 2), 0);
	ck_assert_int_eq(cb_logic_user_write_access(CB_ROLE_AGENT, 2, 7), 403);
	ck_assert_int_eq(cb_logic_user_write_access(CB_ROLE_CUSTOMER, 9, 9), 0);
	ck_assert_int_eq(cb_logic_user_write_access(CB_ROLE_CUSTOMER, 9, 7), 404);
}
END_TEST

START_TEST(final_department_and_shape)
{
	ck_assert_int_eq(cb_logic_user_department(CB_ROLE_AGENT, 0, 0, 4), 4);
	ck_assert_int_eq(cb_logic_user_department(CB_ROLE_AGENT, 1, 6, 4), 6);
	ck_assert_int_eq(cb_logic_user_department(CB_ROLE_AGENT, 1, 0, 4), 0);
	/* leaving the agent role leaves the department */
	ck_assert_int_eq(cb_logic_user_department(CB_ROLE_ADMIN, 0, 0, 4), 0);
	ck_assert_int_eq(cb_logic_user_department(CB_ROLE_CUSTOMER, 1, 3, 0), 3);

	struct cb_user_state agent_dept = {CB_ROLE_AGENT, 3, 1}, agent_none = {CB_ROLE_AGENT, 0, 1};
	struct cb_user_state admin_none = {CB_ROLE_ADMIN, 0, 1},
	                     customer_dept = {CB_ROLE_CUSTOMER, 3, 1};
	ck_assert_ptr_null(cb_logic_user_shape_field(&agent_dept));
	ck_assert_ptr_null(cb_logic_user_shape_field(&admin_none));
	ck_assert_str_eq(cb_logic_user_shape_field(&agent_none), "department_id");
	ck_assert_str_eq(cb_logic_user_shape_field(&customer_dept), "department_id");
}
END_TEST

static struct cb_user_plan
plan(unsigned r0, long long d0, int a0, unsigned r1, long long d1, int a1, int raised)
{
	struct cb_user_state before = {r0, d0, a0}, after = {r1, d1, a1};
	struct cb_user_plan p;

	cb_logic_user_plan(&before, &after, raised, &p);
	return p;
}

START_TEST(plan_moves_requeue_and_drain_both)
{
	struct cb_user_plan p = plan(CB_ROLE_AGENT, 1, 1, CB_ROLE_AGENT, 2, 1, 0);

	ck_assert(p.requeue && p.check_department && p.status_event);
	ck_assert_int_eq(p.drain[0], 1);
	ck_assert_int_eq(p.drain[1], 2);
}
END_TEST

START_TEST(plan_unchanged_department_does_nothing_but_the_event)
{
	struct cb_user_plan p = plan(CB_ROLE_AGENT, 1, 1, CB_ROLE_AGENT, 1, 1, 0);

	ck_assert(!p.requeue && !p.check_department && p.status_event);
	ck_assert_int_eq(p.drain[0], 0);
	ck_assert_int_eq(p.drain[1], 0);
	/* raising max_chats drains the department */
	p = plan(CB_ROLE_AGENT, 1, 1, CB_ROLE_AGENT, 1, 1, 1);
	ck_assert(!p.requeue && !p.check_department);
	ck_assert_int_eq(p.drain[0], 1);
}
END_TEST

START_TEST(plan_deactivation_and_role_change_requeue)
{
	struct cb_user_plan p = plan(CB_ROLE_AGENT, 1, 1, CB_ROLE_AGENT, 1, 0, 0);

	ck_assert(p.requeue && !p.check_department);
	ck_assert_int_eq(p.drain[0], 1);
	ck_assert_int_eq(p.drain[1], 0);
	p = plan(CB_ROLE_AGENT, 1, 1, CB_ROLE_ADMIN, 0, 1, 0);
	ck_assert(p.requeue && !p.check_department && p.status_event);
	ck_assert_int_eq(p.drain[0], 1);
}
END_TEST

START_TEST(plan_joining_checks_the_department)
{
	/* reactivation of an agent */
	struct cb_user_plan p = plan(CB_ROLE_AGENT, 1, 0, CB_ROLE_AGENT, 1, 1, 0);

	ck_assert(!p.requeue && p.check_department);
	ck_assert_int_eq(p.drain[1], 1);
	/* a customer made an agent */
	p = plan(CB_ROLE_CUSTOMER, 0, 1, CB_ROLE_AGENT, 3, 1, 0);
	ck_assert(!p.requeue && p.check_department && p.status_event);
	/* an inactive agent moved stays out of every queue, but its new
	 * department must be a live, active one all the same */
	p = plan(CB_ROLE_AGENT, 1, 0, CB_ROLE_AGENT, 2, 0, 0);
	ck_assert(!p.requeue && p.check_department);
	ck_assert_int_eq(p.drain[0], 0);
	ck_assert_int_eq(p.drain[1], 0);
	/* an inactive customer made an (inactive) agent: the same */
	p = plan(CB_ROLE_CUSTOMER, 0, 0, CB_ROLE_AGENT, 2, 0, 0);
	ck_assert(!p.requeue && p.check_department);
	/* an inactive agent renamed, its department kept: nothing to check */
	p = plan(CB_ROLE_AGENT, 1, 0, CB_ROLE_AGENT, 1, 0, 0);
	ck_assert(!p.requeue && !p.check_department);
	/* customers and admins never touch the engine */
	p = plan(CB_ROLE_CUSTOMER, 0, 1, CB_ROLE_ADMIN, 0, 1, 1);
	ck_assert(!p.requeue && !p.check_department && !p.status_event);
}
END_TEST

START_TEST(single_default_rule)
{
	ck_assert_ptr_null(cb_logic_department_default_rule(0, 0, 0));
	ck_assert_ptr_null(cb_logic_department_default_rule(0, 0, 1));
	ck_assert_ptr_null(cb_logic_department_default_rule(0, 1, 1));
	ck_assert_ptr_null(cb_logic_department_default_rule(1, 1, 1));
	ck_assert_ptr_nonnull(cb_logic_department_default_rule(1, 0, 1)); /* give it up */
	ck_assert_ptr_nonnull(cb_logic_department_default_rule(1, 1, 0)); /* deactivate it */
	ck_assert_ptr_nonnull(cb_logic_department_default_rule(0, 1, 0)); /* take it inactive */
}
END_TEST

Suite *
cb_suite_logic_directory(void)
{
	Suite *s = suite_create("logic-directory");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, only_three_fields_of_a_user_are_self_service);
	tcase_add_test(tc, read_access_follows_the_role_table);
	tcase_add_test(tc, write_access_is_admin_or_self);
	tcase_add_test(tc, final_department_and_shape);
	tcase_add_test(tc, plan_moves_requeue_and_drain_both);
	tcase_add_test(tc, plan_unchanged_department_does_nothing_but_the_event);
	tcase_add_test(tc, plan_deactivation_and_role_change_requeue);
	tcase_add_test(tc, plan_joining_checks_the_department);
	tcase_add_test(tc, single_default_rule);
	suite_add_tcase(s, tc);
	return s;
}
