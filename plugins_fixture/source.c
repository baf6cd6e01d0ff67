/*
 * source.c - the generic fixture source (kinds "fixture", "multi-a", ...,
 * "hostile", "services").
 *
 * A subscription hands out two push receivers.  Each owns a copy of what it
 * needs (source id, label, counts, a reference on the bootstrap provider), so
 * it is independent of the source object and may outlive it.  start_push_fn
 * starts one pusher thread; drop_fn asks it to stop and joins it (the host has
 * closed its side first, so a blocked callback returns false).  Sleeps between
 * events are timed waits on the receiver's condition variable, so a drop never
 * waits for a long interval.
 *
 * A bootstrap provider handed over with set_bootstrap_provider_fn is owned by
 * the source; it is reference counted because a running bootstrap receiver
 * keeps using it after the source replaced it or was dropped.
 *
 * With `hostile` set in the kind descriptor, the configuration key `mode`
 * selects one of the misbehaviours listed in FxHostileMode.
 */
#include "fixture.h"

#define FX_BAD_UTF8_LABEL "bad\xff\xfe" "label"

/* ---- handed-over bootstrap provider ---------------------------------------- */

struct FxProviderRef {
    BootstrapProviderVtable *vt;
    int refs;
};

static FxProviderRef *fx_provider_ref_new(BootstrapProviderVtable *vt) {
    FxProviderRef *r = fx_xmalloc(sizeof *r);
    r->vt = vt;
    r->refs = 1;
    return r;
}

static FxProviderRef *fx_provider_ref_get(FxProviderRef *r) {
    if (r) __atomic_add_fetch(&r->refs, 1, __ATOMIC_SEQ_CST);
    return r;
}

static void fx_provider_ref_put(FxProviderRef *r) {
    if (!r || __atomic_sub_fetch(&r->refs, 1, __ATOMIC_SEQ_CST) != 0) return;
    if (r->vt->drop_fn) r->vt->drop_fn(r->vt->state);
    free(r->vt);
    free(r);
    FX_STAT(foreign_providers_dropped);
}

/* ---- pusher threads ------------------------------------------------------------ */

typedef struct FxPush {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;     /* drop_fn asked the thread to finish */
    bool started;  /* start_push_fn created the thread */
    bool detached; /* flood_after_drop: dropped without joining */
    int64_t dropped_at_us;
    pthread_t thread;
    char *source_id;
    size_t source_id_len;
    char *label;
    size_t label_len;
    char *kind;
    int64_t count;
    int64_t interval_us;
    FxHostileMode mode;
    bool opaque;
} FxPush;

static void fx_push_init(FxPush *c, FxSource *src, int64_t count) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->source_id = fx_strndup(src->id, src->id_len);
    c->source_id_len = src->id_len;
    c->label = fx_strndup(src->label, src->label_len);
    c->label_len = src->label_len;
    c->kind = fx_strdup(src->kind->kind);
    c->count = count;
    c->interval_us = src->interval_us;
    c->mode = src->mode;
    c->opaque = src->kind->opaque_payloads;
}

static void fx_push_destroy(FxPush *c) {
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    free(c->source_id);
    free(c->label);
    free(c->kind);
}

static bool fx_push_stopping(FxPush *c) {
    pthread_mutex_lock(&c->lock);
    bool stop = c->stop;
    pthread_mutex_unlock(&c->lock);
    return stop;
}

/* Waits up to `us` microseconds; true when a stop was requested. */
static bool fx_push_wait(FxPush *c, int64_t us) {
    struct timespec deadline;
    fx_deadline(&deadline, us);
    pthread_mutex_lock(&c->lock);
    while (!c->stop && !c->detached) {
        if (pthread_cond_timedwait(&c->cond, &c->lock, &deadline) == ETIMEDOUT) break;
    }
    bool stop = c->stop;
    pthread_mutex_unlock(&c->lock);
    return stop;
}

/* Starts the thread once; false (nothing started) on a second call or after drop. */
static bool fx_push_start(FxPush *c, void *(*fn)(void *), void *arg) {
    pthread_mutex_lock(&c->lock);
    bool ok = !c->started && !c->stop;
    if (ok) {
        c->started = pthread_create(&c->thread, NULL, fn, arg) == 0;
        ok = c->started;
    }
    pthread_mutex_unlock(&c->lock);
    return ok;
}

/* Stops and joins the thread (if one was started). */
static void fx_push_stop_join(FxPush *c) {
    pthread_mutex_lock(&c->lock);
    c->stop = true;
    pthread_cond_broadcast(&c->cond);
    bool started = c->started;
    pthread_t t = c->thread;
    pthread_mutex_unlock(&c->lock);
    if (started) pthread_join(t, NULL);
}

