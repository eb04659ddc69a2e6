/* semeval.c -- precision, recall and false-hit rate of an embedder (plus the guard) on the
 * labelled pairs of tests/fixtures/semantic, at one threshold and over a sweep.
 *
 * Usage: bench_semeval [--threshold T] [--errors] [--http BASE_URL --model NAME] [FILE.tsv ...]
 * Files hold "label<TAB>kind<TAB>question a<TAB>question b" lines (label 1: should share an
 * answer; 0: must not). Without files, every *.tsv of the fixture directory is read. With
 * --http the vectors come from an OpenAI-compatible /embeddings endpoint through planb's own
 * http embedder (key from $PLANB_EMBED_KEY, default "semeval"). Prints figures; never fails
 * on them. */
#include <dirent.h>
#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/config.h"
#include "planb/core.h"
#include "planb/embed.h"
#include "planb/http.h"

#define SEMEVAL_MAX_PAIRS 4096
#define SEMEVAL_LINE_MAX  2048

typedef struct semeval_pair {
    int label;
    char kind[32];
    char *a, *b;
    double cos;
    bool guard_ok;
    const char *why;
} semeval_pair;

typedef struct semeval_http {
    struct event_base *base;
    pb_embedder *e;
    float *vec; /* last vector (owned) */
    size_t dim;
    bool done;
} semeval_http;

static semeval_pair semeval_pairs[SEMEVAL_MAX_PAIRS];
static size_t semeval_n;

static void
semeval_read(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    char line[SEMEVAL_LINE_MAX];
    while (fgets(line, sizeof(line), f) && semeval_n < SEMEVAL_MAX_PAIRS) {
        line[strcspn(line, "\r\n")] = '\0';
        char *f1 = strtok(line, "\t"), *f2 = strtok(NULL, "\t"), *f3 = strtok(NULL, "\t"),
             *f4 = strtok(NULL, "\t");
        if (f1 == NULL || f4 == NULL || (f1[0] != '0' && f1[0] != '1'))
            continue;
        semeval_pair *p = &semeval_pairs[semeval_n++];
        p->label = f1[0] - '0';
        snprintf(p->kind, sizeof(p->kind), "%s", f2);
        p->a = pb_xstrdup(f3);
        p->b = pb_xstrdup(f4);
    }
    fclose(f);
}

static void
semeval_on_vec(const float *vec, size_t dim, void *arg)
{
    semeval_http *h = arg;
    free(h->vec);
    h->vec = NULL;
    if (vec) {
        h->vec = pb_xmalloc(dim * sizeof(float));
        memcpy(h->vec, vec, dim * sizeof(float));
    }
    h->dim = dim;
    h->done = true;
    event_base_loopbreak(h->base);
}

/* One vector from the http embedder, run to completion on the loop. Caller frees. */
static float *
semeval_http_embed(semeval_http *h, const char *text, size_t *dim)
{
    h->done = false;
    pb_embed_start(h->e, text, 5000, semeval_on_vec, h);
    while (!h->done)
        event_base_loop(h->base, EVLOOP_ONCE);
    float *v = h->vec;
    h->vec = NULL;
    *dim = h->dim;
    return v;
}

static double
semeval_dot(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        d += (double)a[i] * b[i];
    return d;
}

typedef struct semeval_score {
    int tp, fp, fn, tn;
} semeval_score;

static semeval_score
semeval_at(double t, bool guard)
{
    semeval_score s = {0};
    for (size_t i = 0; i < semeval_n; i++) {
        const semeval_pair *p = &semeval_pairs[i];
        bool hit = p->cos >= t && (!guard || p->guard_ok);
        if (hit && p->label)
            s.tp++;
        else if (hit)
            s.fp++;
        else if (p->label)
            s.fn++;
        else
            s.tn++;
    }
    return s;
}

static void
semeval_print(const char *what, double t, semeval_score s)
{
    double prec = s.tp + s.fp ? (double)s.tp / (s.tp + s.fp) : 1.0;
    double rec = s.tp + s.fn ? (double)s.tp / (s.tp + s.fn) : 0.0;
    double fhr = s.fp + s.tn ? (double)s.fp / (s.fp + s.tn) : 0.0;
    printf("%-14s t=%.2f  precision=%.3f recall=%.3f false_hit_rate=%.3f  (tp=%d fp=%d fn=%d "
           "tn=%d)\n",
           what, t, prec, rec, fhr, s.tp, s.fp, s.fn, s.tn);
}

