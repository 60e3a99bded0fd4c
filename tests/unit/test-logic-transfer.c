/* test-logic-transfer.c - contract 6.3: the checks of a transfer and its system message (fcgi/logic-transfer.c). */
#include <string.h>

#include "logic-transfer.h"
#include "tests.h"

/* An open chat of department 1 held by agent 10; an active department 2; no agent named. */
static struct cb_transfer_chat chat;
static struct cb_transfer_dept dept;
static struct cb_transfer_agent agent;

static void
setup(void)
{
	chat = (struct cb_transfer_chat){.closed = 0, .department_id = 1, .agent_id = 10};
	dept = (struct cb_transfer_dept){.id = 2, .exists = 1, .is_active = 1};
	agent = (struct cb_transfer_agent){0};
}

/* A free agent 20 of department 2. */
static void
name_agent(void)
{
	agent = (struct cb_transfer_agent){.id = 20,
	    .exists = 1,
	    .is_agent = 1,
	    .is_active = 1,
	    .department_id = 2,
	    .available = 1,
	    .active_chats = 1,
	    .max_chats = 2};
}

static enum cb_transfer_verdict
check(void)
{
	return cb_logic_transfer_check(&chat, &dept, &agent);
}

START_TEST(to_another_active_department_is_ok)
{
	ck_assert_int_eq(check(), CB_TRANSFER_OK);
	chat.agent_id = 0; /* a waiting chat may be transferred too */
	ck_assert_int_eq(check(), CB_TRANSFER_OK);
}
END_TEST

START_TEST(closed_chat_comes_first)
{
	chat.closed = 1;
	dept.exists = 0;
	ck_assert_int_eq(check(), CB_TRANSFER_CHAT_CLOSED);
}
END_TEST

START_TEST(unknown_or_inactive_department)
{
	dept.exists = 0;
	ck_assert_int_eq(check(), CB_TRANSFER_BAD_DEPARTMENT);
	dept.exists = 1;
	dept.is_active = 0;
	ck_assert_int_eq(check(), CB_TRANSFER_BAD_DEPARTMENT);
	name_agent(); /* a named agent does not excuse the department */
	ck_assert_int_eq(check(), CB_TRANSFER_BAD_DEPARTMENT);
}
END_TEST

START_TEST(same_department_needs_an_agent)
{
	dept.id = 1;
	ck_assert_int_eq(check(), CB_TRANSFER_SAME_DEPARTMENT);
	name_agent();
	agent.department_id = 1;
	ck_assert_int_eq(check(), CB_TRANSFER_OK);
}
END_TEST

START_TEST(named_agent_must_be_an_active_agent_of_the_target)
{
	name_agent();
	agent.exists = 0;
	ck_assert_int_eq(check(), CB_TRANSFER_BAD_AGENT);
	name_agent();
	agent.is_agent = 0;
	ck_assert_int_eq(check(), CB_TRANSFER_BAD_AGENT);
	name_agent();
	agent.is_active = 0;
	ck_assert_int_eq(check(), CB_TRANSFER_BAD_AGENT);
	name_agent();
	agent.department_id = 3;
	ck_assert_int_eq(check(), CB_TRANSFER_BAD_AGENT);
}
END_TEST

START_TEST(named_agent_must_be_available_with_spare_capacity)
{
	name_agent();
	ck_assert_int_eq(check(), CB_TRANSFER_OK);
	agent.available = 0;
	ck_assert_int_eq(check(), CB_TRANSFER_AGENT_UNAVAILABLE);
	name_agent();
	agent.active_chats = 2;
	ck_assert_int_eq(check(), CB_TRANSFER_AGENT_UNAVAILABLE);
}
END_TEST

START_TEST(the_holder_cannot_be_named)
{
	name_agent();
	agent.department_id = dept.id = 1;
	agent.id = chat.agent_id;
	ck_assert_int_eq(check(), CB_TRANSFER_ALREADY_HOLDS);
}
END_TEST

START_TEST(errors_map_to_the_contract)
{
	int status;
	const char *code, *field, *message;

	cb_logic_transfer_error(CB_TRANSFER_CHAT_CLOSED, &status, &code, &field, &message);
	ck_assert_int_eq(status, 409);
	ck_assert_str_eq(code, "chat_closed");
	ck_assert_ptr_null(field);
	cb_logic_transfer_error(CB_TRANSFER_BAD_DEPARTMENT, &status, &code, &field, &message);
	ck_assert_int_eq(status, 422);
	ck_assert_str_eq(code, "validation_error");
	ck_assert_str_eq(field, "department_id");
	cb_logic_transfer_error(CB_TRANSFER_SAME_DEPARTMENT, &status, &code, &field, &message);
	ck_assert_int_eq(status, 422);
	ck_assert_str_eq(code, "validation_error");
	ck_assert_str_eq(field, "department_id");
	cb_logic_transfer_error(CB_TRANSFER_BAD_AGENT, &status, &code, &field, &message);
	ck_assert_int_eq(status, 422);
	ck_assert_str_eq(code, "validation_error");
	ck_assert_str_eq(field, "agent_id");
	cb_logic_transfer_error(CB_TRANSFER_ALREADY_HOLDS, &status, &code, &field, &message);
	ck_assert_int_eq(status, 422);
	ck_assert_str_eq(code, "validation_error");
	ck_assert_str_eq(field, "agent_id");
	cb_logic_transfer_error(CB_TRANSFER_AGENT_UNAVAILABLE, &status, &code, &field, &message);
	ck_assert_int_eq(status, 409);
	ck_assert_str_eq(code, "agent_unavailable");
	ck_assert_ptr_null(field);
}
END_TEST

START_TEST(system_message_with_and_without_reason)
{
	char buf[256];

	cb_logic_transfer_message(buf, sizeof buf, "Sales", "Billing", "Eve", NULL);
	ck_assert_str_eq(buf, "Chat transferred from Sales to Billing by Eve.");
	cb_logic_transfer_message(buf, sizeof buf, "Sales", "Billing", "Eve", "");
	ck_assert_str_eq(buf, "Chat transferred from Sales to Billing by Eve.");
	size_t need =
	    cb_logic_transfer_message(buf, sizeof buf, "Sales", "Billing", "Eve", "invoice");
	ck_assert_str_eq(buf, "Chat transferred from Sales to Billing by Eve. Reason: invoice");
	ck_assert_uint_eq(need, strlen(buf));
	need = cb_logic_transfer_message(buf, 8, "Sales", "Billing", "Eve", NULL);
	ck_assert_uint_eq(strlen(buf), 7); /* truncated, still terminated */
	ck_assert_uint_gt(need, 7);
}
END_TEST

Suite *
cb_suite_logic_transfer(void)
{
	Suite *s = suite_create("logic-transfer");
	TCase *tc = tcase_create("rules");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, to_another_active_department_is_ok);
	tcase_add_test(tc, closed_chat_comes_first);
	tcase_add_test(tc, unknown_or_inactive_department);
	tcase_add_test(tc, same_department_needs_an_agent);
	tcase_add_test(tc, named_agent_must_be_an_active_agent_of_the_target);
	tcase_add_test(tc, named_agent_must_be_available_with_spare_capacity);
	tcase_add_test(tc, the_holder_cannot_be_named);
	tcase_add_test(tc, errors_map_to_the_contract);
	tcase_add_test(tc, system_message_with_and_without_reason);
	suite_add_tcase(s, tc);
	return s;
}
