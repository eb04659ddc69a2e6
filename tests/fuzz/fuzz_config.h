/* fuzz_config.h -- the config the job and front-door fuzz targets share (header-only).
 *
 * Small limits so the fuzzer reaches every bound quickly; two routes and two models so
 * route and model names in inputs have something to resolve to. */
#ifndef PLANB_FUZZ_CONFIG_H
#define PLANB_FUZZ_CONFIG_H

#include <stdlib.h>

#include "planb/config.h"

/* The shared config, parsed once (aborts if it does not parse: the target itself is broken). */
static inline const pb_config *
fuzz_config(void)
{
    static pb_config *cfg;
    if (cfg == NULL) {
        pb_error err = {0};
        cfg = pb_config_parse(
            "{\"providers\": {\"p\": {\"type\": \"openai\", \"base_url\": "
            "\"http://127.0.0.1:1/v1\"}},"
            " \"models\": {\"m1\": {\"provider\": \"p\"}, \"m2\": {\"provider\": \"p\", \"tier\": "
            "2}},"
            " \"routes\": {\"default\": {\"chain\": [\"m1\", \"m2\"]}, \"other\": {\"chain\": "
            "[\"m2\"]}}, \"limits\": {\"job_max_bytes\": 65536, \"max_messages\": 16, "
            "\"meta_max_bytes\": 1024, \"id_max_bytes\": 64}}",
            &err);
        if (cfg == NULL)
            abort();
    }
    return cfg;
}

#endif
