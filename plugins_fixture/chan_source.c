/*
 * chan_source.c - libdrasi_chan_fixture: sources for the channel benchmarks
 * and the receiver lifetime tests.
 *
 * Kind "rustlike" allocates per event the way a Rust SDK plugin does: the
 * envelope (Box<FfiSourceEvent>), the opaque payload box, the JSON document
 * (a serialised String) and owned copies of the source id, label and entity
 * id (Strings) - six heap blocks, all but the envelope freed by the event's
 * own drop function.  Configuration: event_count, interval_us, label.
 *
 * Kind "probe" watches how the host calls a receiver.  Its receiver counts
 * start_push_fn calls, calls made after drop_fn (start_after_drop) and
 * drop_fn calls that arrive while start_push_fn is still running
 * (drop_during_start); a dropped probe receiver's block is kept (never
 * freed), so a late call is observed, not a use after free.  Configuration
 * as "rustlike" plus:
 *   sync:           push every event inside start_push_fn, on the caller's
 *                   thread, then end the stream (no thread of its own)
 *   start_delay_us: sleep inside start_push_fn before anything else
 *
 * Counters: drasi_chan_fixture_counters(out, n) copies the CHAN_* counters.
 */
#include "fixture.h"

enum {
    CHAN_EVENTS_PUSHED,
    CHAN_EVENTS_RELEASED,
    CHAN_RECEIVERS_CREATED,
    CHAN_RECEIVERS_DROPPED,
    CHAN_START_CALLS,
    CHAN_START_AFTER_DROP,
    CHAN_DROP_DURING_START,
    CHAN_PUSH_FALSE,
    CHAN_COUNTERS
};

static int64_t chan_counters[CHAN_COUNTERS];
#define CHAN_COUNT(c) ((void)__atomic_add_fetch(&chan_counters[c], 1, __ATOMIC_SEQ_CST))

FX_EXPORT void drasi_chan_fixture_counters(int64_t *out, size_t n) {
    for (size_t i = 0; i < n && i < CHAN_COUNTERS; i++)
        out[i] = __atomic_load_n(&chan_counters[i], __ATOMIC_SEQ_CST);
}

/* ---- events ---------------------------------------------------------------- */

typedef struct ChanPayload {
    DrasiPayload base; /* data: the document String */
    char *source_id;
    char *label;
    char *entity_id;
} ChanPayload;

static char *chan_copy(const char *s, size_t n) {
    char *p = fx_xmalloc(n ? n : 1);
    if (n) memcpy(p, s, n);
    return p;
}

static void chan_payload_drop(DrasiPayload *self) {
    ChanPayload *p = (ChanPayload *)self;
    free((void *)p->base.data);
    free(p->source_id);
    free(p->label);
    free(p->entity_id);
    free(p);
}

static void chan_event_drop(void *opaque) {
    CHAN_COUNT(CHAN_EVENTS_RELEASED);
    DrasiPayload *p = opaque;
    p->drop_fn(p);
}

static FfiSourceEvent *chan_event(const char *source_id, size_t sid_len, const char *label,
                                  size_t label_len, uint64_t i) {
    static const char *const ops[3] = {"insert", "update", "delete"};
    int op = (int)(i % 3);
    char entity[32];
    int elen = snprintf(entity, sizeof entity, "n%" PRIu64, i);
    char doc[512];
    int n = snprintf(doc, sizeof doc,
                     "{\"op\":\"%s\",\"element\":{\"type\":\"node\",\"reference\":"
                     "{\"source_id\":\"%.*s\",\"element_id\":\"%s\"},\"labels\":[\"%.*s\"],"
                     "\"effective_from\":%" PRIu64 ",\"properties\":{\"id\":%" PRIu64
                     ",\"name\":\"node-%" PRIu64 "\",\"score\":%.1f}}}",
                     ops[op], (int)sid_len, source_id, entity, (int)label_len, label, i, i, i,
                     (double)i / 2.0);
    if (n < 0 || (size_t)n >= sizeof doc) abort();
    ChanPayload *p = fx_xmalloc(sizeof *p);
    p->base.data = (const uint8_t *)chan_copy(doc, (size_t)n);
    p->base.len = (size_t)n;
    p->base.drop_fn = chan_payload_drop;
    p->source_id = chan_copy(source_id, sid_len);
    p->label = chan_copy(label, label_len);
    p->entity_id = chan_copy(entity, (size_t)elen);
    FfiSourceEvent *ev = fx_xmalloc(sizeof *ev);
    ev->opaque = p;
    ev->source_id = fx_strn(p->source_id, sid_len);
    ev->timestamp_us = (int64_t)i;
    ev->op = (FfiChangeOp)op;
    ev->label = fx_strn(p->label, label_len);
    ev->entity_id = fx_strn(p->entity_id, (size_t)elen);
    ev->drop_fn = chan_event_drop;
    return ev;
}