static FxEventSpec fx_push_spec(const FxPush *c, uint64_t i, int op) {
    FxEventSpec spec;
    spec.index = i;
    spec.op = op;
    spec.source_id = fx_strn(c->source_id, c->source_id_len);
    spec.label = fx_strn(c->label, c->label_len);
    spec.allow_relation = true;
    spec.opaque = c->opaque;
    return spec;
}

/* ---- change receiver ---------------------------------------------------------------- */

typedef struct FxChangeRx {
    FxPush c;
    FfiChangePushCallbackFn cb;
    void *cb_ctx;
} FxChangeRx;

static FfiSourceEvent *fx_rx_event(FxChangeRx *rx, uint64_t i) {
    FxPush *c = &rx->c;
    FxEventSpec spec = fx_push_spec(c, i, (int)(i % 3));
    if (c->mode == FX_HOSTILE_BAD_JSON || (c->mode == FX_HOSTILE_OVERSIZE && i == 0)) {
        char eid[32];
        snprintf(eid, sizeof eid, "n%" PRIu64, i);
        FxHints in = {spec.source_id, spec.label, fx_str(eid)}, h;
        DrasiPayload *p = c->mode == FX_HOSTILE_BAD_JSON ? fx_raw_payload("not json{", 9, &in, &h)
                                                         : fx_raw_payload("{}", 2, &in, &h);
        if (c->mode == FX_HOSTILE_OVERSIZE) p->len = (size_t)1 << 40; /* never to be read */
        FfiSourceEvent *ev = fx_xmalloc(sizeof *ev);
        ev->opaque = p;
        ev->source_id = h.source_id;
        ev->timestamp_us = fx_now_us();
        ev->op = (FfiChangeOp)spec.op;
        ev->label = h.label;
        ev->entity_id = h.entity_id;
        ev->drop_fn = fx_event_drop_payload;
        FX_STAT(events_created);
        return ev;
    }
    if (c->mode == FX_HOSTILE_BAD_OP && i == 0) spec.op = 9;
    FfiSourceEvent *ev = fx_source_event_new(&spec, fx_now_us());
    if (c->mode == FX_HOSTILE_BAD_UTF8 && i == 0)
        ev->label = fx_strn(FX_BAD_UTF8_LABEL, sizeof(FX_BAD_UTF8_LABEL) - 1); /* static */
    return ev;
}

static bool fx_rx_push(FxChangeRx *rx, FfiSourceEvent *ev, bool late) {
    FX_STAT(envelopes_pushed);
    if (late) FX_STAT(late_calls_made);
    bool ok = rx->cb(rx->cb_ctx, ev);
    if (!ok) FX_STAT(push_false_seen);
    return ok;
}

static void fx_rx_eos(FxChangeRx *rx, bool late) {
    FX_STAT(end_of_stream_sent);
    if (late) FX_STAT(late_calls_made);
    rx->cb(rx->cb_ctx, NULL);
}

static void fx_rx_flood(FxChangeRx *rx) {
    FxPush *c = &rx->c;
    int64_t step = c->interval_us > 0 ? c->interval_us : 1000;
    for (uint64_t i = 0;; i++) {
        pthread_mutex_lock(&c->lock);
        bool dropped = c->detached;
        int64_t at = c->dropped_at_us;
        pthread_mutex_unlock(&c->lock);
        if (dropped && fx_now_us() - at > 200000) break;
        fx_rx_push(rx, fx_rx_event(rx, i), dropped); /* the answer is ignored on purpose */
        if (dropped)
            fx_sleep_us(step);
        else
            fx_push_wait(c, step);
    }
    fx_rx_eos(rx, true);
}

