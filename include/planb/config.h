/* config.h -- planb.json parsed, validated and defaulted into plain structs.
 *
 * The only module that reads API keys and the Redis password from the
 * environment. Models and routes refer to each other by index. Every
 * validation error names the field and why: `routes.default.chain[1]: unknown model "claude"`. */
#ifndef PLANB_CONFIG_H
#define PLANB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "planb/core.h"
#include "planb/request.h"

/* The longest fallback chain: a route's "chain" and a job's "models" (each model costs at
 * least one attempt within one deadline, so longer chains only add latency). */
#define PB_CONFIG_MAX_CHAIN 16
/* redis.sentinels: Sentinel deployments run 3 or 5; more only slows a failed discovery. */
#define PB_CONFIG_MAX_SENTINELS 16
/* providers.<name>.headers: a gateway wants a key and an org or two, not a page of them. */
#define PB_CONFIG_MAX_HEADERS 32

typedef enum {
    PB_PROVIDER_OPENAI,
    PB_PROVIDER_ANTHROPIC,
    PB_PROVIDER_AZURE,
    PB_PROVIDER_GEMINI,
    PB_PROVIDER_BEDROCK
} pb_provider_type;

/* A client's TLS settings: redis.tls, cache.redis.tls, redis.sentinel_tls (docs/redis.md
 * "TLS"). Paths are read when a connection's TLS context is made (tls.h), so a SIGHUP that
 * starts new workers picks up rotated files. */
typedef struct pb_tls_conf {
    bool on;           /* TLS is used: a rediss:// URL, or sentinel_tls given */
    char *ca_file;     /* PEM bundle of trusted CAs; NULL with ca_dir NULL: the system store */
    char *ca_dir;      /* c_rehash'ed directory of CA certificates */
    char *cert_file;   /* client certificate chain (mutual TLS), with key_file */
    char *key_file;    /* its private key */
    char *server_name; /* SNI and the name the certificate must hold; NULL: the host's */
    bool verify;       /* check the chain and the name (default true; false is warned about) */
    int min_version;   /* 12 (TLS 1.2, default) or 13 */
} pb_tls_conf;

typedef struct pb_provider_conf {
    char *name;              /* key in "providers" */
    pb_provider_type type;   /* "openai" (any OpenAI-compatible server), "anthropic", "azure" */
    char *base_url;          /* e.g. https://api.openai.com/v1, no trailing slash */
    char *api_key_env;       /* env var holding the key (may be NULL: no auth) */
    char *api_key;           /* value read at load; never logged, stored or echoed */
    char *anthropic_version; /* anthropic-version header, default "2023-06-01" */
    /* How calls reach it (docs/providers.md): files checked with OpenSSL at load */
    char *ca_file;    /* PEM bundle of CAs its certificate must chain to; NULL: system store */
    char *cert_file;  /* client certificate chain (mutual TLS), with key_file; NULL: none */
    char *key_file;   /* its private key (unencrypted PEM) */
    char *proxy;      /* http(s):// proxy URL, may hold credentials (never logged); NULL:
                         libcurl's environment (https_proxy, no_proxy...) decides */
    char **headers;   /* extra "Name: value" lines, NULL-terminated (values never logged) */
    size_t n_headers; /* 0..PB_CONFIG_MAX_HEADERS */
    char *query;      /* "a=1&b=2", URL-encoded, appended to every request's URL; NULL: none */
    /* type "azure" (docs/providers.md "Azure OpenAI") */
    char *api_version;      /* deployment API's api-version; NULL: the v1 API */
    char *bearer_token_env; /* env var of a token sent as Bearer: an Entra ID token (azure, instead
                               of api-key) or a Bedrock API key (bedrock, instead of SigV4) */
    char *bearer_token;     /* its value read at load; never logged, stored or echoed */
    /* type "bedrock" (docs/providers.md "Amazon Bedrock"): SigV4 unless bearer_token_env */
    char *region;                /* "us-east-1": the signature's scope and the default base_url */
    char *aws_access_key_id_env; /* env var names (default AWS_ACCESS_KEY_ID, ...) */
    char *aws_secret_access_key_env;
    char *aws_session_token_env;
    char *aws_access_key_id; /* their values read at load; never logged, stored or echoed */
    char *aws_secret_access_key;
    char *aws_session_token; /* NULL: long-term keys, no x-amz-security-token */
} pb_provider_conf;