/* ---- receiver --------------------------------------------------------------- */

typedef struct ChanSource {
    char *id;
    size_t id_len;
    bool probe;
    bool auto_start;
    int64_t event_count;
    int64_t interval_us;
    int64_t start_delay_us;
    bool sync;
    char *label;
    size_t label_len;
    int status;
} ChanSource;

typedef struct ChanRx {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop, started, dropped, in_start, probe, sync;
    pthread_t thread;
    FfiChangePushCallbackFn cb;
    void *cb_ctx;
    char *source_id;
    size_t source_id_len;
    char *label;
    size_t label_len;
    int64_t count, interval_us, start_delay_us;
} ChanRx;

static bool chan_stopping(ChanRx *rx, int64_t wait_us) {
    pthread_mutex_lock(&rx->lock);
    if (wait_us > 0 && !rx->stop) {
        struct timespec deadline;
        fx_deadline(&deadline, wait_us);
        while (!rx->stop)
            if (pthread_cond_timedwait(&rx->cond, &rx->lock, &deadline) == ETIMEDOUT) break;
    }
    bool stop = rx->stop;
    pthread_mutex_unlock(&rx->lock);
    return stop;
}

static void chan_push_all(ChanRx *rx) {
    for (int64_t i = 0; i < rx->count; i++) {
        if (chan_stopping(rx, i ? rx->interval_us : 0)) break;
        FfiSourceEvent *ev =
            chan_event(rx->source_id, rx->source_id_len, rx->label, rx->label_len, (uint64_t)i);
        CHAN_COUNT(CHAN_EVENTS_PUSHED);
        if (!rx->cb(rx->cb_ctx, ev)) {
            CHAN_COUNT(CHAN_PUSH_FALSE);
            break;
        }
    }
    rx->cb(rx->cb_ctx, NULL);
}

static void *chan_rx_thread(void *arg) {
    chan_push_all(arg);
    return NULL;
}

static void chan_rx_start(void *state, FfiChangePushCallbackFn cb, void *cb_ctx) {
    ChanRx *rx = state;
    CHAN_COUNT(CHAN_START_CALLS);
    pthread_mutex_lock(&rx->lock);
    if (rx->dropped) CHAN_COUNT(CHAN_START_AFTER_DROP);
    bool first = !rx->started && !rx->dropped;
    rx->started = true;
    rx->in_start = true;
    rx->cb = cb;
    rx->cb_ctx = cb_ctx;
    pthread_mutex_unlock(&rx->lock);
    if (rx->start_delay_us > 0) fx_sleep_us(rx->start_delay_us);
    bool threaded = false;
    if (first) {
        if (rx->sync)
            chan_push_all(rx);
        else
            threaded = pthread_create(&rx->thread, NULL, chan_rx_thread, rx) == 0;
    }
    pthread_mutex_lock(&rx->lock);
    rx->in_start = false;
    if (!threaded && first) rx->sync = true; /* nothing to join */
    pthread_mutex_unlock(&rx->lock);
}