int
main(int argc, char **argv)
{
    double threshold = PB_SEMANTIC_LOCAL_THRESHOLD;
    bool errors = false;
    const char *http_url = NULL, *model = NULL;
    int files = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threshold") == 0 && i + 1 < argc)
            threshold = atof(argv[++i]);
        else if (strcmp(argv[i], "--errors") == 0)
            errors = true;
        else if (strcmp(argv[i], "--http") == 0 && i + 1 < argc)
            http_url = argv[++i];
        else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            model = argv[++i];
        else {
            semeval_read(argv[i]);
            files++;
        }
    }
    if (files == 0) {
        char dir[512];
        snprintf(dir, sizeof(dir), "%s/tests/fixtures/semantic", PB_SRC_DIR);
        DIR *d = opendir(dir);
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL) {
            size_t l = strlen(de->d_name);
            if (l > 4 && strcmp(de->d_name + l - 4, ".tsv") == 0) {
                char path[1024];
                snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
                semeval_read(path);
            }
        }
        if (d)
            closedir(d);
    }

    semeval_http h = {0};
    pb_config *cfg = NULL;
    pb_http *http = NULL;
    if (http_url) {
        setenv("PLANB_SEMEVAL_KEY",
               getenv("PLANB_EMBED_KEY") ? getenv("PLANB_EMBED_KEY") : "semeval", 1);
        char *json = pb_xasprintf(
            "{\"providers\":{\"e\":{\"type\":\"openai\",\"base_url\":\"%s\","
            "\"api_key_env\":\"PLANB_SEMEVAL_KEY\"}},\"models\":{\"m\":{\"provider\":\"e\"}},"
            "\"routes\":{\"default\":{\"chain\":[\"m\"]}},\"cache\":{\"semantic\":{"
            "\"enabled\":true,\"embedder\":\"http\",\"provider\":\"e\",\"model\":\"%s\"}}}",
            http_url, model ? model : "text-embedding-3-small");
        pb_error err = {0};
        cfg = pb_config_parse(json, &err);
        free(json);
        if (cfg == NULL) {
            fprintf(stderr, "%s\n", err.msg);
            return 2;
        }
        h.base = event_base_new();
        http = pb_http_new(h.base, 16 * 1024 * 1024, 16 * 1024 * 1024, 4);
        h.e = pb_embed_new(cfg, http);
        if (argc > 0 && threshold == PB_SEMANTIC_LOCAL_THRESHOLD)
            threshold = cfg->semantic.threshold;
    }

    int64_t t0 = pb_mono_ms();
    size_t failed = 0;
    for (size_t i = 0; i < semeval_n; i++) {
        semeval_pair *p = &semeval_pairs[i];
        if (http_url) {
            size_t da = 0, db = 0;
            float *va = semeval_http_embed(&h, p->a, &da), *vb = semeval_http_embed(&h, p->b, &db);
            p->cos = (va && vb && da == db) ? semeval_dot(va, vb, da) : -1;
            failed += p->cos < -0.5;
            free(va);
            free(vb);
        } else {
            float va[PB_EMBED_LOCAL_DIM], vb[PB_EMBED_LOCAL_DIM];
            pb_embed_local(p->a, va);
            pb_embed_local(p->b, vb);
            p->cos = semeval_dot(va, vb, PB_EMBED_LOCAL_DIM);
        }
        p->guard_ok = pb_embed_guard(p->a, p->b, &p->why);
    }
    int64_t ms = pb_mono_ms() - t0;
    int pos = 0;
    for (size_t i = 0; i < semeval_n; i++)
        pos += semeval_pairs[i].label;
    printf("embedder=%s pairs=%zu positives=%d negatives=%zu embed_failures=%zu time_ms=%lld\n",
           http_url ? "http" : "local", semeval_n, pos, semeval_n - (size_t)pos, failed,
           (long long)ms);
    semeval_print("cosine", threshold, semeval_at(threshold, false));
    semeval_print("cosine+guard", threshold, semeval_at(threshold, true));

    printf("\nsweep (cosine+guard | cosine only):\n");
    for (int k = 50; k <= 98; k += 2) {
        double t = k / 100.0;
        semeval_score g = semeval_at(t, true), c = semeval_at(t, false);
        double gp = g.tp + g.fp ? (double)g.tp / (g.tp + g.fp) : 1.0;
        double cp = c.tp + c.fp ? (double)c.tp / (c.tp + c.fp) : 1.0;
        printf("  t=%.2f  precision=%.3f recall=%.3f false_hits=%3d | precision=%.3f recall=%.3f "
               "false_hits=%3d\n",
               t, gp, (double)g.tp / (pos ? pos : 1), g.fp, cp, (double)c.tp / (pos ? pos : 1),
               c.fp);
    }

    /* Which kinds of near-miss the guard catches, and what still gets through. */
    printf("\nnear-misses above the threshold by kind (cosine only -> after guard):\n");
    const char *kinds[] = {"intent", "negation", "entity", "number", "unrelated"};
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        int above = 0, through = 0, total = 0;
        for (size_t i = 0; i < semeval_n; i++) {
            const semeval_pair *p = &semeval_pairs[i];
            if (p->label || strcmp(p->kind, kinds[k]) != 0)
                continue;
            total++;
            above += p->cos >= threshold;
            through += p->cos >= threshold && p->guard_ok;
        }
        printf("  %-9s total=%3d above=%3d through_guard=%3d\n", kinds[k], total, above, through);
    }
    if (errors) {
        printf("\nerrors at t=%.2f:\n", threshold);
        for (size_t i = 0; i < semeval_n; i++) {
            const semeval_pair *p = &semeval_pairs[i];
            bool hit = p->cos >= threshold && p->guard_ok;
            if (hit != (p->label == 1))
                printf("  %s cos=%.3f guard=%s  %s | %s\n", p->label ? "MISS" : "FALSE_HIT", p->cos,
                       p->guard_ok ? "ok" : p->why, p->a, p->b);
        }
    }
    for (size_t i = 0; i < semeval_n; i++) {
        free(semeval_pairs[i].a);
        free(semeval_pairs[i].b);
    }
    if (http_url) {
        pb_embed_free(h.e);
        pb_http_free(http);
        event_base_free(h.base);
        pb_config_free(cfg);
    }
    return 0;
}