static void *fx_rx_thread(void *arg) {
    FxChangeRx *rx = arg;
    FxPush *c = &rx->c;
    switch (c->mode) {
    case FX_HOSTILE_FLOOD_AFTER_DROP:
        fx_rx_flood(rx);
        fx_push_destroy(c); /* drop_fn detached us: the state is ours to free */
        free(rx);
        return NULL;
    case FX_HOSTILE_OVERSIZE:
        if (fx_rx_push(rx, fx_rx_event(rx, 0), false)) fx_rx_push(rx, fx_rx_event(rx, 1), false);
        fx_rx_eos(rx, false);
        return NULL;
    case FX_HOSTILE_AFTER_EOS: {
        uint64_t i = 0;
        for (; i < 3; i++)
            if (!fx_rx_push(rx, fx_rx_event(rx, i), false)) break;
        fx_rx_eos(rx, false);
        for (uint64_t k = 0; k < 2; k++) fx_rx_push(rx, fx_rx_event(rx, 3 + k), true);
        fx_rx_eos(rx, true);
        return NULL;
    }
    default: break;
    }
    for (int64_t i = 0; i < c->count; i++) {
        if (fx_push_stopping(c)) break;
        if (!fx_rx_push(rx, fx_rx_event(rx, (uint64_t)i), false)) break;
        if (c->interval_us > 0 && i + 1 < c->count && fx_push_wait(c, c->interval_us)) break;
    }
    fx_rx_eos(rx, false);
    return NULL;
}

static void fx_rx_start_push(void *state, FfiChangePushCallbackFn cb, void *cb_ctx) {
    FxChangeRx *rx = state;
    pthread_mutex_lock(&rx->c.lock);
    bool first = !rx->c.started;
    if (first) {
        rx->cb = cb;
        rx->cb_ctx = cb_ctx;
    }
    pthread_mutex_unlock(&rx->c.lock);
    if (!first || !fx_push_start(&rx->c, fx_rx_thread, rx))
        fx_global_log(FFI_LOG_LEVEL_WARN, rx->c.kind, "fixture::source",
                      "change receiver: start_push_fn ignored (already started or dropped)");
}

static void fx_rx_drop(void *state) {
    FxChangeRx *rx = state;
    FX_STAT(receivers_dropped);
    if (rx->c.mode == FX_HOSTILE_FLOOD_AFTER_DROP) {
        pthread_mutex_lock(&rx->c.lock);
        bool started = rx->c.started;
        pthread_t t = rx->c.thread;
        rx->c.detached = true;
        rx->c.dropped_at_us = fx_now_us();
        pthread_cond_broadcast(&rx->c.cond);
        pthread_mutex_unlock(&rx->c.lock);
        if (started) {
            pthread_detach(t); /* the thread keeps pushing, then frees the state */
            return;
        }
    } else {
        fx_push_stop_join(&rx->c);
    }
    fx_push_destroy(&rx->c);
    free(rx);
}

static FfiChangeReceiver *fx_change_rx_new(FxSource *src) {
    FxChangeRx *rx = fx_xcalloc(1, sizeof *rx);
    fx_push_init(&rx->c, src, src->event_count);
    FfiChangeReceiver *r = fx_xmalloc(sizeof *r);
    r->state = rx;
    r->executor = NULL;
    r->start_push_fn = fx_rx_start_push;
    r->drop_fn = fx_rx_drop;
    FX_STAT(receivers_created);
    return r;
}

/* ---- bootstrap receiver ---------------------------------------------------------------- */

typedef struct FxBootRx {
    FxPush c;
    FfiBootstrapPushCallbackFn cb;
    void *cb_ctx;
    FxProviderRef *provider;
    char *query_id;
    size_t query_id_len;
    FxStrList nodes;
    FxStrList relations;
    bool host_closed; /* the host callback answered false */
} FxBootRx;

static bool fx_boot_push(FxBootRx *rx, FfiBootstrapEvent *ev) {
    FX_STAT(envelopes_pushed);
    bool ok = rx->cb(rx->cb_ctx, ev);
    if (!ok) {
        FX_STAT(push_false_seen);
        pthread_mutex_lock(&rx->c.lock);
        rx->host_closed = true;
        pthread_mutex_unlock(&rx->c.lock);
    }
    return ok;
}

typedef struct FxSenderState {
    FxBootRx *rx;
} FxSenderState;

/* Copies the borrowed envelope into a fresh block for the host.  The payload is
 * taken in every case where the host callback was reached: when the host
 * answers false it has released the event itself, so the provider must not.
 * Later sends return 1 and release the payload here: send_fn takes the
 * payload in every case. */
static int32_t fx_sender_send(void *state, FfiBootstrapEvent *event) {
    FxBootRx *rx = ((FxSenderState *)state)->rx;
    pthread_mutex_lock(&rx->c.lock);
    bool closed = rx->host_closed || rx->c.stop;
    pthread_mutex_unlock(&rx->c.lock);
    if (closed || !event) {
        FX_STAT(bootstrap_sends_rejected);
        /* send_fn takes the payload even when it refuses the record */
        if (event && event->drop_fn) event->drop_fn(event->opaque);
        return 1;
    }
    FfiBootstrapEvent *copy = fx_xmalloc(sizeof *copy);
    *copy = *event;
    FX_STAT(bootstrap_sends);
    fx_boot_push(rx, copy);
    return 0;
}

