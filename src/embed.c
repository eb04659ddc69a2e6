/* embed.c -- the local embedder, the near-miss guard, and the http embedder's plumbing.
 *
 * Local embedding, in order: UTF-8 decoded, Latin accents and full-width forms
 * folded to ASCII, lowercased, split into words (a '.' or ',' inside a number
 * stays), English contractions expanded ("don't" -> "do not"), number words
 * made digits, each word stemmed with Snowball's English stemmer (libstemmer)
 * and mapped through a small synonym table. Features, each hashed (FNV-1a 64)
 * to a signed slot of a PB_EMBED_LOCAL_DIM vector: the word (stop words
 * weighted down), the pair of adjacent content words, and the character
 * trigrams of each content word (typos, compounds). The vector is
 * L2-normalised. Only integer hashing and a fixed order of float additions are
 * involved, so every host computes the same vector.
 *
 * The guard compares the same token streams: negation present on one side
 * only, different numbers, a named entity (capitalised mid-sentence, or a day
 * or month) missing from the other side, an opposite-direction pair ("on" /
 * "off", "cancel" / "place") split across the two, or the same entities in a
 * different order ("USD to EUR" / "EUR to USD"). Each of these leaves most
 * words shared, which is exactly when a cosine scores high. */
#include "planb/embed.h"

#include <json-c/json.h>
#include <libstemmer.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/core.h"
#include "planb/hash.h"
#include "planb/log.h"
#include "planb/provider.h"
#include "planb/utf8.h"

#define EMBED_TEXT_MAX   8192 /* bytes of a text looked at: past that, no FAQ match anyway */
#define EMBED_TOKENS_MAX 512  /* words kept from those bytes */
#define EMBED_WORD_MAX   48   /* longer "words" (URLs, hashes) are cut: they still hash apart */
#define EMBED_FNV_SEED   1469598103934665603ULL /* local-v1 feature hash seed (see embed_fnv) */
#define EMBED_W_CONTENT  1.0f
#define EMBED_W_STOP     0.2f
#define EMBED_W_BIGRAM   0.5f
#define EMBED_W_TRIGRAM  0.25f

typedef struct embed_token {
    char s[EMBED_WORD_MAX + 1]; /* stemmed, canonical form */
    bool stop;                  /* in the stop list: weighted down */
    bool number;                /* digits (number words were mapped to digits) */
    bool negation;              /* not, no, never, without, ... */
    bool entity;                /* capitalised mid-sentence, a day or a month */
} embed_token;

typedef struct embed_tokens {
    embed_token t[EMBED_TOKENS_MAX];
    size_t n;
} embed_tokens;

/* Words that carry little meaning in a question (matched after lowercasing, before stemming).
 * Not in it on purpose: negations, on/off, up/down, in/out, before/after (the guard's pairs). */
static const char *const embed_stop_words[] = {
    "a",      "an",    "the",   "is",      "are",    "was",   "were",     "be",     "been",
    "being",  "am",    "do",    "does",    "did",    "doing", "have",     "has",    "had",
    "having", "i",     "me",    "my",      "mine",   "we",    "our",      "us",     "you",
    "your",   "yours", "he",    "him",     "his",    "she",   "her",      "it",     "its",
    "they",   "them",  "their", "this",    "that",   "these", "those",    "what",   "which",
    "who",    "whom",  "how",   "can",     "could",  "would", "should",   "will",   "shall",
    "may",    "might", "must",  "to",      "of",     "at",    "by",       "for",    "with",
    "from",   "about", "as",    "into",    "so",     "too",   "very",     "just",   "also",
    "and",    "or",    "but",   "if",      "please", "hi",    "hello",    "thanks", "thank",
    "get",    "there", "here",  "any",     "some",   "way",   "possible", "want",   "need",
    "know",   "tell",  "help",  "someone", "anyone", "guys",  "hey",      "kindly", "able",
    "go",     "s",     "d",     "ll",      "ve",     "re",    "m",        NULL};

static const char *const embed_negations[] = {"not",  "no",      "never",  "without", "nor",
                                              "none", "nothing", "nobody", "neither", NULL};

