/* cli_dead.h -- `planb dead`: list, show, retry and purge dead-lettered jobs. */
#ifndef PLANB_CLI_DEAD_H
#define PLANB_CLI_DEAD_H

/* Runs `planb dead ...` (argv[0] is "dead"); returns the exit code (README "planb dead"). */
int pb_cli_dead(int argc, char **argv);

#endif
