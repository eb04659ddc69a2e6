/* front.h -- the front door process: an OpenAI-compatible HTTP endpoint onto planb's queue.
 *
 * Forked by the master beside the workers and the monitor when http.listen is set, and
 * respawned like them. It serves POST /v1/chat/completions (JSON or SSE), GET /v1/models
 * and GET /healthz with evhttp; each request becomes a job on the queue, and its answer
 * comes back through one subscriber connection (results) and one blocking reader (streams)
 * shared by all requests. docs/front-door.md is the contract. */
#ifndef PLANB_FRONT_H
#define PLANB_FRONT_H

#include "planb/config.h"

/* Binds and listens on h->listen (non-blocking, close-on-exec); the master calls it and
 * keeps the socket across reloads and respawns. Returns the fd, or -1 (logged). */
int pb_front_bind(const pb_http_conf *h);

/* Runs the front door on listen_fd until SIGTERM/SIGINT (then drains its requests for up
 * to drain_timeout_ms); returns the process exit code. */
int pb_front_run(const pb_config *cfg, int listen_fd);

#endif