typedef struct pb_model_conf {
    char *name;               /* key in "models": the name in jobs, results, stats */
    char *upstream;           /* "model" sent upstream; defaults to name */
    int provider;             /* index into pb_config.providers */
    int tier;                 /* 1 = best; a critical job refuses tiers above the route's floor */
    int timeout_ms;           /* per attempt, whole request (default 10000) */
    int connect_timeout_ms;   /* per attempt, TCP+TLS connect (default 2000, <= timeout_ms) */
    int first_token_ms;       /* streamed: first content chunk within this (default timeout_ms) */
    int idle_ms;              /* streamed: no content chunk for this ends it (default timeout_ms) */
    int max_tokens_default;   /* sent when the job gives none (Anthropic needs one; default 1024) */
    int rpm;                  /* requests per minute across all workers and hosts (0 = no limit) */
    int64_t tpm;              /* tokens per minute (prompt + completion), 0 = no limit */
    unsigned capabilities;    /* PB_CAP_* bits (request.h); default per provider type */
    double price_in_per_mtok; /* USD per million prompt tokens; < 0 = not configured */
    double price_out_per_mtok; /* USD per million completion tokens; < 0 = not configured */
} pb_model_conf;

typedef struct pb_route_conf {
    char *name;             /* key in "routes" */
    int *chain;             /* model indices, primary first */
    size_t chain_len;       /* >= 1 */
    int retries;            /* extra tries per model for retryable outcomes (default 2) */
    int backoff_ms;         /* base of exponential backoff (default 250) */
    int backoff_max_ms;     /* cap of one backoff (default 4000) */
    int deadline_ms;        /* whole-job deadline when the job gives none (default 30000) */
    int critical_min_tier;  /* critical jobs use only models with tier <= this (0 = no floor) */
    char *degraded_reply;   /* content of a degraded result */
    bool semantic_critical; /* critical jobs may be answered from the semantic cache */
    int hedge_after_ms;     /* start the next model beside a call this slow (0 = no hedging) */
    bool hedge_adaptive;    /* hedge after the model's recent p95 (>= hedge_after_ms; none until
                               the worker has 32 answers of it) */
    bool stream_continue;   /* a stream cut after its first token is continued by the next
                               model (prose only) instead of ending cut */
    bool semantic_tools;    /* jobs with tools/response_format and tool-call answers may use
                               the semantic cache */
} pb_route_conf;

typedef struct pb_limits {
    size_t job_max_bytes;   /* raw job size (default 1 MiB) */
    size_t max_messages;    /* messages per job (default 256) */
    size_t reply_max_bytes; /* upstream reply body; a streamed one's decoded answer (4 MiB) */
    size_t meta_max_bytes;  /* serialized meta (default 16 KiB) */
    size_t id_max_bytes;    /* job id length (default 128) */

    size_t dead_max_entries;     /* planb:dead length bound, newest kept (default 10000) */
    size_t stream_raw_max_bytes; /* a streamed reply's raw bytes, SSE framing and all (default
                                    64 x reply_max_bytes) */
} pb_limits;

/* One entry of http.keys: a bearer key of the front door, known only by its SHA-256. */
typedef struct pb_http_key {
    char *name;               /* shows in logs and the rpm counter's key; never the key */
    char *tenant;             /* the jobs' tenant (NULL: none) */
    unsigned char sha256[32]; /* SHA-256 of the key text */
    int rpm;                  /* requests per minute across all fronts (0 = no limit) */
    int concurrency;          /* requests in progress at once on one front (0 = no limit) */
} pb_http_key;

/* The http section: the OpenAI-compatible front door (front.h). */
typedef struct pb_http_conf {
    char *listen;            /* "host:port"; NULL = no front door */
    int queue;               /* index into queues of the queue its jobs go on */
    int max_connections;     /* client connections held at once (default 10000) */
    size_t max_body_bytes;   /* request body (default limits.job_max_bytes) */
    size_t max_header_bytes; /* request line + headers (default 16384) */
    int client_timeout_ms;   /* reading a request, writing a reply (default 30000) */
    int max_queue;           /* queue depth at which new requests get 503 (default 100000) */
    int wait_grace_ms;       /* waits past the job's deadline before giving up (10000) */
    pb_http_key *keys;       /* NULL/0: the front asks for no key */
    size_t n_keys;
    bool tenant_header;          /* x-planb-tenant names the tenant of a key without one (default:
                                    only when no keys are configured) */
    int request_read_timeout_ms; /* a request's head and body, from its first byte (60000) */
    size_t max_bodies_bytes;     /* bodies being read at once, all connections (256 MiB) */
    char *tls_cert_file;         /* http.tls: HTTPS with this certificate chain (PEM), read by
                                    each front at its start; NULL: plain HTTP */
    char *tls_key_file;          /* its private key (unencrypted PEM), with tls_cert_file */
} pb_http_conf;