/* Number words (after lowercasing) and their digits. */
static const char *const embed_number_words[][2] = {
    {"zero", "0"},      {"one", "1"},         {"two", "2"},           {"three", "3"},
    {"four", "4"},      {"five", "5"},        {"six", "6"},           {"seven", "7"},
    {"eight", "8"},     {"nine", "9"},        {"ten", "10"},          {"eleven", "11"},
    {"twelve", "12"},   {"thirteen", "13"},   {"fourteen", "14"},     {"fifteen", "15"},
    {"twenty", "20"},   {"thirty", "30"},     {"forty", "40"},        {"fifty", "50"},
    {"hundred", "100"}, {"thousand", "1000"}, {"million", "1000000"}, {"first", "1"},
    {"second", "2"},    {"third", "3"},       {"fourth", "4"},        {"fifth", "5"},
    {NULL, NULL}};

/* Days and months are entities even in lower case ("on sunday" vs "on monday"). */
static const char *const embed_calendar[] = {
    "monday", "tuesday",  "wednesday", "thursday", "friday",   "saturday",
    "sunday", "january",  "february",  "march",    "april",    "june",
    "july",   "august",   "september", "october",  "november", "december",
    "today",  "tomorrow", "yesterday", "weekend",  "weekday",  NULL};

/* Synonyms folded onto one stem, so a paraphrase that swaps them keeps its words
 * (stems on both sides). Kept small: each entry is a word customers use both ways. */
static const char *const embed_synonyms[][2] = {
    {"purchas", "buy"},   {"modifi", "chang"},     {"updat", "chang"},   {"alter", "chang"},
    {"edit", "chang"},    {"delet", "remov"},      {"eras", "remov"},    {"price", "cost"},
    {"fee", "cost"},      {"charg", "cost"},       {"acquir", "buy"},    {"obtain", "get"},
    {"receiv", "get"},    {"sign", "log"},         {"login", "log"},     {"logon", "log"},
    {"signin", "log"},    {"passcod", "password"}, {"pwd", "password"},  {"passwd", "password"},
    {"email", "mail"},    {"e-mail", "mail"},      {"mobil", "phone"},   {"cellphon", "phone"},
    {"repay", "refund"},  {"reimburs", "refund"},  {"ship", "deliv"},    {"deliveri", "deliv"},
    {"parcel", "packag"}, {"shipment", "packag"},  {"recov", "reset"},   {"restor", "reset"},
    {"forgot", "forget"}, {"forgotten", "forget"}, {"abort", "cancel"},  {"termin", "cancel"},
    {"retriev", "reset"}, {"locat", "find"},       {"annul", "cancel"},  {"revok", "cancel"},
    {"shut", "close"},    {"commenc", "start"},    {"begin", "start"},   {"launch", "start"},
    {"halt", "stop"},     {"quit", "stop"},        {"cheaper", "cheap"}, {"inexpens", "cheap"},
    {"larger", "big"},    {"bigger", "big"},       {"larg", "big"},      {"smaller", "small"},
    {"tini", "small"},    {"wage", "salari"},      {"invoic", "bill"},   {"receipt", "bill"},
    {"contact", "reach"}, {"speak", "talk"},       {"chat", "talk"},     {"agent", "human"},
    {"repres", "human"},  {"person", "human"},     {"employe", "staff"}, {NULL, NULL}};