static void fx_sender_drop(void *state) {
    FX_STAT(senders_dropped);
    free(state);
}

static FfiStr *fx_str_array(const FxStrList *l) {
    FfiStr *a = fx_xcalloc(l->n ? l->n : 1, sizeof(FfiStr));
    for (size_t i = 0; i < l->n; i++) a[i] = fx_strn(l->items[i], l->lens[i]);
    return a;
}

static void fx_boot_from_provider(FxBootRx *rx) {
    BootstrapProviderVtable *vt = rx->provider->vt;
    FfiStr *nodes = fx_str_array(&rx->nodes);
    FfiStr *rels = fx_str_array(&rx->relations);
    FxSenderState *ss = fx_xmalloc(sizeof *ss);
    ss->rx = rx;
    FfiBootstrapSender sender = {ss, fx_sender_send, fx_sender_drop};
    int64_t n = vt->bootstrap_fn(vt->state, fx_strn(rx->query_id, rx->query_id_len), nodes,
                                 rx->nodes.n, rels, rx->relations.n, fx_str("req-1"),
                                 fx_str("fixture-server"),
                                 fx_strn(rx->c.source_id, rx->c.source_id_len), &sender);
    sender.drop_fn(sender.state);
    fx_global_log(n < 0 ? FFI_LOG_LEVEL_WARN : FFI_LOG_LEVEL_DEBUG, rx->c.kind, "fixture::source",
                  "bootstrap provider for query '%s' returned %" PRId64, rx->query_id, n);
    free(nodes);
    free(rels);
}

static void *fx_boot_thread(void *arg) {
    FxBootRx *rx = arg;
    if (rx->provider) {
        fx_boot_from_provider(rx);
    } else {
        for (int64_t i = 0; i < rx->c.count; i++) {
            if (fx_push_stopping(&rx->c)) break;
            FxEventSpec spec = fx_push_spec(&rx->c, (uint64_t)i, FFI_CHANGE_OP_INSERT);
            FfiBootstrapEvent *ev = fx_xmalloc(sizeof *ev);
            fx_bootstrap_event_fill(ev, &spec, (uint64_t)i);
            if (!fx_boot_push(rx, ev)) break;
        }
    }
    FX_STAT(end_of_stream_sent);
    rx->cb(rx->cb_ctx, NULL);
    return NULL;
}

static void fx_boot_start_push(void *state, FfiBootstrapPushCallbackFn cb, void *cb_ctx) {
    FxBootRx *rx = state;
    pthread_mutex_lock(&rx->c.lock);
    bool first = !rx->c.started;
    if (first) {
        rx->cb = cb;
        rx->cb_ctx = cb_ctx;
    }
    pthread_mutex_unlock(&rx->c.lock);
    if (!first || !fx_push_start(&rx->c, fx_boot_thread, rx))
        fx_global_log(FFI_LOG_LEVEL_WARN, rx->c.kind, "fixture::source",
                      "bootstrap receiver: start_push_fn ignored (already started or dropped)");
}

static void fx_boot_drop(void *state) {
    FxBootRx *rx = state;
    FX_STAT(bootstrap_receivers_dropped);
    fx_push_stop_join(&rx->c);
    fx_provider_ref_put(rx->provider);
    free(rx->query_id);
    fx_str_list_free(&rx->nodes);
    fx_str_list_free(&rx->relations);
    fx_push_destroy(&rx->c);
    free(rx);
}

static FfiBootstrapReceiver *fx_boot_rx_new(FxSource *src, FfiStr query_id, FxStrList *nodes,
                                            FxStrList *relations) {
    FxBootRx *rx = fx_xcalloc(1, sizeof *rx);
    fx_push_init(&rx->c, src, src->bootstrap_count);
    pthread_mutex_lock(&src->lock);
    rx->provider = fx_provider_ref_get(src->provider);
    pthread_mutex_unlock(&src->lock);
    rx->query_id = fx_strndup(query_id.ptr, query_id.len);
    rx->query_id_len = query_id.len;
    rx->nodes = *nodes; /* taken over */
    rx->relations = *relations;
    memset(nodes, 0, sizeof *nodes);
    memset(relations, 0, sizeof *relations);
    FfiBootstrapReceiver *r = fx_xmalloc(sizeof *r);
    r->state = rx;
    r->start_push_fn = fx_boot_start_push;
    r->drop_fn = fx_boot_drop;
    FX_STAT(bootstrap_receivers_created);
    return r;
}

