/* gemini.h -- what Google's Gemini API (generateContent) accepts and answers, for planb-mock
 * (private; dialect.c dispatches here). Pure functions, like dialect.h's. */
#ifndef PLANB_MOCK_GEMINI_H
#define PLANB_MOCK_GEMINI_H

#include "dialect.h"

/* Checks r as the real API would: 0, or the status to answer with err->msg saying why. */
int pb_mock_gemini_validate(const pb_mock_request *r, pb_error *err);
/* A GenerateContentResponse answering valid r (see pb_mock_dialect_reply). Caller frees. */
char *pb_mock_gemini_reply(const pb_mock_request *r, pb_mock_body_kind kind, const char *text,
                           unsigned long id, size_t pad_to, size_t *len);
/* Fills s with the alt=sse stream of the same answer: a chunk per piece, the finishReason in
 * the last (the END event: Gemini has no terminator). */
void pb_mock_gemini_stream(pb_mock_stream *s, const pb_mock_request *r, pb_mock_body_kind kind,
                           const char *text, unsigned long id);
/* {"error": {code, message, status}} for status (status_name NULL: the usual one), as an SSE
 * event when sse. Caller frees. */
char *pb_mock_gemini_error(int status, const char *status_name, const char *message, bool sse,
                           size_t *len);

#endif
