/* th_config.h -- configs for unit tests: parse a JSON string, find models and routes by name
 * (header-only).
 *
 * Tests name models and routes as their config does rather than trusting an index order.
 * Kept static inline so each test binary takes only what it uses. */
#ifndef PLANB_TEST_TH_CONFIG_H
#define PLANB_TEST_TH_CONFIG_H

#include <criterion/criterion.h>
#include <string.h>

#include "planb/config.h"

/* Parses json, asserting it is a valid config (the error is the message). Caller frees. */
static inline pb_config *
th_config_parse(const char *json)
{
    pb_error err = {0};
    pb_config *cfg = pb_config_parse(json, &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    return cfg;
}

/* Index of the model named name in cfg->models (asserts it exists). */
static inline int
th_config_model(const pb_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_models; i++)
        if (strcmp(cfg->models[i].name, name) == 0)
            return (int)i;
    cr_assert_fail("no model %s", name);
    return -1;
}

/* Index of the route named name in cfg->routes (asserts it exists). */
static inline int
th_config_route(const pb_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (strcmp(cfg->routes[i].name, name) == 0)
            return (int)i;
    cr_assert_fail("no route %s", name);
    return -1;
}

#endif