/* Opposite directions: a pair split across two questions changes the answer. Stems. */
static const char *const embed_opposites[][2] = {{"on", "off"},
                                                 {"enabl", "disabl"},
                                                 {"activ", "deactiv"},
                                                 {"open", "close"},
                                                 {"increas", "decreas"},
                                                 {"add", "remov"},
                                                 {"start", "stop"},
                                                 {"befor", "after"},
                                                 {"up", "down"},
                                                 {"in", "out"},
                                                 {"buy", "sell"},
                                                 {"upload", "download"},
                                                 {"import", "export"},
                                                 {"includ", "exclud"},
                                                 {"min", "max"},
                                                 {"minimum", "maximum"},
                                                 {"accept", "reject"},
                                                 {"lock", "unlock"},
                                                 {"show", "hide"},
                                                 {"allow", "block"},
                                                 {"subscrib", "unsubscrib"},
                                                 {"encrypt", "decrypt"},
                                                 {"cancel", "place"},
                                                 {"cancel", "book"},
                                                 {"cancel", "renew"},
                                                 {"cancel", "make"},
                                                 {"cancel", "creat"},
                                                 {"join", "leav"},
                                                 {"more", "less"},
                                                 {"above", "below"},
                                                 {"earli", "late"},
                                                 {"first", "last"},
                                                 {"cheap", "expens"},
                                                 {"big", "small"},
                                                 {"high", "low"},
                                                 {"win", "lose"},
                                                 {"incom", "outgo"},
                                                 {"import", "export"},
                                                 {"mute", "unmut"},
                                                 {"pin", "unpin"},
                                                 {"follow", "unfollow"},
                                                 {"connect", "disconnect"},
                                                 {"up", "in"},
                                                 {"upgrad", "downgrad"},
                                                 {"pass", "fail"},
                                                 {"hot", "cold"},
                                                 {"old", "new"},
                                                 {"log", "logout"},
                                                 {"merg", "split"},
                                                 {"borrow", "lend"},
                                                 {"arriv", "depart"},
                                                 {"forward", "backward"},
                                                 {"left", "right"},
                                                 {"north", "south"},
                                                 {"east", "west"},
                                                 {"true", "fals"},
                                                 {"long", "short"},
                                                 {"fast", "slow"},
                                                 {"reset", "chang"},
                                                 {"refund", "exchang"},
                                                 {"return", "exchang"},
                                                 {"refund", "cancel"},
                                                 {"track", "cancel"},
                                                 {"track", "return"},
                                                 {"child", "adult"},
                                                 {"men", "women"},
                                                 {"man", "woman"},
                                                 {"boy", "girl"},
                                                 {"free", "paid"},
                                                 {"annual", "month"},
                                                 {"week", "month"},
                                                 {"day", "week"},
                                                 {"day", "month"},
                                                 {"month", "year"},
                                                 {"week", "year"},
                                                 {"minut", "hour"},
                                                 {"second", "minut"},
                                                 {"hour", "day"},
                                                 {NULL, NULL}};

/* Latin-1 Supplement U+00C0..U+00FF and Latin Extended-A U+0100..U+017F folded to ASCII base
 * letters ('\0': no letter, becomes a separator). */
static const char embed_latin1[64] =
    "AAAAAAACEEEEIIIIDNOOOOO\0OUUUUYTsaaaaaaaceeeeiiiidnooooo\0ouuuuyty";
static const char embed_latin_ext_a[128] = "AaAaAaCcCcCcCcDdDdEeEeEeEeEeGgGgGgGgHhHhIiIiIiIiIiJjJj"
                                           "KkkLlLlLlLlLlNnNnNnnNnOoOoOoOoRrRrRrSsSsSsSsTtTtTtUuUu"
                                           "UuUuUuUuWwYyYZzZzZzs";

static struct sb_stemmer *embed_stemmer; /* one per process, made on first use */

static bool
embed_in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return true;
    return false;
}

/* Folds text into out: ASCII letters keep their case (entities need it), accented Latin and
 * full-width forms become ASCII, apostrophes become '\'', other punctuation a space, and other
 * non-ASCII letters (CJK, Cyrillic, ...) are copied as UTF-8 word bytes. */
static size_t
embed_fold(const char *text, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t n = strnlen(text, EMBED_TEXT_MAX), i = 0, o = 0;
    while (i < n && o + 4 < cap) {
        uint32_t cp;
        size_t k = pb_utf8_decode(p + i, n - i, &cp);
        char c = ' ';
        if (cp >= 0xFF01 && cp <= 0xFF5E)
            cp -= 0xFEE0; /* full-width ASCII */
        if (cp < 0x80) {
            c = (char)cp;
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '\'' || c == '.' || c == ',' || c == '?' || c == '!' || c == '-'))
                c = ' ';
        } else if (cp == 0x2018 || cp == 0x2019 || cp == 0x02BC) {
            c = '\'';
        } else if (cp >= 0xC0 && cp <= 0xFF) {
            c = embed_latin1[cp - 0xC0] ? embed_latin1[cp - 0xC0] : ' ';
            if (cp == 0xDF || cp == 0xE6 || cp == 0xC6) { /* ß æ Æ: two letters */
                out[o++] = cp == 0xDF ? 's' : 'a';
                c = cp == 0xDF ? 's' : 'e';
            }
        } else if (cp >= 0x100 && cp <= 0x17F) {
            c = embed_latin_ext_a[cp - 0x100];
        } else if (cp >= 0x2000 && cp <= 0x206F) {
            c = ' '; /* general punctuation: dashes, quotes, ellipsis */
        } else if (cp != 0xFFFD && cp >= 0x80) {
            memcpy(out + o, p + i, k);
            o += k;
            i += k;
            continue;
        }
        out[o++] = c;
        i += k;
    }
    out[o] = '\0';
    return o;
}