static void chan_rx_drop(void *state) {
    ChanRx *rx = state;
    CHAN_COUNT(CHAN_RECEIVERS_DROPPED);
    pthread_mutex_lock(&rx->lock);
    if (rx->in_start) CHAN_COUNT(CHAN_DROP_DURING_START);
    bool join = rx->started && !rx->sync;
    rx->stop = true;
    pthread_cond_broadcast(&rx->cond);
    pthread_mutex_unlock(&rx->lock);
    if (join) pthread_join(rx->thread, NULL);
    pthread_mutex_lock(&rx->lock);
    rx->dropped = true;
    bool keep = rx->probe;
    pthread_mutex_unlock(&rx->lock);
    if (keep) return; /* a probe block stays readable after drop (see the top) */
    pthread_mutex_destroy(&rx->lock);
    pthread_cond_destroy(&rx->cond);
    free(rx->source_id);
    free(rx->label);
    free(rx);
}

/* ---- source ------------------------------------------------------------------ */

static FfiStr chan_src_id(const void *state) {
    const ChanSource *s = state;
    return fx_strn(s->id, s->id_len);
}
static FfiStr chan_src_type(const void *state) {
    return fx_str(((const ChanSource *)state)->probe ? "probe" : "rustlike");
}
static bool chan_src_auto_start(const void *state) {
    return ((const ChanSource *)state)->auto_start;
}
static FfiDispatchMode chan_src_dispatch(const void *state) {
    (void)state;
    return FFI_DISPATCH_MODE_CHANNEL;
}
static FfiResult chan_src_start(void *state) {
    __atomic_store_n(&((ChanSource *)state)->status, FFI_COMPONENT_STATUS_RUNNING,
                     __ATOMIC_SEQ_CST);
    return fx_ok();
}
static FfiResult chan_src_stop(void *state) {
    __atomic_store_n(&((ChanSource *)state)->status, FFI_COMPONENT_STATUS_STOPPED,
                     __ATOMIC_SEQ_CST);
    return fx_ok();
}
static FfiComponentStatus chan_src_status(const void *state) {
    return (FfiComponentStatus)__atomic_load_n(&((const ChanSource *)state)->status,
                                               __ATOMIC_SEQ_CST);
}
static FfiResult chan_src_deprovision(void *state) {
    (void)state;
    return fx_ok();
}
static void chan_src_initialize(void *state, const FfiRuntimeContext *ctx) {
    (void)state; /* no services used; the host keeps its blocks (ABI.md 11.2) */
    (void)ctx;
}

static FfiSubscriptionResponse *chan_src_subscribe(void *state, FfiStr source_id, bool bootstrap,
                                                   FfiStr query_id, FfiStr nodes, FfiStr rels) {
    ChanSource *s = state;
    (void)source_id;
    (void)bootstrap;
    (void)nodes;
    (void)rels;
    ChanRx *rx = fx_xcalloc(1, sizeof *rx);
    pthread_mutex_init(&rx->lock, NULL);
    pthread_cond_init(&rx->cond, NULL);
    rx->probe = s->probe;
    rx->sync = s->sync;
    rx->source_id = fx_strndup(s->id, s->id_len);
    rx->source_id_len = s->id_len;
    rx->label = fx_strndup(s->label, s->label_len);
    rx->label_len = s->label_len;
    rx->count = s->event_count;
    rx->interval_us = s->interval_us;
    rx->start_delay_us = s->start_delay_us;
    FfiChangeReceiver *r = fx_xmalloc(sizeof *r);
    r->state = rx;
    r->executor = NULL;
    r->start_push_fn = chan_rx_start;
    r->drop_fn = chan_rx_drop;
    CHAN_COUNT(CHAN_RECEIVERS_CREATED);
    FfiSubscriptionResponse *resp = fx_xmalloc(sizeof *resp);
    resp->query_id = fx_owned(query_id.ptr, query_id.len);
    resp->source_id = fx_owned(s->id, s->id_len);
    resp->receiver = r;
    resp->bootstrap_receiver = NULL;
    return resp;
}

static void chan_src_set_provider(void *state, BootstrapProviderVtable *provider) {
    (void)state;
    if (provider) { /* the plugin owns the block from now on */
        if (provider->drop_fn) provider->drop_fn(provider->state);
        free(provider);
    }
}

static void chan_src_drop(void *state) {
    ChanSource *s = state;
    free(s->id);
    free(s->label);
    free(s);
}

