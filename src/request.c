/* request.c -- the canonical request's role table and destructor (see request.h). */
#include "planb/request.h"

#include <stdlib.h>
#include <string.h>

static const char *const request_role_names[PB_ROLE_COUNT] = {"system", "user", "assistant"};

const char *
pb_request_role_name(pb_role role)
{
    return (unsigned)role < PB_ROLE_COUNT ? request_role_names[role] : "user";
}

int
pb_request_role_parse(const char *s)
{
    for (int i = 0; i < PB_ROLE_COUNT; i++)
        if (strcmp(s, request_role_names[i]) == 0)
            return i;
    return -1;
}

void
pb_request_free(pb_request *req)
{
    if (req == NULL)
        return;
    free(req->id);
    for (size_t i = 0; i < req->n_messages; i++)
        free(req->messages[i].content);
    free(req->messages);
    free(req->tenant);
    free(req->models);
    json_object_put(req->meta);
    free(req);
}
