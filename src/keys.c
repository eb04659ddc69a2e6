/* keys.c -- every Redis key and channel name planb uses, built in one place.
 *
 * The names are the contract with producers and operators (DESIGN.md, docs/redis.md):
 * keeping them here means a rename is one diff and a grep for "q:" finds it.
 * Each returns a new string "<prefix>:<kind>[:<name>]"; caller frees. */
#include "planb/keys.h"

#include <stdio.h>
#include <unistd.h>

#include "planb/core.h"

char *
pb_key_queue(const char *prefix, const char *queue)
{
    return pb_xasprintf("%s:q:%s", prefix, queue);
}

char *
pb_key_delayed(const char *prefix, const char *queue)
{
    return pb_xasprintf("%s:delayed:%s", prefix, queue);
}

char *
pb_key_inflight(const char *prefix, const char *worker)
{
    return pb_xasprintf("%s:inflight:%s", prefix, worker);
}

char *
pb_key_workers(const char *prefix)
{
    return pb_xasprintf("%s:workers", prefix);
}

char *
pb_key_result(const char *prefix, const char *id)
{
    return pb_xasprintf("%s:result:%s", prefix, id);
}

char *
pb_key_reply(const char *prefix, const char *id)
{
    return pb_xasprintf("%s:reply:%s", prefix, id);
}

char *
pb_key_stream(const char *prefix, const char *id)
{
    return pb_xasprintf("%s:stream:%s", prefix, id);
}

char *
pb_key_stream_run(const char *prefix, const char *id)
{
    return pb_xasprintf("%s:streamrun:%s", prefix, id);
}

char *
pb_key_cache(const char *prefix, const char *sha256_hex)
{
    return pb_xasprintf("%s:cache:%s", prefix, sha256_hex);
}

char *
pb_key_cache_lock(const char *prefix, const char *sha)
{
    return pb_xasprintf("%s:cache:%s:lock", prefix, sha);
}

char *
pb_key_dead(const char *prefix)
{
    return pb_xasprintf("%s:dead", prefix);
}

char *
pb_key_stats(const char *prefix)
{
    return pb_xasprintf("%s:stats", prefix);
}

char *
pb_key_breaker(const char *prefix, const char *model)
{
    return pb_xasprintf("%s:breaker:%s", prefix, model);
}

char *
pb_key_ratelimit(const char *prefix, const char *model)
{
    return pb_xasprintf("%s:ratelimit:%s", prefix, model);
}

char *
pb_key_tokens(const char *prefix, const char *model)
{
    return pb_xasprintf("%s:tokens:%s", prefix, model);
}

char *
pb_key_stats_minute(const char *prefix, long long minute)
{
    return pb_xasprintf("%s:stats:m:%lld", prefix, minute);
}

char *
pb_key_stats_lock(const char *prefix)
{
    return pb_xasprintf("%s:lock:stats", prefix);
}

char *
pb_key_alert_state(const char *prefix)
{
    return pb_xasprintf("%s:alert:fallback", prefix);
}

char *
pb_key_deliveries(const char *prefix)
{
    return pb_xasprintf("%s:deliveries", prefix);
}

char *
pb_key_paused(const char *prefix)
{
    return pb_xasprintf("%s:paused", prefix);
}

char *
pb_key_events(const char *prefix)
{
    return pb_xasprintf("%s:events", prefix);
}

char *
pb_key_reaper_lock(const char *prefix)
{
    return pb_xasprintf("%s:reaper", prefix);
}

char *
pb_key_reaper_clock(const char *prefix)
{
    return pb_xasprintf("%s:reaper:clock", prefix);
}

char *
pb_key_suspect(const char *prefix, const char *worker)
{
    return pb_xasprintf("%s:suspect:%s", prefix, worker);
}

char *
pb_key_channel_results(const char *prefix)
{
    return pb_xasprintf("%s:results", prefix);
}

char *
pb_key_channel_cancel(const char *prefix)
{
    return pb_xasprintf("%s:cancel", prefix);
}

char *
pb_key_cancelled(const char *prefix, const char *id)
{
    return pb_xasprintf("%s:cancelled:%s", prefix, id);
}

char *
pb_key_cancels(const char *prefix)
{
    return pb_xasprintf("%s:cancels", prefix);
}

char *
pb_key_channel_stats(const char *prefix)
{
    return pb_xasprintf("%s:stats", prefix);
}

char *
pb_key_channel_alerts(const char *prefix)
{
    return pb_xasprintf("%s:alerts", prefix);
}

char *
pb_key_sem_entry_prefix(const char *prefix)
{
    return pb_xasprintf("%s:sem:e:", prefix);
}

char *
pb_key_sem_bucket_prefix(const char *prefix)
{
    return pb_xasprintf("%s:sem:b:", prefix);
}

char *
pb_key_sem_index(const char *prefix)
{
    return pb_xasprintf("%s:sem:index", prefix);
}

char *
pb_key_sem_shadow(const char *prefix)
{
    return pb_xasprintf("%s:sem:shadow", prefix);
}

char *
pb_key_front_rpm(const char *prefix, const char *key_name, long long min)
{
    return pb_xasprintf("%s:front:rpm:%s:%lld", prefix, key_name, min);
}

char *
pb_key_channel_front_beat(const char *prefix, const char *front)
{
    return pb_xasprintf("%s:front:beat:%s", prefix, front);
}

void
pb_key_worker_id(char *buf, size_t size, pid_t pid)
{
    char host[64];
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    snprintf(buf, size, "%s:%d", host, (int)pid);
}
