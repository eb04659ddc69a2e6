/* th_promtext.h -- a strict checker of the Prometheus text exposition format (0.0.4).
 *
 * Header-only, for unit and integration tests (promtool is not in Debian
 * without the whole prometheus package). Checks: every sample's family has
 * HELP and TYPE before it, names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names
 * [a-zA-Z_][a-zA-Z0-9_]*, label values use only \\, \" and \n escapes, values
 * parse as floats, no family appears twice, histograms have cumulative
 * _bucket{le} series ending in le="+Inf" equal to _count, plus _sum. */
#ifndef PLANB_TEST_TH_PROMTEXT_H
#define PLANB_TEST_TH_PROMTEXT_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TH_PROM_MAX_FAMILIES 128

static inline bool
th_prom_is_name(const char *s, size_t n, bool colon)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

/* Returns NULL when text is valid, else a static message naming the line. */
static inline const char *
th_prom_check(const char *text)
{
    static char why[512];
    char fams[TH_PROM_MAX_FAMILIES][96], types[TH_PROM_MAX_FAMILIES][16];
    bool helped[TH_PROM_MAX_FAMILIES];
    int nf = 0, cur = -1, lineno = 0;
    double last_bucket = -1, inf_bucket = -1;
    bool saw_inf = false, saw_sum = false;
    const char *p = text;
    if (*text == '\0')
        return "empty";
    while (*p) {
        const char *eol = strchr(p, '\n');
        if (eol == NULL)
            return "last line has no newline";
        size_t len = (size_t)(eol - p);
        char line[1024];
        if (len >= sizeof(line))
            return "line too long";
        memcpy(line, p, len);
        line[len] = '\0';
        p = eol + 1;
        lineno++;
        if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
            char name[96], rest[900];
            if (sscanf(line + 7, "%95s %899[^\n]", name, rest) != 2 ||
                !th_prom_is_name(name, strlen(name), true))
                goto bad;
            int f = -1;
            for (int i = 0; i < nf; i++)
                if (strcmp(fams[i], name) == 0)
                    f = i;
            if (f < 0) {
                if (nf == TH_PROM_MAX_FAMILIES)
                    goto bad;
                f = nf++;
                snprintf(fams[f], sizeof(fams[f]), "%s", name);
                types[f][0] = '\0';
                helped[f] = false;
            } else if (f != cur) {
                goto bad; /* a family split in two places */
            }
            if (cur >= 0 && cur != f && strcmp(types[cur], "histogram") == 0 &&
                (!saw_inf || !saw_sum))
                goto bad;
            if (cur != f) {
                last_bucket = -1;
                saw_inf = saw_sum = false;
            }
            cur = f;
            if (line[2] == 'H') {
                helped[f] = true;
            } else {
                if (types[f][0] || (strcmp(rest, "counter") && strcmp(rest, "gauge") &&
                                    strcmp(rest, "histogram") && strcmp(rest, "summary") &&
                                    strcmp(rest, "untyped")))
                    goto bad;
                snprintf(types[f], sizeof(types[f]), "%.15s", rest);
            }
            continue;
        }
        if (line[0] == '#')
            continue;
        /* sample: name[{labels}] value */
        size_t n = strcspn(line, "{ ");
        if (cur < 0 || !helped[cur] || !types[cur][0] || !th_prom_is_name(line, n, true))
            goto bad;
        char name[96];
        snprintf(name, sizeof(name), "%.*s", (int)n, line);
        const char *fam = fams[cur];
        bool hist = strcmp(types[cur], "histogram") == 0;
        const char *suffix = "";
        if (strncmp(name, fam, strlen(fam)) != 0)
            goto bad;
        suffix = name + strlen(fam);
        if (hist ? (strcmp(suffix, "_bucket") && strcmp(suffix, "_sum") && strcmp(suffix, "_count"))
                 : *suffix != '\0')
            goto bad;
        const char *q = line + n;
        char le[64] = "";
        if (*q == '{') {
            q++;
            while (*q != '}') {
                size_t ln = strcspn(q, "=");
                if (!th_prom_is_name(q, ln, false) || q[ln] != '=' || q[ln + 1] != '"')
                    goto bad;
                bool is_le = ln == 2 && strncmp(q, "le", 2) == 0;
                q += ln + 2;
                size_t vl = 0;
                while (*q != '"') {
                    if (*q == '\0')
                        goto bad;
                    if (*q == '\\') {
                        q++;
                        if (*q != '\\' && *q != '"' && *q != 'n')
                            goto bad;
                    }
                    if (is_le && vl + 1 < sizeof(le))
                        le[vl++] = *q;
                    q++;
                }
                if (is_le)
                    le[vl] = '\0';
                q++;
                if (*q == ',')
                    q++;
                else if (*q != '}')
                    goto bad;
            }
            q++;
        }
        if (*q != ' ')
            goto bad;
        char *end;
        double v = strtod(q + 1, &end);
        if (end == q + 1 || (*end != '\0' && *end != ' '))
            goto bad;
        if (hist && strcmp(suffix, "_bucket") == 0) {
            if (le[0] == '\0' || saw_inf || v < last_bucket)
                goto bad;
            last_bucket = v;
            if (strcmp(le, "+Inf") == 0) {
                saw_inf = true;
                inf_bucket = v;
            } else if (strtod(le, &end) < 0 || *end != '\0') {
                goto bad;
            }
        } else if (hist && strcmp(suffix, "_count") == 0) {
            if (!saw_inf || v != inf_bucket)
                goto bad;
        } else if (hist) {
            saw_sum = true;
        }
        continue;
    bad:
        snprintf(why, sizeof(why), "line %d: %.400s", lineno, line);
        return why;
    }
    if (cur >= 0 && strcmp(types[cur], "histogram") == 0 && (!saw_inf || !saw_sum))
        return "histogram without +Inf bucket or _sum";
    return NULL;
}

#endif