/* ---- source instance ------------------------------------------------------------------ */

static const FfiStr fx_empty_dangling = {(const char *)(uintptr_t)1, 0};

static void fx_set_status(FxSource *src, FfiComponentStatus st) {
    __atomic_store_n(&src->status, (int)st, __ATOMIC_SEQ_CST);
}

static FfiComponentStatus fx_get_status(const FxSource *src) {
    return (FfiComponentStatus)__atomic_load_n(&src->status, __ATOMIC_SEQ_CST);
}

static FfiStr fx_src_id(const void *state) {
    const FxSource *src = state;
    if (src->mode == FX_HOSTILE_EMPTY_STRINGS) return fx_empty_dangling;
    return fx_strn(src->id, src->id_len);
}

static FfiStr fx_src_type_name(const void *state) {
    const FxSource *src = state;
    if (src->mode == FX_HOSTILE_EMPTY_STRINGS) return fx_empty_dangling;
    return fx_str(src->kind->kind);
}

static bool fx_src_auto_start(const void *state) { return ((const FxSource *)state)->auto_start; }

static FfiDispatchMode fx_src_dispatch(const void *state) {
    const FxSource *src = state;
    if (src->mode == FX_HOSTILE_BAD_DISPATCH) return (FfiDispatchMode)7;
    return FFI_DISPATCH_MODE_CHANNEL;
}

static FfiComponentStatus fx_src_status(const void *state) {
    const FxSource *src = state;
    if (src->mode == FX_HOSTILE_BAD_STATUS) return (FfiComponentStatus)42;
    return fx_get_status(src);
}

/* use_store: bump the "starts" counter in the state store. */
static void fx_src_count_start(FxSource *src) {
    StateStoreVtable st;
    char *store_id;
    if (!fx_runtime_store(&src->rt, &st, &store_id)) {
        fx_runtime_log(&src->rt, FFI_LOG_LEVEL_WARN, "use_store is set but no state store was given");
        return;
    }
    FfiStr sid = fx_str(store_id), key = fx_str("starts");
    FfiGetResult g = st.get_fn(st.state, sid, key);
    long long starts = 0;
    if (g.error_code != 0) {
        fx_runtime_log(&src->rt, FFI_LOG_LEVEL_ERROR, "state store get failed: %s",
                       g.error_msg ? g.error_msg : "(no message)");
    } else if (g.found) {
        char tmp[32] = {0};
        memcpy(tmp, g.data, g.len < sizeof tmp - 1 ? g.len : sizeof tmp - 1);
        starts = strtoll(tmp, NULL, 10);
    }
    if (g.cap > 0) free(g.data);
    free(g.error_msg);
    char val[32];
    int n = snprintf(val, sizeof val, "%lld", starts + 1);
    FfiResult r = st.set_fn(st.state, sid, key, (const uint8_t *)val, (size_t)n);
    if (r.error_code != 0)
        fx_runtime_log(&src->rt, FFI_LOG_LEVEL_ERROR, "state store set failed: %s",
                       r.error_msg ? r.error_msg : "(no message)");
    free(r.error_msg);
    free(store_id);
}

static FfiResult fx_src_fail(FxSource *src, int32_t code, char *msg) {
    fx_set_status(src, FFI_COMPONENT_STATUS_ERROR);
    fx_runtime_log(&src->rt, FFI_LOG_LEVEL_ERROR, "start failed: %s", msg ? msg : "(no message)");
    fx_runtime_lifecycle(&src->rt, FFI_LIFECYCLE_ERROR, msg ? msg : "");
    FfiResult r = {code, msg};
    return r;
}

static FfiResult fx_src_start(void *state) {
    FxSource *src = state;
    FfiComponentStatus st = fx_get_status(src);
    if (st == FFI_COMPONENT_STATUS_RUNNING || st == FFI_COMPONENT_STATUS_STARTING) return fx_ok();
    fx_set_status(src, FFI_COMPONENT_STATUS_STARTING);
    fx_runtime_lifecycle(&src->rt, FFI_LIFECYCLE_STARTING, NULL);
    if (src->mode == FX_HOSTILE_START_ERROR)
        return fx_src_fail(src, 7, fx_strdup("hostile start failure"));
    if (src->mode == FX_HOSTILE_START_ERROR_NULLMSG) return fx_src_fail(src, 3, NULL);
    if (src->fail_start) return fx_src_fail(src, 1, fx_strdup("start refused: fail_start is set"));
    if (src->use_store) fx_src_count_start(src);
    if (src->kind->on_start) {
        char *msg = NULL;
        if (!src->kind->on_start(src, &msg)) return fx_src_fail(src, 1, msg);
    }
    fx_set_status(src, FFI_COMPONENT_STATUS_RUNNING);
    fx_runtime_lifecycle(&src->rt, FFI_LIFECYCLE_STARTED, NULL);
    fx_runtime_log(&src->rt, FFI_LOG_LEVEL_INFO, "source started");
    return fx_ok();
}