static char
embed_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool
embed_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Adds one lowercased word (before stemming) as a token. */
static void
embed_push(embed_tokens *ts, const char *w, bool capital)
{
    if (ts->n == EMBED_TOKENS_MAX || w[0] == '\0')
        return;
    embed_token *t = &ts->t[ts->n];
    memset(t, 0, sizeof(*t));
    for (size_t i = 0; embed_number_words[i][0]; i++)
        if (strcmp(w, embed_number_words[i][0]) == 0)
            w = embed_number_words[i][1];
    t->number = embed_is_digit(w[0]);
    t->negation = embed_in_list(w, embed_negations);
    t->stop = embed_in_list(w, embed_stop_words);
    t->entity = (capital && !t->stop && !t->number) || embed_in_list(w, embed_calendar);
    if (t->number) {
        snprintf(t->s, sizeof(t->s), "%s", w);
    } else {
        if (embed_stemmer == NULL)
            embed_stemmer = sb_stemmer_new("english", NULL);
        pb_assert(embed_stemmer != NULL);
        const sb_symbol *st = sb_stemmer_stem(embed_stemmer, (const sb_symbol *)w, (int)strlen(w));
        snprintf(t->s, sizeof(t->s), "%s", st ? (const char *)st : w);
        for (size_t i = 0; embed_synonyms[i][0]; i++)
            if (strcmp(t->s, embed_synonyms[i][0]) == 0)
                snprintf(t->s, sizeof(t->s), "%s", embed_synonyms[i][1]);
        t->entity |= embed_in_list(t->s, embed_calendar);
    }
    /* "turn on" / "switch off": the phrasal verb is "enable" / "disable". */
    if (ts->n > 0 && (strcmp(t->s, "on") == 0 || strcmp(t->s, "off") == 0)) {
        embed_token *v = &ts->t[ts->n - 1];
        if (strcmp(v->s, "turn") == 0 || strcmp(v->s, "switch") == 0) {
            snprintf(v->s, sizeof(v->s), "%s", t->s[1] == 'n' ? "enabl" : "disabl");
            return;
        }
    }
    ts->n++;
}

/* Splits a contraction ("don't", "she's") into its words; other apostrophes are dropped. */
static void
embed_push_word(embed_tokens *ts, char *w, bool capital)
{
    size_t n = strlen(w);
    char *ap = strchr(w, '\'');
    if (strcmp(w, "cannot") == 0) {
        embed_push(ts, "can", capital);
        embed_push(ts, "not", false);
        return;
    }
    if (ap == NULL) {
        embed_push(ts, w, capital);
        return;
    }
    if (n >= 3 && strcmp(w + n - 3, "n't") == 0) {
        w[n - 3] = '\0';
        const char *base = strcmp(w, "won") == 0   ? "will"
                           : strcmp(w, "ca") == 0  ? "can"
                           : strcmp(w, "sha") == 0 ? "shall"
                                                   : w;
        embed_push(ts, base, capital);
        embed_push(ts, "not", false);
        return;
    }
    *ap = '\0'; /* 's 're 'll 've 'd 'm: the base word carries the meaning */
    embed_push(ts, w, capital);
}

