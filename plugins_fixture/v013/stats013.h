/*
 * stats013.h - test hooks exported by every FFI 0.13 fixture library.
 *
 * One process-wide block of int64_t counters per library, updated atomically
 * from any thread; read with drasi_fixture013_stats(), cleared with
 * drasi_fixture013_reset_stats().  drasi_fixture013_join_threads() waits for
 * every thread the library started (a test host calls it before exit so that
 * nothing is left running).  Declarable verbatim to cffi; counters are only
 * ever appended.
 */
#ifndef DRASI_FIXTURE013_STATS_H
#define DRASI_FIXTURE013_STATS_H

/* cffi-strip-begin */
#include <stdint.h>
/* cffi-strip-end */

typedef struct DrasiFixture013Stats {
    int64_t payloads_created;        /* MessagePack buffers handed to the host */
    int64_t payloads_released;       /* payload drop fn calls on those buffers */
    int64_t events_pushed;           /* envelopes passed to a push callback */
    int64_t end_of_stream_sent;      /* push callback called with NULL */
    int64_t push_false_seen;         /* push callback returned false */
    int64_t results_received;        /* non-NULL FfiQueryResult taken by a reaction */
    int64_t results_decoded;         /* of those, valid QueryResult documents */
    int64_t results_invalid;         /* of those, undecodable or oversize */
    int64_t result_diffs;            /* ResultDiff entries in the decoded results */
    int64_t exit_sentinels_sent;     /* final result-push calls with sentinel != NULL */
    int64_t bootstrap_results_sent;  /* FfiBootstrapResult callbacks (NULL or not) */
    int64_t objects_created;         /* sources, reactions, providers, stores */
    int64_t objects_dropped;         /* their drop_fn calls */
    int64_t receivers_created;       /* change/bootstrap/result receivers handed out */
    int64_t receivers_dropped;       /* their drop_fn calls */
    int64_t factories_dropped;       /* factory vtable drop_fn calls */
    int64_t identity_states_alive;   /* identity states made here (create, clone) - drops */
    int64_t credentials_served;      /* get_credentials_fn successes */
    int64_t secrets_served;          /* get_secret_fn successes */
    int64_t secret_errors;           /* get_secret_fn failures returned with text */
    int64_t resolver_calls;          /* config resolver callback calls made */
    int64_t resolver_failures;       /* of those, error results */
    int64_t log_level;               /* last set_log_level value (-1 = never set) */
    int64_t logs_emitted;            /* records passed to a log callback */
    int64_t logs_filtered;           /* records dropped by the level filter */
    int64_t lifecycle_calls;         /* lifecycle callback calls */
    int64_t foreign_identity_dropped;/* host identity states dropped by a component */
    int64_t foreign_identity_calls;  /* host get_credentials_fn calls that succeeded */
    int64_t state_store_ops;         /* host state store calls that succeeded */
    int64_t providers_adopted;       /* BootstrapProviderVtable taken by set_bootstrap_provider_fn */
    int64_t threads_started;
    int64_t threads_finished;
    int64_t result_bytes;            /* payload bytes of the decoded results */
    int64_t result_fnv1a;            /* FNV-1a 64 over those bytes, chained over the
                                        results of the reaction that decoded last */
} DrasiFixture013Stats;

void drasi_fixture013_stats(DrasiFixture013Stats *out);
void drasi_fixture013_reset_stats(void);
void drasi_fixture013_join_threads(void);

#endif