static FfiResult fx_src_stop(void *state) {
    FxSource *src = state;
    fx_set_status(src, FFI_COMPONENT_STATUS_STOPPING);
    fx_runtime_lifecycle(&src->rt, FFI_LIFECYCLE_STOPPING, NULL);
    if (src->kind->on_stop) src->kind->on_stop(src);
    fx_set_status(src, FFI_COMPONENT_STATUS_STOPPED);
    fx_runtime_lifecycle(&src->rt, FFI_LIFECYCLE_STOPPED, NULL);
    fx_runtime_log(&src->rt, FFI_LOG_LEVEL_INFO, "source stopped");
    return fx_ok();
}

static FfiResult fx_src_deprovision(void *state) {
    FxSource *src = state;
    fx_runtime_log(&src->rt, FFI_LOG_LEVEL_INFO, "source deprovisioned");
    return fx_ok();
}

static void fx_src_initialize(void *state, const FfiRuntimeContext *ctx) {
    FxSource *src = state;
    fx_runtime_set(&src->rt, ctx);
    fx_runtime_log(&src->rt, FFI_LOG_LEVEL_INFO, "source initialized (state store: %s, identity: %s)",
                   ctx->state_store ? "yes" : "no", ctx->identity_provider ? "yes" : "no");
}

static FfiSubscriptionResponse *fx_src_subscribe(void *state, FfiStr source_id,
                                                 bool enable_bootstrap, FfiStr query_id,
                                                 FfiStr nodes_json, FfiStr relations_json) {
    FxSource *src = state;
    (void)source_id; /* events carry the source's own id */
    fx_runtime_log(&src->rt, FFI_LOG_LEVEL_INFO, "subscribe query '%.*s' (bootstrap: %s)",
                   (int)query_id.len, query_id.len ? query_id.ptr : "",
                   enable_bootstrap ? "yes" : "no");
    if (src->mode == FX_HOSTILE_NULL_SUBSCRIPTION) {
        fx_runtime_log(&src->rt, FFI_LOG_LEVEL_WARN, "hostile: returning no subscription");
        return NULL;
    }
    FxStrList nodes, relations;
    char err[256];
    if (!fx_str_list_parse(nodes_json, &nodes, err, sizeof err)) {
        fx_runtime_log(&src->rt, FFI_LOG_LEVEL_ERROR, "subscribe: bad node labels: %s", err);
        return NULL;
    }
    if (!fx_str_list_parse(relations_json, &relations, err, sizeof err)) {
        fx_runtime_log(&src->rt, FFI_LOG_LEVEL_ERROR, "subscribe: bad relation labels: %s", err);
        fx_str_list_free(&nodes);
        return NULL;
    }
    FfiSubscriptionResponse *resp = fx_xmalloc(sizeof *resp);
    if (src->mode == FX_HOSTILE_EMPTY_STRINGS) {
        FfiOwnedStr empty = {FX_DANGLING_1, 0, 0};
        resp->query_id = empty;
        resp->source_id = empty;
    } else {
        resp->query_id = fx_owned(query_id.ptr, query_id.len);
        resp->source_id = fx_owned(src->id, src->id_len);
    }
    resp->receiver = NULL;
    resp->bootstrap_receiver = NULL;
    if (src->mode != FX_HOSTILE_NULL_RECEIVER) {
        resp->receiver = fx_change_rx_new(src);
        if (enable_bootstrap)
            resp->bootstrap_receiver = fx_boot_rx_new(src, query_id, &nodes, &relations);
    }
    fx_str_list_free(&nodes);
    fx_str_list_free(&relations);
    return resp;
}

static void fx_src_set_provider(void *state, BootstrapProviderVtable *provider) {
    FxSource *src = state;
    FxProviderRef *fresh = provider ? fx_provider_ref_new(provider) : NULL;
    pthread_mutex_lock(&src->lock);
    FxProviderRef *old = src->provider;
    src->provider = fresh;
    pthread_mutex_unlock(&src->lock);
    fx_provider_ref_put(old);
    fx_runtime_log(&src->rt, FFI_LOG_LEVEL_INFO, "bootstrap provider %s",
                   provider ? "set" : "cleared");
}