/* One entry of admin.keys: a key of the admin page and API, known only by its SHA-256. */
typedef enum { PB_ADMIN_VIEWER, PB_ADMIN_ADMIN } pb_admin_role;
typedef struct pb_admin_key {
    char *name;               /* who did an action (logs, planb:alerts); never the key */
    pb_admin_role role;       /* viewer: read only; admin: also the actions */
    unsigned char sha256[32]; /* SHA-256 of the key text */
} pb_admin_key;

/* The admin section: the operators' page and JSON API (admin.h). */
typedef struct pb_admin_conf {
    char *listen;       /* "host:port"; NULL = off */
    pb_admin_key *keys; /* none: only a loopback listen is allowed, and it asks for no key */
    size_t n_keys;
    char *web_dir;     /* the page's files (NULL: found beside the binary, or the source tree) */
    int refresh_ms;    /* how often the overview is read from Redis, whatever the viewers (2000) */
    int session_ttl_s; /* a login's lifetime (43200) */
} pb_admin_conf;

typedef enum { PB_EMBEDDER_LOCAL, PB_EMBEDDER_HTTP } pb_embedder_kind;
typedef enum { PB_SEMANTIC_FALLBACK, PB_SEMANTIC_FIRST, PB_SEMANTIC_SHADOW } pb_semantic_mode;

/* Default cosine threshold of the local embedder, chosen on tests/fixtures/semantic
 * (docs/cache.md). */
#define PB_SEMANTIC_LOCAL_THRESHOLD 0.82

/* cache.semantic (docs/cache.md "Semantic cache"). */
typedef struct pb_semantic_conf {
    bool enabled;              /* default false */
    double threshold;          /* cosine a hit needs (default per embedder, see docs/cache.md) */
    pb_embedder_kind embedder; /* "local" (default) | "http" */
    pb_semantic_mode mode;     /* "fallback" (default) | "first" | "shadow" */
    int provider;              /* http: index of an openai-type provider, else -1 */
    char *model;               /* http: embedding model name sent upstream */
    int timeout_ms;            /* http embed call + index lookup bound (default 1000) */
    int max_entries;           /* index size bound, oldest evicted (default 100000) */
    double shadow_sample;      /* shadow: share of would-be hits sampled to the list (default 1) */
} pb_semantic_conf;

/* telemetry: OpenTelemetry traces over OTLP/HTTP (docs/telemetry.md). Off without an
 * endpoint. */
typedef struct pb_telemetry_conf {
    char *traces_url;      /* otlp_endpoint + "/v1/traces"; NULL = tracing off */
    char **headers;        /* "Name: value" lines sent with each export (values never logged) */
    size_t n_headers;      /* 0..PB_CONFIG_MAX_HEADERS */
    bool protobuf;         /* encoding "protobuf" (application/x-protobuf); false = "json" */
    double sample;         /* share of traces kept, parent-based (default 1) */
    bool keep_fallbacks;   /* keep every job that fell back or degraded (default true) */
    bool capture_content;  /* record messages and answers, bounded (default false) */
    int max_queue_spans;   /* spans waiting per worker; more are dropped (default 8192) */
    int batch_spans;       /* spans per export request (default 512) */
    int batch_interval_ms; /* a partial batch leaves after this (default 1000) */
    int timeout_ms;        /* bound of one export request (default 10000) */
    char *service_name;    /* resource service.name (default "planb") */
} pb_telemetry_conf;

