/* test_metrics.c -- the /metrics text of a stats snapshot, checked by a strict parser of the
 * Prometheus exposition format (th_promtext.h), and that parser's own self-test.
 *
 * The snapshot comes from a hand-made snapshot.lua reply (th_replies.h), the same one
 * test_stats.c parses. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <string.h>

#include "planb/metrics.h"
#include "planb/stats.h"
#include "th_config.h"
#include "th_promtext.h"
#include "th_replies.h"

/* The /metrics text of r (freed here) in out, checked by the strict parser. */
static void
format_reply(redisReply *r, pb_buf *out)
{
    pb_config *cfg = th_config_parse(TH_SNAPSHOT_CFG);
    pb_stats_snapshot snap;
    cr_assert_eq(pb_stats_parse(cfg, r, &snap), PB_OK);
    freeReplyObject(r);
    pb_buf_init(out, 1 << 20);
    pb_metrics_format(cfg, &snap, out);
    const char *why = th_prom_check(out->data);
    cr_assert_null(why, "%s\n%s", why, out->data);
    pb_stats_snapshot_free(&snap);
    pb_config_free(cfg);
}

Test(metrics, formats_strict_prometheus_text)
{
    static const char *const want[] = {
        "planb_jobs_total{route=\"default\",source=\"fallback\"} 4\n",
        "planb_attempts_total{model=\"m:1\",outcome=\"ok\"} 6\n",
        "planb_attempts_total{model=\"m:1\",outcome=\"http_500\"} 3\n",
        "planb_breaker_state{model=\"m:1\"} 1\n",
        "planb_breaker_transitions_total{model=\"m:1\",state=\"open\"} 1\n",
        "planb_job_latency_seconds_bucket{le=\"0.5\"} 7\n",
        "planb_job_latency_seconds_bucket{le=\"+Inf\"} 10\n",
        "planb_job_latency_seconds_count 10\n",
        "planb_fallback_ratio{window=\"5m\"} 0.400000\n",
        "planb_redis_up 1\n",
        "planb_queue_oldest_age_seconds{queue=\"default\"} 42.500\n",
        "planb_workers 2\n",
        "planb_dead_letters 5\n",
        "planb_dead_lettered_total 6\n",
        "planb_finish_held_total 2\n",
        "planb_finish_resends_total 5\n",
        "planb_cost_usd_total{model=\"m:1\"} 1.234567\n",
        "planb_cost_usd_total{model=\"b\"} 0.000000\n",
        "planb_rpm{model=\"m:1\"} 7\n",
        "planb_tpm{model=\"m:1\"} 1200\n",
        "planb_rpm_limit{model=\"b\"} 0\n",
    };
    pb_buf out;
    format_reply(th_snapshot_reply(), &out);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_assert_not_null(strstr(out.data, want[i]), "no %s in\n%s", want[i], out.data);
    pb_buf_free(&out);
}

/* A queue whose oldest job has no submitted_at_ms (-1) has no age sample, not a made-up one. */
Test(metrics, an_unknown_queue_age_is_left_out)
{
    redisReply *r = th_snapshot_reply();
    r->element[7]->element[0]->integer = -1;
    pb_buf out;
    format_reply(r, &out);
    cr_assert_not_null(strstr(out.data, "# TYPE planb_queue_oldest_age_seconds gauge\n"));
    cr_assert_null(strstr(out.data, "planb_queue_oldest_age_seconds{"), "%s", out.data);
    pb_buf_free(&out);
}

Test(promtext, the_checker_rejects_broken_text)
{
    cr_assert_null(th_prom_check("# HELP a x\n# TYPE a gauge\na 1\n"));
    cr_assert_not_null(th_prom_check("a 1\n"), "no HELP/TYPE");
    cr_assert_not_null(th_prom_check("# HELP a x\n# TYPE a gauge\na{l=\"\\x\"} 1\n"), "escape");
    cr_assert_not_null(th_prom_check("# HELP a x\n# TYPE a gauge\na{1l=\"v\"} 1\n"), "label");
    cr_assert_not_null(th_prom_check("# HELP a x\n# TYPE a gauge\na one\n"), "value");
    cr_assert_not_null(th_prom_check("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
                                     "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"),
                       "not cumulative");
    cr_assert_not_null(th_prom_check("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
                                     "h_sum 1\nh_count 1\n"),
                       "no +Inf");
}