/* Tokenizes text (see the file comment). */
static void
embed_tokenize(const char *text, embed_tokens *ts)
{
    char *buf = pb_xmalloc(EMBED_TEXT_MAX * 2 + 8);
    size_t n = embed_fold(text, buf, EMBED_TEXT_MAX * 2 + 8);
    ts->n = 0;
    bool sentence_start = true;
    /* In a text without lower-case letters (shouting) case says nothing about names. */
    bool has_lower = false;
    for (size_t k = 0; k < n && !has_lower; k++)
        has_lower = buf[k] >= 'a' && buf[k] <= 'z';
    size_t i = 0;
    while (i < n && ts->n < EMBED_TOKENS_MAX) {
        char c = buf[i];
        if (c == '.' || c == '?' || c == '!') {
            sentence_start = true;
            i++;
            continue;
        }
        if (c == ' ' || c == ',' || c == '-' || c == '\'') {
            i++;
            continue;
        }
        char w[EMBED_WORD_MAX + 1];
        size_t wl = 0;
        bool capital = c >= 'A' && c <= 'Z';
        bool upper_inside = false;
        while (i < n) {
            c = buf[i];
            bool in_number =
                wl > 0 && embed_is_digit(w[wl - 1]) && i + 1 < n && embed_is_digit(buf[i + 1]);
            if ((c == '.' || c == ',') && in_number) {
                if (c == '.' && wl < EMBED_WORD_MAX)
                    w[wl++] = '.';
                i++;
                continue;
            }
            if (c == ' ' || c == '.' || c == ',' || c == '?' || c == '!' || c == '-')
                break;
            if (wl > 0 && c >= 'A' && c <= 'Z')
                upper_inside = true;
            if (wl < EMBED_WORD_MAX)
                w[wl++] = embed_lower(c);
            i++;
        }
        w[wl] = '\0';
        /* "iPhone", "PayPal", "USD" mid-word capitals mark a name even at a sentence start. */
        bool named = has_lower && ((capital && !sentence_start) || upper_inside);
        embed_push_word(ts, w, named);
        sentence_start = false;
    }
    free(buf);
}

/* The hash of up to three feature parts, each followed by a separator so ("ab","c") and
 * ("a","bc") hash apart. EMBED_FNV_SEED, not the FNV offset basis: it is what local-v1 vectors
 * were made with, and changing it would move every stored vector. */
static uint64_t
embed_fnv(const char *a, const char *b, const char *c)
{
    static const unsigned char sep = 0xFF;
    uint64_t h = EMBED_FNV_SEED;
    const char *parts[3] = {a, b, c};
    for (int k = 0; k < 3; k++) {
        if (parts[k])
            h = pb_hash_fnv1a64_str(parts[k], h);
        h = pb_hash_fnv1a64(&sep, 1, h);
    }
    return h;
}

static void
embed_add(float *v, uint64_t h, float w)
{
    v[h % PB_EMBED_LOCAL_DIM] += (h >> 63) ? -w : w;
}

void
pb_embed_local(const char *text, float *out)
{
    embed_tokens *ts = pb_xmalloc(sizeof(*ts));
    embed_tokenize(text, ts);
    memset(out, 0, sizeof(float) * PB_EMBED_LOCAL_DIM);
    const char *prev = NULL;
    for (size_t i = 0; i < ts->n; i++) {
        const embed_token *t = &ts->t[i];
        embed_add(out, embed_fnv("w", t->s, NULL), t->stop ? EMBED_W_STOP : EMBED_W_CONTENT);
        if (t->stop)
            continue;
        if (prev)
            embed_add(out, embed_fnv("b", prev, t->s), EMBED_W_BIGRAM);
        prev = t->s;
        char padded[EMBED_WORD_MAX + 3];
        int pl = snprintf(padded, sizeof(padded), "<%s>", t->s);
        for (int k = 0; k + 3 <= pl; k++) {
            char tri[4] = {padded[k], padded[k + 1], padded[k + 2], '\0'};
            embed_add(out, embed_fnv("c", tri, NULL), EMBED_W_TRIGRAM);
        }
    }
    double norm = 0;
    for (size_t i = 0; i < PB_EMBED_LOCAL_DIM; i++)
        norm += (double)out[i] * out[i];
    if (norm > 0) {
        float inv = (float)(1.0 / sqrt(norm));
        for (size_t i = 0; i < PB_EMBED_LOCAL_DIM; i++)
            out[i] *= inv;
    }
    free(ts);
}

