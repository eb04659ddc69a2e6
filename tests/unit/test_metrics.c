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

Test(metrics, formats_strict_prometheus_text)
{
    pb_config *cfg = th_config_parse(TH_SNAPSHOT_CFG);
    redisReply *r = th_snapshot_reply();
    pb_stats_snapshot snap;
    cr_assert_eq(pb_stats_parse(cfg, r, &snap), PB_OK);
    freeReplyObject(r);

    pb_buf out;
    pb_buf_init(&out, 1 << 20);
    pb_metrics_format(cfg, &snap, &out);
    const char *why = th_prom_check(out.data);
    cr_assert_null(why, "%s\n%s", why, out.data);
    cr_assert_not_null(
        strstr(out.data, "planb_jobs_total{route=\"default\",source=\"fallback\"} 4\n"));
    cr_assert_not_null(strstr(out.data, "planb_attempts_total{model=\"m:1\",outcome=\"ok\"} 6\n"));
    cr_assert_not_null(
        strstr(out.data, "planb_attempts_total{model=\"m:1\",outcome=\"http_500\"} 3\n"));
    cr_assert_not_null(strstr(out.data, "planb_breaker_state{model=\"m:1\"} 1\n"));
    cr_assert_not_null(
        strstr(out.data, "planb_breaker_transitions_total{model=\"m:1\",state=\"open\"} 1\n"));
    cr_assert_not_null(strstr(out.data, "planb_job_latency_seconds_bucket{le=\"0.5\"} 7\n"));
    cr_assert_not_null(strstr(out.data, "planb_job_latency_seconds_bucket{le=\"+Inf\"} 10\n"));
    cr_assert_not_null(strstr(out.data, "planb_job_latency_seconds_count 10\n"));
    cr_assert_not_null(strstr(out.data, "planb_fallback_ratio{window=\"5m\"} 0.400000\n"));
    pb_buf_free(&out);
    pb_stats_snapshot_free(&snap);
    pb_config_free(cfg);
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
