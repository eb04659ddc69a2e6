/* cli_stats.h -- `planb stats`: the cluster's figures as a table or JSON. */
#ifndef PLANB_CLI_STATS_H
#define PLANB_CLI_STATS_H

/* planb stats -c FILE [--watch [S]] [--json]; argv[0] is "stats". Returns the exit code
 * (0 ok, 2 usage or config, 5 Redis unreachable or refused). */
int pb_cli_stats(int argc, char **argv);

#endif