/* ---------------------------------------------------------------- guard */

static bool
embed_has(const embed_tokens *ts, const char *s)
{
    for (size_t i = 0; i < ts->n; i++)
        if (strcmp(ts->t[i].s, s) == 0)
            return true;
    return false;
}

static bool
embed_has_negation(const embed_tokens *ts)
{
    for (size_t i = 0; i < ts->n; i++)
        if (ts->t[i].negation)
            return true;
    return false;
}

/* Every number of a is in b. */
static bool
embed_numbers_within(const embed_tokens *a, const embed_tokens *b)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->t[i].number && !embed_has(b, a->t[i].s))
            return false;
    return true;
}

/* Every entity of a occurs in b (as any word: b may be typed in lower case). */
static bool
embed_entities_within(const embed_tokens *a, const embed_tokens *b)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->t[i].entity && !embed_has(b, a->t[i].s))
            return false;
    return true;
}

static bool
embed_is_anchor(const embed_tokens *a, const char *s)
{
    for (size_t i = 0; i < a->n; i++)
        if ((a->t[i].entity || a->t[i].number) && strcmp(a->t[i].s, s) == 0)
            return true;
    return false;
}

/* The words of x that are an entity or number on either side, in order, joined: for the
 * "USD to EUR" / "EUR to USD" check. */
static void
embed_anchor_order(const embed_tokens *x, const embed_tokens *a, const embed_tokens *b, char *out,
                   size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < x->n && o < cap; i++)
        if (embed_is_anchor(a, x->t[i].s) || embed_is_anchor(b, x->t[i].s))
            o += (size_t)snprintf(out + o, cap - o, "%s|", x->t[i].s);
}

bool
pb_embed_guard(const char *a, const char *b, const char **why)
{
    embed_tokens *ta = pb_xmalloc(sizeof(*ta)), *tb = pb_xmalloc(sizeof(*tb));
    embed_tokenize(a, ta);
    embed_tokenize(b, tb);
    const char *fail = NULL;
    if (embed_has_negation(ta) != embed_has_negation(tb))
        fail = "negation";
    else if (!embed_numbers_within(ta, tb) || !embed_numbers_within(tb, ta))
        fail = "number";
    else if (!embed_entities_within(ta, tb) || !embed_entities_within(tb, ta))
        fail = "entity";
    for (size_t i = 0; fail == NULL && embed_opposites[i][0]; i++) {
        const char *x = embed_opposites[i][0], *y = embed_opposites[i][1];
        bool ax = embed_has(ta, x), ay = embed_has(ta, y);
        bool bx = embed_has(tb, x), by = embed_has(tb, y);
        if ((ax && !ay && by && !bx) || (ay && !ax && bx && !by))
            fail = "opposite";
    }
    if (fail == NULL) {
        char oa[512], ob[512];
        embed_anchor_order(ta, ta, tb, oa, sizeof(oa));
        embed_anchor_order(tb, ta, tb, ob, sizeof(ob));
        if (strcmp(oa, ob) != 0)
            fail = "order";
    }
    free(ta);
    free(tb);
    if (why)
        *why = fail;
    return fail == NULL;
}

/* ---------------------------------------------------------------- embedders */

struct pb_embedder {
    pb_embedder_kind kind;
    pb_http *http;                /* borrowed (http embedder) */
    const pb_provider_conf *prov; /* http: borrowed from the config */
    const char *model;            /* http: borrowed */
    char id[96];                  /* pb_embed_space_id */
};

struct pb_embed_call {
    pb_http_call *call; /* the request in flight */
    pb_embed_fn done;
    void *arg;
};

pb_embedder *
pb_embed_new(const pb_config *cfg, pb_http *http)
{
    pb_embedder *e = pb_xcalloc(1, sizeof(*e));
    e->kind = cfg->semantic.embedder;
    e->http = http;
    if (e->kind == PB_EMBEDDER_HTTP) {
        e->prov = &cfg->providers[cfg->semantic.provider];
        e->model = cfg->semantic.model;
        snprintf(e->id, sizeof(e->id), "http:%s", e->model);
    } else {
        snprintf(e->id, sizeof(e->id), "local-v1-%d", PB_EMBED_LOCAL_DIM);
    }
    return e;
}

