/* test_embed.c -- the local embedder's normalisation and determinism, the near-miss guard,
 * the http reply parser and the LSH codes. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "planb/embed.h"
#include "planb/semcache.h"

static double
cosine(const char *a, const char *b)
{
    float va[PB_EMBED_LOCAL_DIM], vb[PB_EMBED_LOCAL_DIM];
    pb_embed_local(a, va);
    pb_embed_local(b, vb);
    double d = 0;
    for (size_t i = 0; i < PB_EMBED_LOCAL_DIM; i++)
        d += (double)va[i] * vb[i];
    return d;
}

Test(embed, unit_length_and_empty_text)
{
    float v[PB_EMBED_LOCAL_DIM];
    pb_embed_local("How do I reset my password?", v);
    double n = 0;
    for (size_t i = 0; i < PB_EMBED_LOCAL_DIM; i++)
        n += (double)v[i] * v[i];
    cr_expect_float_eq(n, 1.0, 1e-5);
    pb_embed_local("?!... ,,", v);
    for (size_t i = 0; i < PB_EMBED_LOCAL_DIM; i++)
        cr_assert_eq(v[i], 0.0f);
}

Test(embed, case_punctuation_accents_and_contractions_normalise)
{
    cr_expect_float_eq(cosine("HOW DO I CANCEL MY ORDER", "how do i cancel my order?"), 1.0, 1e-5);
    cr_expect_float_eq(cosine("Où est ma commande ?", "Ou est ma commande"), 1.0, 1e-5);
    cr_expect_float_eq(cosine("Ｈｅｌｌｏ ｗｏｒｌｄ", "hello world"), 1.0, 1e-5);
    cr_expect_float_eq(cosine("I can't log in", "I cannot log in"), 1.0, 1e-5);
    cr_expect_float_eq(cosine("three items", "3 items"), 1.0, 1e-5);
    cr_expect(cosine("How do I delete my account?", "How can I remove my account?") > 0.9,
              "synonyms and stems meet");
    cr_expect(cosine("How do I delete my account?", "What is the capital of France?") < 0.2);
}

Test(embed, deterministic_bits)
{
    /* The same text must give the same vector on every host: pin a few values. */
    float a[PB_EMBED_LOCAL_DIM], b[PB_EMBED_LOCAL_DIM];
    pb_embed_local("Where is my parcel?", a);
    pb_embed_local("Where is my parcel?", b);
    cr_expect_eq(memcmp(a, b, sizeof(a)), 0);
    unsigned c1[PB_SEMCACHE_TABLES], p1[PB_SEMCACHE_TABLES], c2[PB_SEMCACHE_TABLES],
        p2[PB_SEMCACHE_TABLES];
    pb_semcache_codes(a, PB_EMBED_LOCAL_DIM, c1, p1);
    pb_semcache_codes(b, PB_EMBED_LOCAL_DIM, c2, p2);
    for (int t = 0; t < PB_SEMCACHE_TABLES; t++) {
        cr_expect_eq(c1[t], c2[t]);
        cr_expect_lt(c1[t], 1u << PB_SEMCACHE_BITS);
        cr_expect_eq(__builtin_popcount(c1[t] ^ p1[t]), 1, "a probe flips one bit");
    }
}

Test(embed, similar_vectors_share_buckets)
{
    float a[PB_EMBED_LOCAL_DIM], b[PB_EMBED_LOCAL_DIM], c[PB_EMBED_LOCAL_DIM];
    pb_embed_local("How do I book a flight?", a);
    pb_embed_local("How can I book a flight?", b);
    pb_embed_local("What is the boiling point of water?", c);
    unsigned ca[16], pa[16], cb[16], pb[16], cc[16], pc[16];
    pb_semcache_codes(a, PB_EMBED_LOCAL_DIM, ca, pa);
    pb_semcache_codes(b, PB_EMBED_LOCAL_DIM, cb, pb);
    pb_semcache_codes(c, PB_EMBED_LOCAL_DIM, cc, pc);
    int same_ab = 0, same_ac = 0;
    for (int t = 0; t < PB_SEMCACHE_TABLES; t++) {
        same_ab += ca[t] == cb[t];
        same_ac += ca[t] == cc[t];
    }
    cr_expect_geq(same_ab, 8, "paraphrases collide in most tables (%d)", same_ab);
    cr_expect_leq(same_ac, 1, "unrelated questions almost never do (%d)", same_ac);
}

Test(embed, guard_rejects_near_misses)
{
    const char *why = NULL;
    cr_expect(pb_embed_guard("How do I delete my account?", "How can I remove my account?", &why));
    cr_expect_null(why);
    cr_expect_not(pb_embed_guard("Is it waterproof?", "Is it not waterproof?", &why));
    cr_expect_str_eq(why, "negation");
    cr_expect_not(pb_embed_guard("Do you have size 8?", "Do you have size 10?", &why));
    cr_expect_str_eq(why, "number");
    cr_expect_not(pb_embed_guard("Do you deliver on Sunday?", "Do you deliver on monday?", &why));
    cr_expect_str_eq(why, "entity");
    cr_expect_not(
        pb_embed_guard("How do I turn on dark mode?", "How do I turn off dark mode?", &why));
    cr_expect_str_eq(why, "opposite");
    cr_expect_not(pb_embed_guard("How do I cancel my order?", "How do I place my order?", &why));
    cr_expect_str_eq(why, "opposite");
    cr_expect_not(pb_embed_guard("Convert USD to EUR", "Convert EUR to USD", &why));
    cr_expect_str_eq(why, "order");
    /* An entity typed in lower case on one side is still the same entity. */
    cr_expect(pb_embed_guard("Is the Berlin store open?", "is the berlin store open", &why));
}

Test(embed, hostile_input_is_bounded)
{
    static char big[100000];
    memset(big, 'a', sizeof(big) - 1);
    float v[PB_EMBED_LOCAL_DIM];
    pb_embed_local(big, v);
    pb_embed_local("\xff\xfe\xc3\x28 broken \xe2\x82 utf8", v);
    const char *why;
    pb_embed_guard(big, "\xff\xff", &why);
    for (size_t i = 0; i < sizeof(big) - 1; i += 2)
        big[i] = ' ';
    pb_embed_local(big, v);
}

Test(embed, parses_openai_embedding_replies)
{
    size_t dim = 0;
    const char *ok = "{\"data\":[{\"embedding\":[3,4]}]}";
    float *v = pb_embed_parse_reply(ok, strlen(ok), &dim);
    cr_assert_not_null(v);
    cr_expect_eq(dim, 2);
    cr_expect_float_eq(v[0], 0.6f, 1e-6);
    cr_expect_float_eq(v[1], 0.8f, 1e-6);
    free(v);
    const char *bad[] = {"",
                         "{}",
                         "{\"data\":[]}",
                         "{\"data\":[{\"embedding\":[]}]}",
                         "{\"data\":[{\"embedding\":[0,0]}]}",
                         "{\"data\":[{\"embedding\":[1,\"x\"]}]}",
                         "[1,2]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_null(pb_embed_parse_reply(bad[i], strlen(bad[i]), &dim), "%s", bad[i]);
}
