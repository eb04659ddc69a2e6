/* provider_openai.h -- what other dialects reuse of the OpenAI one (provider_openai.c).
 *
 * Azure OpenAI (provider_azure.c) sends OpenAI's Chat Completions body to
 * other URLs with other headers; the body is built in one place. */
#ifndef PLANB_PROVIDER_OPENAI_H
#define PLANB_PROVIDER_OPENAI_H

#include "planb/config.h"
#include "planb/http.h"
#include "planb/request.h"

/* Sets out->body / body_len to the Chat Completions body for req on model m ("model" is
 * m's upstream name; "stream" and stream_options.include_usage when req streams). */
void pb_provider_openai_body(const pb_model_conf *m, const pb_request *req, pb_http_request *out);

#endif
