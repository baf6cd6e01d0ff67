/* bootstrap013.c - push-based bootstrap runs (ABI-0.13.md section 9) and the
 * bootstrap provider factory FX13_PREFIX "-bootstrap".
 *
 * Provider config: {"count": N, "mode": M}.  Modes: "fail" (create error
 * text), "nullptr" (create succeeds with NULL), "nullstream" (bootstrap_fn
 * returns NULL), "halfstream" (stream without an events receiver),
 * "bootfail" (result -1 with error text), "noresult" (result callback gets
 * NULL), "wrongtags" / "badmsgpack" / "oversize" / "nulldrop" /
 * "nullpayload" (one hostile record first, then N good ones).
 */
#define _POSIX_C_SOURCE 200809L
#include "fx013.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct Fx13Run {
    _Atomic int refs;
    pthread_mutex_t lock;
    char *source_id;
    int64_t count;
    char mode[32];
    _Atomic bool stop;
    bool events_started, events_done, result_started, result_delivered;
    int64_t sent;
    FfiBootstrapPushCallbackFn cb;
    void *cb_ctx;
    FfiBootstrapResultCallbackFn rcb;
    void *rctx;
} Fx13Run;

static void run_unref(Fx13Run *run)
{
    if (atomic_fetch_sub(&run->refs, 1) == 1) {
        pthread_mutex_destroy(&run->lock);
        free(run->source_id);
        free(run);
    }
}

static void run_deliver(Fx13Run *run)
{
    FX13_ADD(bootstrap_results_sent, 1); /* counted before the host can see it */
    if (FX13_MODE_IS(run->mode, "noresult")) {
        run->rcb(run->rctx, NULL);
        return;
    }
    FfiBootstrapResult *res = calloc(1, sizeof *res);
    if (res == NULL) {
        run->rcb(run->rctx, NULL);
        return;
    }
    if (FX13_MODE_IS(run->mode, "bootfail")) {
        char *text = fx13_printf("fixture013 bootstrap failed: %s", "source unavailable");
        res->event_count = -1;
        if (text != NULL) {
            FX13_ADD(payloads_created, 1);
            res->error_ptr = (const uint8_t *)text;
            res->error_len = strlen(text);
            res->error_drop_fn = fx13_payload_drop;
        }
    } else {
        uint8_t *pos = malloc(2);
        res->event_count = run->sent;
        if (pos != NULL) {
            FX13_ADD(payloads_created, 1);
            pos[0] = 0xaa;
            pos[1] = (uint8_t)run->sent;
            res->source_position_ptr = pos;
            res->source_position_len = 2;
            res->source_position_drop_fn = fx13_payload_drop;
        }
    }
    run->rcb(run->rctx, res);
}

static void *run_deliver_thread(void *raw)
{
    Fx13Run *run = raw;
    run_deliver(run);
    run_unref(run);
    return NULL;
}

/* Called once the events side is over: deliver the result if it is awaited. */
static void run_events_over(Fx13Run *run, bool in_plugin_thread)
{
    bool deliver = false;
    pthread_mutex_lock(&run->lock);
    run->events_done = true;
    if (run->result_started && !run->result_delivered)
        deliver = run->result_delivered = true;
    pthread_mutex_unlock(&run->lock);
    if (!deliver)
        return;
    if (in_plugin_thread) {
        run_deliver(run);
        return;
    }
    atomic_fetch_add(&run->refs, 1);
    if (!fx13_spawn(run_deliver_thread, run)) {
        run_deliver(run);
        run_unref(run);
    }
}

static bool run_push(Fx13Run *run, const uint8_t *ptr, size_t len, FfiBytesDropFn drop,
                     int64_t seq)
{
    FfiBootstrapEvent *ev = malloc(sizeof *ev);
    if (ev == NULL) {
        if (ptr != NULL && drop != NULL)
            drop((uint8_t *)ptr, len);
        return false;
    }
    ev->payload_ptr = ptr;
    ev->payload_len = len;
    ev->payload_drop_fn = drop;
    ev->timestamp_us = 1700000000000000LL;
    ev->sequence = (uint64_t)seq;
    FX13_ADD(events_pushed, 1);
    if (!run->cb(run->cb_ctx, ev)) {
        FX13_ADD(push_false_seen, 1);
        return false;
    }
    return true;
}

