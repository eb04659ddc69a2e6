/* cli_result.h -- `planb result ID`: print a job's stored result. */
#ifndef PLANB_CLI_RESULT_H
#define PLANB_CLI_RESULT_H

/* Runs `planb result ...` (argv[0] is "result"); returns the exit code (README "planb result"). */
int pb_cli_result(int argc, char **argv);

#endif