void
pb_embed_free(pb_embedder *e)
{
    free(e);
}

const char *
pb_embed_space_id(const pb_embedder *e)
{
    return e->id;
}

float *
pb_embed_parse_reply(const char *body, size_t len, size_t *dim)
{
    json_object *root = pb_provider_parse_object(body, len, NULL);
    json_object *data, *emb;
    float *v = NULL;
    if (root && json_object_object_get_ex(root, "data", &data) &&
        json_object_is_type(data, json_type_array) && json_object_array_length(data) > 0 &&
        json_object_object_get_ex(json_object_array_get_idx(data, 0), "embedding", &emb) &&
        json_object_is_type(emb, json_type_array)) {
        size_t n = json_object_array_length(emb);
        if (n > 0 && n <= PB_EMBED_MAX_DIM) {
            v = pb_xmalloc(n * sizeof(float));
            double norm = 0;
            for (size_t i = 0; i < n && v; i++) {
                json_object *x = json_object_array_get_idx(emb, i);
                double d = json_object_get_double(x);
                if ((!json_object_is_type(x, json_type_double) &&
                     !json_object_is_type(x, json_type_int)) ||
                    !isfinite(d)) {
                    free(v);
                    v = NULL;
                    break;
                }
                v[i] = (float)d;
                norm += d * d;
            }
            if (v && norm <= 0) {
                free(v);
                v = NULL;
            }
            for (size_t i = 0; v && i < n; i++)
                v[i] = (float)(v[i] / sqrt(norm));
            *dim = n;
        }
    }
    json_object_put(root);
    return v;
}

static void
embed_on_http_done(const pb_http_reply *r, void *arg)
{
    pb_embed_call *c = arg;
    size_t dim = 0;
    float *v = NULL;
    if (r->curl_code == 0 && !r->too_large && r->status >= 200 && r->status < 300)
        v = pb_embed_parse_reply(r->body, r->body_len, &dim);
    if (v == NULL)
        pb_log(PB_LOG_WARN, "event=embed_failed status=%ld curl=%d timed_out=%d", r->status,
               r->curl_code, (int)r->timed_out);
    c->done(v, dim, c->arg);
    free(v);
    free(c);
}

pb_embed_call *
pb_embed_start(pb_embedder *e, const char *text, int timeout_ms, pb_embed_fn done, void *arg)
{
    if (e->kind == PB_EMBEDDER_LOCAL) {
        float v[PB_EMBED_LOCAL_DIM];
        pb_embed_local(text, v);
        done(v, PB_EMBED_LOCAL_DIM, arg);
        return NULL;
    }
    pb_http_request *hr = pb_xcalloc(1, sizeof(*hr));
    hr->url = pb_xasprintf("%s/embeddings", e->prov->base_url);
    bool has_key = e->prov->api_key != NULL && e->prov->api_key[0] != '\0';
    if (pb_provider_add_header(hr, NULL, "Content-Type: application/json") != PB_OK ||
        (has_key &&
         pb_provider_add_header(hr, NULL, "Authorization: Bearer %s", e->prov->api_key) != PB_OK) ||
        pb_provider_add_conn(e->prov, hr, NULL) != PB_OK) {
        pb_http_request_free(hr);
        done(NULL, 0, arg);
        return NULL;
    }
    json_object *body = json_object_new_object();
    json_object_object_add(body, "model", json_object_new_string(e->model));
    json_object_object_add(body, "input", json_object_new_string(text));
    pb_provider_set_json_body(hr, body);
    pb_embed_call *c = pb_xcalloc(1, sizeof(*c));
    c->done = done;
    c->arg = arg;
    int connect = timeout_ms < 2000 ? timeout_ms : 2000;
    c->call = pb_http_start(e->http, hr, connect, timeout_ms, embed_on_http_done, c);
    return c;
}

void
pb_embed_cancel(pb_embed_call *c)
{
    if (c == NULL)
        return;
    pb_http_cancel(c->call);
    free(c);
}