/* ---- factories ---------------------------------------------------------------- */

static FfiStr chan_sf_kind(const void *state) { return fx_str(state ? "probe" : "rustlike"); }
static FfiStr chan_sf_version(const void *state) {
    (void)state;
    return fx_str("1.0.0");
}
static FfiStr chan_sf_schema_name(const void *state) {
    return fx_str(state ? "source.chan.ProbeConfig" : "source.chan.RustlikeConfig");
}
static FfiOwnedStr chan_sf_schema(const void *state) {
    (void)state;
    static const char schema[] =
        "{\"type\":\"object\",\"properties\":{"
        "\"event_count\":{\"type\":\"integer\",\"minimum\":0},"
        "\"interval_us\":{\"type\":\"integer\",\"minimum\":0},"
        "\"start_delay_us\":{\"type\":\"integer\",\"minimum\":0},"
        "\"sync\":{\"type\":\"boolean\"},\"label\":{\"type\":\"string\"}}}";
    return fx_owned(schema, sizeof schema - 1);
}

static SourceVtable *chan_sf_create(void *state, FfiStr id, FfiStr config_json, bool auto_start) {
    char err[256] = {0};
    FxJson *cfg = fx_config_parse(config_json, err, sizeof err);
    ChanSource *s = fx_xcalloc(1, sizeof *s);
    s->probe = state != NULL;
    s->auto_start = auto_start;
    s->id = fx_strndup(id.ptr, id.len);
    s->id_len = id.len;
    s->status = FFI_COMPONENT_STATUS_STOPPED;
    bool ok = cfg && fx_cfg_int(cfg, "event_count", 10, 0, &s->event_count, err, sizeof err) &&
              fx_cfg_int(cfg, "interval_us", 0, 0, &s->interval_us, err, sizeof err) &&
              fx_cfg_int(cfg, "start_delay_us", 0, 0, &s->start_delay_us, err, sizeof err) &&
              fx_cfg_bool(cfg, "sync", false, &s->sync, err, sizeof err) &&
              fx_cfg_str(cfg, "label", "Person", &s->label, &s->label_len, err, sizeof err);
    fx_json_free(cfg);
    if (!ok) {
        fx_global_log(FFI_LOG_LEVEL_ERROR, "chan", "fixture::chan", "bad configuration: %s", err);
        free(s->label);
        free(s->id);
        free(s);
        return NULL;
    }
    SourceVtable *vt = fx_xmalloc(sizeof *vt);
    vt->state = s;
    vt->executor = NULL;
    vt->id_fn = chan_src_id;
    vt->type_name_fn = chan_src_type;
    vt->auto_start_fn = chan_src_auto_start;
    vt->dispatch_mode_fn = chan_src_dispatch;
    vt->start_fn = chan_src_start;
    vt->stop_fn = chan_src_stop;
    vt->status_fn = chan_src_status;
    vt->deprovision_fn = chan_src_deprovision;
    vt->initialize_fn = chan_src_initialize;
    vt->subscribe_fn = chan_src_subscribe;
    vt->set_bootstrap_provider_fn = chan_src_set_provider;
    vt->drop_fn = chan_src_drop;
    return vt;
}

static void chan_sf_drop(void *state) { (void)state; }

static SourcePluginVtable chan_factory(bool probe) {
    SourcePluginVtable f;
    f.state = probe ? (void *)&chan_counters : NULL; /* non-NULL marks the probe kind */
    f.executor = NULL;
    f.kind_fn = chan_sf_kind;
    f.config_version_fn = chan_sf_version;
    f.config_schema_json_fn = chan_sf_schema;
    f.config_schema_name_fn = chan_sf_schema_name;
    f.create_source_fn = chan_sf_create;
    f.drop_fn = chan_sf_drop;
    return f;
}

FX_EXPORT FfiPluginRegistration *drasi_plugin_init(void) {
    SourcePluginVtable s[2] = {chan_factory(false), chan_factory(true)};
    return fx_registration_new(s, 2, NULL, 0, NULL, 0);
}
