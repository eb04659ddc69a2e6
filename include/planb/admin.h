/* admin.h -- the admin process: the operators' web page and JSON API on admin.listen.
 *
 * Forked by the master beside the front door (its own slot, respawned the same way), so a
 * dashboard in trouble never slows a worker. Master-facing: no libevent or hiredis type. */
#ifndef PLANB_ADMIN_H
#define PLANB_ADMIN_H

#include "planb/adminauth.h"
#include "planb/config.h"

/* Serves cfg->admin until SIGTERM; secret (PB_ADMINAUTH_SECRET_BYTES, drawn by the master at
 * its start) signs the session cookies. Returns the process exit code. */
int pb_admin_run(const pb_config *cfg, const unsigned char *secret);

#endif
