/* bedrock.h -- what Amazon Bedrock's Converse API accepts and answers, for planb-mock
 * (private; dialect.c and main.c call here). Pure functions, like dialect.h's. */
#ifndef PLANB_MOCK_BEDROCK_H
#define PLANB_MOCK_BEDROCK_H

#include "dialect.h"
#include "planb/sigv4.h"

/* Checks the request's authentication as Bedrock does, before its body: a Bearer token (a
 * Bedrock API key), or a SigV4 signature by key_id with secret over exactly what arrived
 * (the region is the credential scope's). 0, or 403 with *type the exception's name
 * (MissingAuthenticationTokenException, UnrecognizedClientException,
 * InvalidSignatureException) and err->msg AWS's text. */
int pb_mock_bedrock_authorize(const pb_sigv4_received *rcv, const char *authorization,
                              const char *key_id, const char *secret, const char **type,
                              pb_error *err);
/* Checks r's Converse body as the real API would: 0, or 400 (ValidationException) with
 * err->msg saying why. */
int pb_mock_bedrock_validate(const pb_mock_request *r, pb_error *err);
/* A ConverseResponse answering valid r (see pb_mock_dialect_reply). Caller frees. */
char *pb_mock_bedrock_reply(const pb_mock_request *r, pb_mock_body_kind kind, const char *text,
                            unsigned long id, size_t pad_to, size_t *len);
/* Fills s with the ConverseStream answer in event-stream frames: messageStart, text pieces or
 * toolUse starts and input pieces, contentBlockStop, messageStop (the END event), metadata. */
void pb_mock_bedrock_stream(pb_mock_stream *s, const pb_mock_request *r, pb_mock_body_kind kind,
                            const char *text, unsigned long id);
/* The exception's name for an error answer: type when set, else Bedrock's for status. */
const char *pb_mock_bedrock_error_type(int status, const char *type);
/* {"message": ...} (message NULL: a generic one). Caller frees. */
char *pb_mock_bedrock_error(int status, const char *type, const char *message, size_t *len);
/* A stream's exception frame (type NULL: modelStreamErrorException). Caller frees. */
char *pb_mock_bedrock_stream_error(const char *type, const char *message, size_t *len);
/* A contentBlockDelta frame whose message CRC is wrong (static). */
const char *pb_mock_bedrock_stream_malformed(size_t *len);
/* Recomputes the message CRC of the n-byte frame at p after its payload was rewritten in
 * place (the send-time stamp), so the frame stays valid. */
void pb_mock_bedrock_reseal(char *p, size_t n);

#endif
