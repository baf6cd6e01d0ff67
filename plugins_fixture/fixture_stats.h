/*
 * fixture_stats.h - test hooks exported by every fixture plugin library.
 *
 * Each library keeps one process-wide block of counters, updated atomically
 * from any thread.  Tests read it with drasi_fixture_stats() and clear it with
 * drasi_fixture_reset_stats().  Every field is an int64_t so that the block can
 * be declared verbatim to cffi (ABI mode) or ctypes; new counters are only ever
 * appended.
 */
#ifndef DRASI_FIXTURE_STATS_H
#define DRASI_FIXTURE_STATS_H

/* cffi-strip-begin */
#include <stdint.h>
/* cffi-strip-end */

typedef struct DrasiFixtureStats {
    int64_t events_created;              /* source + bootstrap events built */
    int64_t events_released;             /* event drop_fn(opaque) calls */
    int64_t payloads_released;           /* payload blocks freed (DrasiPayload or opaque blob) */
    int64_t envelopes_pushed;            /* envelopes handed to a host push callback */
    int64_t receivers_dropped;           /* FfiChangeReceiver drop_fn calls */
    int64_t bootstrap_receivers_dropped; /* FfiBootstrapReceiver drop_fn calls */
    int64_t sources_dropped;             /* SourceVtable drop_fn calls */
    int64_t reactions_dropped;           /* ReactionVtable drop_fn calls */
    int64_t providers_dropped;           /* BootstrapProviderVtable drop_fn calls (own providers) */
    int64_t factories_dropped;           /* factory vtable drop_fn calls */
    int64_t results_received;            /* non-NULL results returned by the result callback */
    int64_t results_released;            /* payload->drop_fn calls on results */
    int64_t push_false_seen;             /* push callback returned false */
    int64_t late_calls_made;             /* host callbacks called after end of stream / drop */
    int64_t double_release_detected;     /* payload or event released twice */
    /* additional counters */
    int64_t payloads_created;            /* payload blocks allocated */
    int64_t sources_created;
    int64_t reactions_created;
    int64_t providers_created;
    int64_t receivers_created;           /* FfiChangeReceiver blocks handed out */
    int64_t bootstrap_receivers_created; /* FfiBootstrapReceiver blocks handed out */
    int64_t end_of_stream_sent;          /* push callback called with NULL */
    int64_t bootstrap_sends;             /* send_fn calls accepted (returned 0) by a sender */
    int64_t bootstrap_sends_rejected;    /* send_fn calls that returned non-zero */
    int64_t senders_dropped;             /* FfiBootstrapSender drop_fn calls (senders built here) */
    int64_t foreign_providers_dropped;   /* handed-over BootstrapProviderVtable released */
    int64_t state_stores_dropped;        /* StateStoreVtable drop_fn(state) calls */
    int64_t identity_providers_dropped;  /* IdentityProviderVtable drop_fn(state) calls */
    int64_t log_calls;                   /* log callback invocations */
    int64_t lifecycle_calls;             /* lifecycle callback invocations */
    int64_t results_invalid;             /* results whose bytes did not look like a JSON object */
    int64_t config_errors;               /* create_* refused because of a bad configuration */
} DrasiFixtureStats;

/* cffi-strip-begin */
#define DRASI_FIXTURE_STATS_COUNT (sizeof(DrasiFixtureStats) / sizeof(int64_t))
/* cffi-strip-end */

void drasi_fixture_stats(DrasiFixtureStats *out);
void drasi_fixture_reset_stats(void);

#endif /* DRASI_FIXTURE_STATS_H */