static void *run_events_thread(void *raw)
{
    Fx13Run *run = raw;
    bool go = true;
    const uint8_t *ptr;
    size_t len;
    FfiBytesDropFn drop;
    if (fx13_hostile_payload(run->mode, &ptr, &len, &drop))
        go = run_push(run, ptr, len, drop, 0);
    bool wrong = FX13_MODE_IS(run->mode, "wrongtags");
    for (int64_t i = 0; go && i < run->count && !atomic_load(&run->stop); i++) {
        uint8_t *doc = fx13_bootstrap_payload(run->source_id, i, wrong && i == 0, &len);
        if (doc == NULL)
            break;
        go = run_push(run, doc, len, fx13_payload_drop, i + 1);
        if (go)
            run->sent++;
    }
    FX13_ADD(end_of_stream_sent, 1);
    run->cb(run->cb_ctx, NULL);
    run_events_over(run, true);
    run_unref(run);
    return NULL;
}

static void run_events_start(void *state, FfiBootstrapPushCallbackFn cb, void *cb_ctx)
{
    Fx13Run *run = state;
    pthread_mutex_lock(&run->lock);
    bool first = !run->events_started && !run->events_done;
    run->events_started = true;
    pthread_mutex_unlock(&run->lock);
    if (!first)
        return;
    run->cb = cb;
    run->cb_ctx = cb_ctx;
    atomic_fetch_add(&run->refs, 1);
    if (!fx13_spawn(run_events_thread, run)) {
        FX13_ADD(end_of_stream_sent, 1);
        cb(cb_ctx, NULL);
        run_events_over(run, false);
        run_unref(run);
    }
}

static void run_events_drop(void *state)
{
    Fx13Run *run = state;
    FX13_ADD(receivers_dropped, 1);
    atomic_store(&run->stop, true);
    pthread_mutex_lock(&run->lock);
    bool never_started = !run->events_started;
    pthread_mutex_unlock(&run->lock);
    if (never_started)
        run_events_over(run, false);
    run_unref(run);
}

static void run_result_start(void *state, FfiBootstrapResultCallbackFn cb, void *ctx)
{
    Fx13Run *run = state;
    bool deliver = false;
    pthread_mutex_lock(&run->lock);
    if (!run->result_started) {
        run->result_started = true;
        run->rcb = cb;
        run->rctx = ctx;
        if (run->events_done && !run->result_delivered)
            deliver = run->result_delivered = true;
    }
    pthread_mutex_unlock(&run->lock);
    if (!deliver)
        return;
    atomic_fetch_add(&run->refs, 1);
    if (!fx13_spawn(run_deliver_thread, run)) {
        run_deliver(run);
        run_unref(run);
    }
}

static void run_result_drop(void *state)
{
    FX13_ADD(receivers_dropped, 1);
    run_unref(state);
}

bool fx13_bootstrap_run(const char *source_id, int64_t count, const char *mode,
                        FfiBootstrapReceiver **events, FfiBootstrapResultReceiver **result)
{
    Fx13Run *run = calloc(1, sizeof *run);
    FfiBootstrapReceiver *ev = malloc(sizeof *ev);
    FfiBootstrapResultReceiver *res = malloc(sizeof *res);
    char *sid = fx13_strndup(source_id, strlen(source_id));
    if (run == NULL || ev == NULL || res == NULL || sid == NULL) {
        free(run);
        free(ev);
        free(res);
        free(sid);
        return false;
    }
    pthread_mutex_init(&run->lock, NULL);
    atomic_init(&run->refs, 2);
    run->source_id = sid;
    run->count = count;
    snprintf(run->mode, sizeof run->mode, "%s", mode);
    ev->state = run;
    ev->start_push_fn = run_events_start;
    ev->drop_fn = run_events_drop;
    res->state = run;
    res->start_fn = run_result_start;
    res->drop_fn = run_result_drop;
    FX13_ADD(receivers_created, 2);
    *events = ev;
    *result = res;
    return true;
}