static void fx_src_drop(void *state) {
    FxSource *src = state;
    FfiComponentStatus st = fx_get_status(src);
    if ((st == FFI_COMPONENT_STATUS_RUNNING || st == FFI_COMPONENT_STATUS_STARTING) &&
        src->kind->on_stop)
        src->kind->on_stop(src);
    if (src->kind->on_drop) src->kind->on_drop(src);
    fx_provider_ref_put(src->provider);
    fx_runtime_release(&src->rt);
    pthread_mutex_destroy(&src->lock);
    free(src->id);
    free(src->label);
    free(src);
    FX_STAT(sources_dropped);
}

/* ---- factory ------------------------------------------------------------------ */

static const struct {
    const char *name;
    FxHostileMode mode;
} fx_hostile_modes[] = {
    {"none", FX_HOSTILE_NONE},
    {"null", FX_HOSTILE_NULL},
    {"bad_status", FX_HOSTILE_BAD_STATUS},
    {"bad_dispatch", FX_HOSTILE_BAD_DISPATCH},
    {"null_receiver", FX_HOSTILE_NULL_RECEIVER},
    {"null_subscription", FX_HOSTILE_NULL_SUBSCRIPTION},
    {"oversize", FX_HOSTILE_OVERSIZE},
    {"bad_json", FX_HOSTILE_BAD_JSON},
    {"bad_op", FX_HOSTILE_BAD_OP},
    {"bad_utf8", FX_HOSTILE_BAD_UTF8},
    {"after_eos", FX_HOSTILE_AFTER_EOS},
    {"flood_after_drop", FX_HOSTILE_FLOOD_AFTER_DROP},
    {"start_error", FX_HOSTILE_START_ERROR},
    {"start_error_nullmsg", FX_HOSTILE_START_ERROR_NULLMSG},
    {"empty_strings", FX_HOSTILE_EMPTY_STRINGS},
};

static FfiStr fx_sf_kind(const void *state) { return fx_str(((const FxSourceKind *)state)->kind); }
static FfiStr fx_sf_version(const void *state) {
    (void)state;
    return fx_str("1.0.0");
}
static FfiStr fx_sf_schema_name(const void *state) {
    return fx_str(((const FxSourceKind *)state)->schema_name);
}

static FfiOwnedStr fx_sf_schema(const void *state) {
    const FxSourceKind *k = state;
    FxBuf b = {0};
    fx_buf_puts(&b, "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"title\":");
    fx_buf_json_str(&b, k->schema_name, strlen(k->schema_name));
    fx_buf_puts(
        &b,
        ",\"type\":\"object\",\"properties\":{"
        "\"event_count\":{\"type\":\"integer\",\"minimum\":0,\"default\":10,"
        "\"description\":\"number of change events pushed per subscription\"},"
        "\"bootstrap_count\":{\"type\":\"integer\",\"minimum\":0,\"default\":0,"
        "\"description\":\"number of bootstrap records when no provider is set\"},"
        "\"interval_us\":{\"type\":\"integer\",\"minimum\":0,\"default\":0,"
        "\"description\":\"pause between events in microseconds\"},"
        "\"label\":{\"type\":\"string\",\"default\":\"Person\",\"description\":\"node label\"},"
        "\"fail_start\":{\"type\":\"boolean\",\"default\":false},"
        "\"use_store\":{\"type\":\"boolean\",\"default\":false,"
        "\"description\":\"count starts in the state store under key 'starts'\"}");
    if (k->hostile) {
        fx_buf_puts(&b, ",\"mode\":{\"type\":\"string\",\"enum\":[");
        for (size_t i = 0; i < sizeof fx_hostile_modes / sizeof fx_hostile_modes[0]; i++)
            fx_buf_printf(&b, "%s\"%s\"", i ? "," : "", fx_hostile_modes[i].name);
        fx_buf_puts(&b, "]}");
    }
    if (k->extra_schema_properties) {
        fx_buf_puts(&b, ",");
        fx_buf_puts(&b, k->extra_schema_properties);
    }
    fx_buf_puts(&b, "}}");
    FfiOwnedStr s = fx_schema_owned(k->schema_mode, fx_buf_cstr(&b));
    fx_buf_free(&b);
    return s;
}

