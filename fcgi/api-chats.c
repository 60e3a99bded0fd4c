/* api-chats.c - placeholder route table; the endpoints land with their issue. */
#include "router.h"

const struct cb_route cb_api_chats_routes[] = {
	{NULL, NULL, 0, 0, NULL},
};
