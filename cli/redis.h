/* cli_redis.h -- the blocking Redis connection the one-shot CLI commands share.
 *
 * submit, dead and result run once and exit, so they use hiredis's blocking
 * API instead of the workers' async connections. */
#ifndef PLANB_CLI_REDIS_H
#define PLANB_CLI_REDIS_H

#include <hiredis/hiredis.h>

#include "planb/config.h"

#define PB_CLI_EXIT_REDIS 5 /* Redis unreachable or refused a command (every CLI command) */

/* Connects to cfg's Redis (AUTH, SELECT); NULL after printing why to stderr. Caller redisFree()s.
 */
redisContext *pb_cli_redis_connect(const pb_config *cfg);
/* Loads the config at path for a CLI command; NULL after printing why. Caller frees. */
pb_config *pb_cli_load_config(const char *path);

#endif