/* ---- the provider ---- */

typedef struct Fx13Provider {
    int64_t count;
    char mode[32];
} Fx13Provider;

static FfiBootstrapStream *prov_bootstrap(void *state, FfiStr query_id, const FfiStr *node_labels,
                                          size_t node_labels_count, const FfiStr *relation_labels,
                                          size_t relation_labels_count, FfiStr request_id,
                                          FfiStr server_id, FfiStr source_id)
{
    Fx13Provider *p = state;
    (void)query_id, (void)node_labels, (void)node_labels_count, (void)relation_labels;
    (void)relation_labels_count, (void)request_id, (void)server_id;
    if (FX13_MODE_IS(p->mode, "nullstream"))
        return NULL;
    char sid[128];
    snprintf(sid, sizeof sid, "%.*s", (int)(source_id.len < 127 ? source_id.len : 127),
             source_id.ptr ? source_id.ptr : "");
    FfiBootstrapStream *stream = malloc(sizeof *stream);
    if (stream == NULL)
        return NULL;
    if (!fx13_bootstrap_run(sid, p->count, p->mode, &stream->events, &stream->result)) {
        free(stream);
        return NULL;
    }
    if (FX13_MODE_IS(p->mode, "halfstream")) {
        stream->events->drop_fn(stream->events->state);
        free(stream->events);
        stream->events = NULL;
    }
    return stream;
}

static void prov_drop(void *state)
{
    free(state);
    FX13_ADD(objects_dropped, 1);
}

static FfiCreateResult fx13_create_provider(void *state, FfiStr config_json,
                                            FfiStr source_config_json)
{
    char mode[32] = "normal";
    (void)state, (void)source_config_json;
    fx13_cfg_str(config_json, "mode", mode, sizeof mode);
    if (FX13_MODE_IS(mode, "fail"))
        return fx13_create_error(FX13_PREFIX "-bootstrap: create refused: %s", "mode fail");
    if (FX13_MODE_IS(mode, "nullptr"))
        return fx13_created(NULL);
    Fx13Provider *p = calloc(1, sizeof *p);
    BootstrapProviderVtable *vt = calloc(1, sizeof *vt);
    if (p == NULL || vt == NULL) {
        free(p);
        free(vt);
        return fx13_create_error("%s", "out of memory");
    }
    p->count = fx13_cfg_int(config_json, "count", 3);
    snprintf(p->mode, sizeof p->mode, "%s", mode);
    vt->state = p;
    vt->bootstrap_fn = prov_bootstrap;
    vt->drop_fn = prov_drop;
    FX13_ADD(objects_created, 1);
    fx13_log(FFI_LOG_LEVEL_INFO, "bootstrap", "bootstrap provider created");
    return fx13_created(vt);
}

static FfiStr bf_kind(const void *s) { (void)s; return fx13_str(FX13_PREFIX "-bootstrap"); }
static FfiStr bf_version(const void *s) { (void)s; return fx13_str("1.0.0"); }
static FfiOwnedStr bf_schema(const void *s) { (void)s; return fx13_owned("{\"type\":\"object\"}"); }
static FfiStr bf_schema_name(const void *s) { (void)s; return fx13_str("fixture013.BootstrapConfig"); }
static void bf_drop(void *s) { (void)s; FX13_ADD(factories_dropped, 1); }

void fx13_bootstrap_factory(BootstrapPluginVtable *vt)
{
    vt->kind_fn = bf_kind;
    vt->config_version_fn = bf_version;
    vt->config_schema_json_fn = bf_schema;
    vt->config_schema_name_fn = bf_schema_name;
    vt->create_bootstrap_provider_fn = fx13_create_provider;
    vt->drop_fn = bf_drop;
}