typedef struct pb_config {
    char *path;       /* file it was loaded from (NULL for strings) */
    char *redis_url;  /* redis://[user[:pass]@]host:port[/db] */
    char *redis_host; /* parsed from redis_url */
    int redis_port;
    int redis_db;
    char *redis_user;      /* ACL user or NULL */
    char *redis_password;  /* from password_env or the URL; never logged */
    pb_tls_conf redis_tls; /* rediss:// and redis.tls */
    char *prefix;          /* key prefix, default "planb" */
    int workers;           /* worker processes (default: CPUs) */
    int concurrency;       /* jobs in flight per worker (default 512) */
    char **queues;         /* queue names, default {"default"} */
    size_t n_queues;
    int result_ttl_s;     /* planb:result:<id> TTL (default 86400) */
    int reply_ttl_s;      /* planb:reply:<id> TTL (default 300) */
    int claim_batch;      /* jobs claimed per round trip when the queue is deep (64) */
    int drain_timeout_ms; /* SIGTERM grace before hand-back (default 30000) */
    int lease_ms;         /* a worker silent this long is dead (default 10000) */
    int max_deliveries;   /* hand-backs before dead-lettering (default 5) */
    int events_maxlen;    /* planb:events stream length, approximate (default 100000, 0 = off) */
    int stream_maxlen;    /* entries of one planb:stream:<id>, approximate (default 10000) */
    int stream_ttl_s;     /* planb:stream:<id> TTL after its last entry (default 300) */
    pb_limits limits;
    pb_provider_conf *providers;
    size_t n_providers;
    pb_model_conf *models;
    size_t n_models;
    pb_route_conf *routes;
    size_t n_routes;
    int default_route;             /* index of "default" route, or 0 */
    int cache_ttl_s;               /* exact cache TTL (default 86400) */
    int cache_stale_if_error_s;    /* kept past TTL for stale answers (default 604800) */
    struct pb_config *cache_redis; /* cache.redis: only its redis_* fields are set (what
                                      pb_redis_new reads); NULL = the queue's Redis */
    int breaker_failures;          /* 0 turns breakers off; the default of consecutive (5) */
    int breaker_window_s;          /* the sliding window of the rates (default 30) */
    int breaker_open_s;            /* the first open time before a probe (default 30) */
    double breaker_failure_rate;   /* share of failed calls in the window that opens (0.5) */
    int breaker_min_calls;         /* calls the window needs before a rate counts (20) */
    int breaker_consecutive;       /* failures in a row that open it (failures; 0 = no rule) */
    int breaker_slow_call_ms;      /* a call this slow counts as slow (10000; 0 = no rule) */
    double breaker_slow_call_rate; /* share of slow calls in the window that opens (0.5) */
    int breaker_half_open_calls;   /* probes let through, all must succeed to close (1) */
    int breaker_max_open_s;        /* cap of the open time, doubled per failed probe (300) */
    int breaker_max_hold_s;        /* cap of a shared Retry-After hold (60) */
    int breaker_refused_hold_s;    /* a 401/403 skips the model this long everywhere (60) */
    int stats_interval_s;          /* planb:stats snapshot period (default 10) */
    double alert_fallback_rate;    /* 5-minute fallback rate that raises an alert (default 0.2) */
    char *metrics_listen;          /* "host:port" of GET /metrics; NULL = disabled ("") */
    pb_semantic_conf semantic;     /* cache.semantic */
    pb_http_conf http;             /* the front door */
    pb_admin_conf admin;           /* the operators' page and API */
    pb_telemetry_conf telemetry;   /* traces (telemetry.c) */

    /* redis.sentinels and the bounds of Redis calls (docs/redis.md "When Redis misbehaves") */
    char **sentinel_hosts;    /* hosts of redis.sentinels (NULL: no Sentinel, use redis_host) */
    int *sentinel_ports;      /* their ports */
    size_t n_sentinels;       /* 0..PB_CONFIG_MAX_SENTINELS */
    char *master_name;        /* redis.master_name, required with sentinels */
    char *sentinel_password;  /* from sentinel_password_env; never logged */
    char *sentinel_user;      /* redis.sentinel_user: ACL user of the sentinels, or NULL */
    pb_tls_conf sentinel_tls; /* redis.sentinel_tls (on = false: plain TCP to the sentinels) */
    int redis_timeout_ms;     /* bound of one Redis call on a job's path (default 1000) */
    int wait_replicas;        /* WAIT for this many replicas after claim and finish (0 = no) */
    int wait_timeout_ms;      /* WAIT's timeout (default 1000) */
} pb_config;

/* The capabilities a model of provider type t has unless its config says otherwise. */
unsigned pb_config_default_capabilities(pb_provider_type t);

/* Loads and validates a config file; NULL with err filled ("CONFIG <field>: <why>"). Caller frees.
 */
pb_config *pb_config_load(const char *path, pb_error *err);
/* Same, from a JSON string (tests). */
pb_config *pb_config_parse(const char *json, pb_error *err);
void pb_config_free(pb_config *cfg);

/* Calls fn once per setting the parser accepts, as a dotted path: "breaker.consecutive",
 * "models.<name>.timeout_ms", "http.keys[].sha256" (sections themselves are not named). The
 * names come from the parser's own key tables (docs/config.md is tested against them). */
void pb_config_each_key(void (*fn)(const char *key, void *arg), void *arg);

/* Index of a model/route by name, or -1. */
int pb_config_model_index(const pb_config *cfg, const char *name);
int pb_config_route_index(const pb_config *cfg, const char *name);

#endif
