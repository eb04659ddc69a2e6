/* fuzz_sigv4.c -- libFuzzer target: any bytes as a signed request received by planb-mock.
 *
 * The mock checks Bedrock requests with pb_sigv4_verify, so an Authorization header, path,
 * query and body from the network must be refused or accepted, never crash or overrun. The
 * input is cut at its first three NULs into Authorization, path, query and body; the same
 * request is then signed properly and must verify, and with its body changed must not.
 * Seed corpus: tests/fixtures/sigv4. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "planb/sigv4.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_KEY_ID "AKIDEXAMPLE"
#define FUZZ_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    memcpy(copy, data, size);
    copy[size] = '\0';
    /* Authorization, path and query end at a NUL; the body is the rest (NULs and all). */
    const char *part[3] = {copy, "", ""};
    char *at = copy, *end = copy + size;
    const char *body = "";
    size_t body_len = 0;
    for (int i = 1; i <= 3; i++) {
        char *nul = memchr(at, '\0', (size_t)(end - at));
        if (!nul)
            break;
        at = nul + 1;
        if (i < 3) {
            part[i] = at;
        } else {
            body = at;
            body_len = (size_t)(end - at);
        }
    }
    pb_sigv4_header h[] = {{"Host", "bedrock-runtime.us-east-1.amazonaws.com"},
                           {"X-Amz-Date", "20240620T120000Z"},
                           {"Content-Type", "application/json"},
                           {"Authorization", part[0]}};
    pb_sigv4_received r = {.method = "POST",
                           .path = part[1],
                           .query = part[2],
                           .headers = h,
                           .n_headers = 4,
                           .body = body,
                           .body_len = body_len};
    pb_sigv4_verify(&r, "us-east-1", "bedrock", FUZZ_KEY_ID, FUZZ_SECRET, NULL, NULL);

    pb_sigv4_request req = {.method = "POST",
                            .host = h[0].value,
                            .path = part[1],
                            .query = part[2],
                            .headers = &h[2],
                            .n_headers = 1,
                            .body = body,
                            .body_len = body_len,
                            .region = "us-east-1",
                            .service = "bedrock",
                            .access_key_id = FUZZ_KEY_ID,
                            .secret_access_key = FUZZ_SECRET,
                            .amz_date = h[1].value};
    pb_sigv4_signed s;
    if (pb_sigv4_sign(&req, &s, NULL) == PB_OK) {
        h[3].value = s.authorization;
        if (pb_sigv4_verify(&r, "us-east-1", "bedrock", FUZZ_KEY_ID, FUZZ_SECRET, NULL, NULL) !=
            PB_OK)
            abort(); /* what was signed must verify */
        r.body = "changed";
        r.body_len = 7;
        if (body_len != 7 || memcmp(body, "changed", 7) != 0)
            if (pb_sigv4_verify(&r, "us-east-1", "bedrock", FUZZ_KEY_ID, FUZZ_SECRET, NULL, NULL) ==
                PB_OK)
                abort(); /* nor may a changed body */
        pb_sigv4_signed_free(&s);
    }
    free(copy);
    return 0;
}