static bool fx_src_parse(FxSource *src, const FxJson *cfg, char *err, size_t errlen) {
    if (!fx_cfg_int(cfg, "event_count", 10, 0, &src->event_count, err, errlen)) return false;
    if (!fx_cfg_int(cfg, "bootstrap_count", 0, 0, &src->bootstrap_count, err, errlen)) return false;
    if (!fx_cfg_int(cfg, "interval_us", 0, 0, &src->interval_us, err, errlen)) return false;
    if (!fx_cfg_str(cfg, "label", "Person", &src->label, &src->label_len, err, errlen))
        return false;
    if (!fx_cfg_bool(cfg, "fail_start", false, &src->fail_start, err, errlen)) return false;
    if (!fx_cfg_bool(cfg, "use_store", false, &src->use_store, err, errlen)) return false;
    src->mode = FX_HOSTILE_NONE;
    if (src->kind->hostile) {
        char *mode;
        size_t mlen;
        if (!fx_cfg_str(cfg, "mode", "none", &mode, &mlen, err, errlen)) return false;
        bool known = false;
        for (size_t i = 0; i < sizeof fx_hostile_modes / sizeof fx_hostile_modes[0]; i++) {
            if (strcmp(mode, fx_hostile_modes[i].name) == 0) {
                src->mode = fx_hostile_modes[i].mode;
                known = true;
            }
        }
        if (!known) snprintf(err, errlen, "'mode' has an unknown value '%s'", mode);
        free(mode);
        if (!known) return false;
    }
    return true;
}

static SourceVtable *fx_sf_create(void *state, FfiStr id, FfiStr config_json, bool auto_start) {
    const FxSourceKind *k = state;
    char err[256] = {0};
    char *id_c = fx_strndup(id.ptr, id.len);
    FxJson *cfg = fx_config_parse(config_json, err, sizeof err);
    FxSource *src = fx_xcalloc(1, sizeof *src);
    src->kind = k;
    src->id = id_c;
    src->id_len = id.len;
    src->auto_start = auto_start;
    bool ok = cfg && fx_src_parse(src, cfg, err, sizeof err);
    if (ok && src->mode == FX_HOSTILE_NULL) {
        fx_global_log(FFI_LOG_LEVEL_ERROR, k->kind, "fixture::source",
                      "hostile: refusing to create (mode=null)");
        fx_json_free(cfg);
        free(src->label);
        free(src->id);
        free(src);
        return NULL;
    }
    pthread_mutex_init(&src->lock, NULL);
    fx_runtime_init(&src->rt, k->kind, "fixture::source", "source", id_c);
    fx_set_status(src, FFI_COMPONENT_STATUS_STOPPED);
    if (ok && k->on_create) ok = k->on_create(src, cfg, err, sizeof err);
    fx_json_free(cfg);
    if (!ok) {
        fx_global_log(FFI_LOG_LEVEL_ERROR, k->kind, "fixture::source",
                      "invalid configuration for source '%s': %s", id_c, err);
        FX_STAT(config_errors);
        fx_runtime_release(&src->rt);
        pthread_mutex_destroy(&src->lock);
        free(src->label);
        free(src->id);
        free(src);
        return NULL;
    }
    SourceVtable *vt = fx_xmalloc(sizeof *vt);
    vt->state = src;
    vt->executor = NULL;
    vt->id_fn = fx_src_id;
    vt->type_name_fn = fx_src_type_name;
    vt->auto_start_fn = fx_src_auto_start;
    vt->dispatch_mode_fn = fx_src_dispatch;
    vt->start_fn = fx_src_start;
    vt->stop_fn = fx_src_stop;
    vt->status_fn = fx_src_status;
    vt->deprovision_fn = fx_src_deprovision;
    vt->initialize_fn = fx_src_initialize;
    vt->subscribe_fn = fx_src_subscribe;
    vt->set_bootstrap_provider_fn = fx_src_set_provider;
    vt->drop_fn = fx_src_drop;
    FX_STAT(sources_created);
    fx_global_log(FFI_LOG_LEVEL_INFO, k->kind, "fixture::source", "created source '%s'", id_c);
    return vt;
}

static void fx_sf_drop(void *state) {
    (void)state; /* the kind descriptor is static */
    FX_STAT(factories_dropped);
}

SourcePluginVtable fx_source_factory(const FxSourceKind *kind) {
    SourcePluginVtable f;
    f.state = (void *)kind;
    f.executor = NULL;
    f.kind_fn = fx_sf_kind;
    f.config_version_fn = fx_sf_version;
    f.config_schema_json_fn = fx_sf_schema;
    f.config_schema_name_fn = fx_sf_schema_name;
    f.create_source_fn = fx_sf_create;
    f.drop_fn = fx_sf_drop;
    return f;
}
