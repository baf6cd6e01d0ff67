/* source013.c - the source factory FX13_PREFIX of the FFI 0.13 fixtures.
 *
 * Config: {"count": N, "bootstrap_count": B, "mode": M, "secret": NAME,
 *          "alloc": "rustlike"}.
 * Each subscription streams N change events (a cycle of node insert, node
 * update, relation insert, node delete, every property value type of
 * section 12.2) and, with bootstrap enabled, B bootstrap records and their
 * result (from an adopted bootstrap provider when one was set).  "secret"
 * makes create_source_fn resolve {"kind":"Secret","name":NAME} through the
 * host's config resolver.  Modes: "fail" (create error text), "nullptr"
 * (create succeeds with NULL), "nullsubscribe" (subscribe_fn returns NULL),
 * "control" (a FuturesDue control and a Future change after the N events),
 * "wrongtags" (the first event has a float under an Integer tag),
 * "badmsgpack" / "oversize" / "nulldrop" / "nullpayload" (one hostile event
 * first, then the N good ones).
 *
 * "alloc": "rustlike" makes each event cost the heap work of a Rust SDK
 * plugin, not only its two handed-over blocks (the MessagePack buffer, grown
 * by doubling from 64 bytes, and the envelope): before serialising, the
 * stream thread builds the event's in-memory model as separate blocks - per
 * element reference an Arc<str> source id and element id, the label Arc<str>
 * and the Arc<[Arc<str>]> labels, one BTreeMap node per property map, an
 * Arc<str> per property key, one per String value, a Vec per List, and the
 * SourceEventWrapper (its Arc and its String source id) - and frees them
 * after serialising.  That is 18 blocks for a node insert or update, 12 for
 * a relation insert and 6 for a delete (13.5 per event over the cycle), plus
 * the buffer's malloc and 3 reallocs and the envelope.
 */
#define _POSIX_C_SOURCE 200809L
#include "fx013.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct Fx13Source {
    _Atomic int refs;
    char *id;
    char mode[32];
    int64_t count, bootstrap_count;
    bool auto_start, rustlike;
    _Atomic int status;
    Fx13Callbacks cbs;
    const StateStoreVtable *store;
    IdentityProviderVtable identity;
    void *identity_clone;
    bool has_identity;
    pthread_mutex_t lock;
    BootstrapProviderVtable *provider;
} Fx13Source;

typedef struct Fx13Stream {
    _Atomic int refs;
    _Atomic bool stop;
    _Atomic bool started;
    char *source_id;
    int64_t count;
    char mode[32];
    bool rustlike;
    FfiChangePushCallbackFn cb;
    void *cb_ctx;
} Fx13Stream;

static void stream_unref(Fx13Stream *s)
{
    if (atomic_fetch_sub(&s->refs, 1) == 1) {
        free(s->source_id);
        free(s);
    }
}

static bool stream_push(Fx13Stream *s, const uint8_t *ptr, size_t len, FfiBytesDropFn drop,
                        FfiChangeOp op, int64_t i)
{
    FfiSourceEvent *ev = malloc(sizeof *ev);
    if (ev == NULL) {
        if (ptr != NULL && drop != NULL)
            drop((uint8_t *)ptr, len);
        return false;
    }
    ev->payload_ptr = ptr;
    ev->payload_len = len;
    ev->payload_drop_fn = drop;
    ev->op = op;
    ev->timestamp_us = 1700000000000000LL + i;
    FX13_ADD(events_pushed, 1);
    if (!s->cb(s->cb_ctx, ev)) {
        FX13_ADD(push_false_seen, 1);
        return false;
    }
    return true;
}

/* ---- "alloc": "rustlike": the model a Rust source builds per event ---- */

#define FX13_MODEL_MAX 20

typedef struct Fx13Model {
    void *blocks[FX13_MODEL_MAX];
    int n;
} Fx13Model;

/* One heap block of `size` bytes holding `text` after a 16-byte header (the
 * strong and weak counts of an Arc), as Arc<str>::from(&str) allocates. */
static void model_block(Fx13Model *m, size_t size, const char *text)
{
    size_t len = text ? strlen(text) : 0;
    if (size < 16 + len)
        size = 16 + len;
    uint8_t *b = m->n < FX13_MODEL_MAX ? malloc(size) : NULL;
    if (b == NULL)
        return;
    memset(b, 0, 16);
    if (len > 0)
        memcpy(b + 16, text, len);
    m->blocks[m->n++] = b;
}

/* A BTreeMap leaf node of up to 11 (Arc<str>, ElementValue) entries. */
#define FX13_BTREE_LEAF 544

static void model_build(Fx13Model *m, const char *source_id, int64_t i)
{
    char id[32], other[32], name[32];
    int64_t phase = i % 4;
    snprintf(id, sizeof id, "n%lld", (long long)(i - phase));
    m->n = 0;
    model_block(m, 48, NULL);          /* Arc<SourceEventWrapper> */
    model_block(m, 0, source_id);      /* its String source_id */
    model_block(m, 0, source_id);      /* ElementReference.source_id */
    if (phase == 2) {
        snprintf(other, sizeof other, "r%lld", (long long)i);
        model_block(m, 0, other);      /* the relation's element_id */
        model_block(m, 0, "KNOWS");
        model_block(m, 32, NULL);      /* Arc<[Arc<str>]> labels */
        model_block(m, 0, id);         /* in_node element_id */
        model_block(m, 0, id);         /* out_node element_id */
        model_block(m, FX13_BTREE_LEAF, NULL);
        model_block(m, 0, "since");
        model_block(m, 0, source_id);  /* in_node source_id */
        model_block(m, 0, source_id);  /* out_node source_id */
        return;
    }
    model_block(m, 0, id);
    model_block(m, 0, "Person");
    model_block(m, 32, NULL);
    if (phase == 3)
        return;                        /* a delete carries only metadata */
    snprintf(name, sizeof name, "p%lld", (long long)i);
    model_block(m, FX13_BTREE_LEAF, NULL);
    static const char *const keys[6] = {"addr", "age", "name", "score", "tags", "when"};
    for (int k = 0; k < 6; k++)
        model_block(m, 0, keys[k]);
    model_block(m, 0, name);           /* String("p<i>") */
    model_block(m, FX13_BTREE_LEAF, NULL); /* addr's Object map */
    model_block(m, 0, "city");
    model_block(m, 0, "Oslo");
    model_block(m, 64, NULL);          /* tags: Vec<ElementValue> of 2 */
}

static void model_free(Fx13Model *m)
{
    for (int k = 0; k < m->n; k++)
        free(m->blocks[k]);
    m->n = 0;
}

static const FfiChangeOp fx13_cycle_ops[4] = {FFI_CHANGE_OP_INSERT, FFI_CHANGE_OP_UPDATE,
                                              FFI_CHANGE_OP_INSERT, FFI_CHANGE_OP_DELETE};

static void *stream_thread(void *raw)
{
    Fx13Stream *s = raw;
    bool go = true;
    const uint8_t *ptr;
    size_t len;
    FfiBytesDropFn drop;
    if (fx13_hostile_payload(s->mode, &ptr, &len, &drop))
        go = stream_push(s, ptr, len, drop, FFI_CHANGE_OP_UPDATE, 0);
    bool wrong = FX13_MODE_IS(s->mode, "wrongtags");
    Fx13Model model;
    model.n = 0;
    for (int64_t i = 0; go && i < s->count && !atomic_load(&s->stop); i++) {
        if (s->rustlike)
            model_build(&model, s->source_id, i);
        uint8_t *doc = fx13_event_payload(s->source_id, i, 'c', wrong && i == 0, &len);
        model_free(&model);
        if (doc == NULL)
            break;
        go = stream_push(s, doc, len, fx13_payload_drop, fx13_cycle_ops[i % 4], i);
    }
    if (go && FX13_MODE_IS(s->mode, "control")) {
        for (int k = 0; go && k < 2; k++) {
            uint8_t *doc = fx13_event_payload(s->source_id, s->count + k, k ? 'f' : 'd', false,
                                              &len);
            if (doc == NULL)
                break;
            go = stream_push(s, doc, len, fx13_payload_drop, FFI_CHANGE_OP_UPDATE, s->count + k);
        }
    }
    FX13_ADD(end_of_stream_sent, 1);
    s->cb(s->cb_ctx, NULL);
    stream_unref(s);
    return NULL;
}

static void stream_start(void *state, FfiChangePushCallbackFn cb, void *cb_ctx)
{
    Fx13Stream *s = state;
    if (atomic_exchange(&s->started, true))
        return;
    s->cb = cb;
    s->cb_ctx = cb_ctx;
    atomic_fetch_add(&s->refs, 1);
    if (!fx13_spawn(stream_thread, s)) {
        FX13_ADD(end_of_stream_sent, 1);
        cb(cb_ctx, NULL);
        stream_unref(s);
    }
}

static void stream_drop(void *state)
{
    Fx13Stream *s = state;
    atomic_store(&s->stop, true);
    FX13_ADD(receivers_dropped, 1);
    stream_unref(s);
}

/* ---- the source vtable ---- */

static void src_unref(Fx13Source *src)
{
    if (atomic_fetch_sub(&src->refs, 1) == 1) {
        pthread_mutex_destroy(&src->lock);
        free(src->id);
        free(src);
    }
}

static FfiStr src_id(const void *st) { return fx13_str(((const Fx13Source *)st)->id); }
static FfiStr src_type(const void *st) { (void)st; return fx13_str(FX13_PREFIX); }
static bool src_auto_start(const void *st) { return ((const Fx13Source *)st)->auto_start; }
static FfiDispatchMode src_dispatch(const void *st) { (void)st; return FFI_DISPATCH_MODE_CHANNEL; }
static bool src_replay(const void *st) { (void)st; return false; }

static FfiOwnedStr src_properties(const void *st)
{
    const Fx13Source *src = st;
    char buf[96];
    snprintf(buf, sizeof buf, "{\"count\":%lld,\"bootstrap_count\":%lld}",
             (long long)src->count, (long long)src->bootstrap_count);
    return fx13_owned(buf);
}

static FfiOwnedStr src_schema(const void *st) { (void)st; return fx13_owned("null"); }

static void src_use_services(Fx13Source *src)
{
    if (src->has_identity) {
        static const char ctx[] = "{\"host\":\"db.example\"}";
        FfiCredentialsResult r = src->identity.get_credentials_fn(
            src->identity.state, (const uint8_t *)ctx, sizeof ctx - 1);
        if (r.error_code == 0)
            FX13_ADD(foreign_identity_calls, 1);
        free(r.error_msg);
        free(r.credentials.field1);
        free(r.credentials.field2);
        free(r.credentials.field3);
        if (src->identity_clone == NULL && src->identity.clone_fn != NULL)
            src->identity_clone = src->identity.clone_fn(src->identity.state);
    }
    if (src->store != NULL) {
        const StateStoreVtable *ss = src->store;
        FfiResult w = ss->set_fn(ss->state, fx13_str(src->id), fx13_str("started"),
                                 (const uint8_t *)"yes", 3);
        if (w.error_code == 0)
            FX13_ADD(state_store_ops, 1);
        free(w.error_msg);
        FfiGetResult g = ss->get_fn(ss->state, fx13_str(src->id), fx13_str("started"));
        if (g.error_code == 0 && g.found && g.len == 3 && memcmp(g.data, "yes", 3) == 0)
            FX13_ADD(state_store_ops, 1);
        if (g.cap > 0)
            free(g.data);
        free(g.error_msg);
    }
}

static FfiResult src_start(void *st)
{
    Fx13Source *src = st;
    atomic_store(&src->status, FFI_COMPONENT_STATUS_RUNNING);
    src_use_services(src);
    fx13_lifecycle(&src->cbs, src->id, "source", FFI_LIFECYCLE_STARTED);
    fx13_log(FFI_LOG_LEVEL_DEBUG, src->id, "source started");
    return fx13_ok();
}

static FfiResult src_stop(void *st)
{
    Fx13Source *src = st;
    atomic_store(&src->status, FFI_COMPONENT_STATUS_STOPPED);
    fx13_lifecycle(&src->cbs, src->id, "source", FFI_LIFECYCLE_STOPPED);
    return fx13_ok();
}

static FfiComponentStatus src_status(const void *st)
{
    return (FfiComponentStatus)atomic_load(&((const Fx13Source *)st)->status);
}

static FfiResult src_deprovision(void *st)
{
    atomic_store(&((Fx13Source *)st)->status, FFI_COMPONENT_STATUS_REMOVED);
    return fx13_ok();
}

static void src_initialize(void *st, const FfiRuntimeContext *ctx)
{
    Fx13Source *src = st;
    src->cbs.lifecycle = ctx->lifecycle_callback;
    src->cbs.lifecycle_ctx = ctx->lifecycle_ctx;
    src->store = ctx->state_store;
    if (ctx->identity_provider != NULL && !src->has_identity) {
        src->identity = *ctx->identity_provider; /* by value: the block is transient */
        src->has_identity = true;
    }
    atomic_store(&src->status, FFI_COMPONENT_STATUS_ADDED);
}

static FfiSubscriptionResponse *src_subscribe(void *st, FfiStr source_id, bool enable_bootstrap,
                                              FfiStr query_id, FfiStr nodes_json,
                                              FfiStr relations_json, const uint8_t *resume_ptr,
                                              uint32_t resume_len, bool position_handle)
{
    Fx13Source *src = st;
    (void)nodes_json, (void)relations_json, (void)resume_ptr, (void)resume_len;
    (void)position_handle;
    if (FX13_MODE_IS(src->mode, "nullsubscribe"))
        return NULL;
    FfiSubscriptionResponse *resp = calloc(1, sizeof *resp);
    FfiChangeReceiver *rx = calloc(1, sizeof *rx);
    Fx13Stream *s = calloc(1, sizeof *s);
    char *qid = fx13_strndup(query_id.ptr ? query_id.ptr : "", query_id.len);
    if (resp == NULL || rx == NULL || s == NULL || qid == NULL)
        goto oom;
    s->source_id = fx13_strndup(src->id, strlen(src->id));
    if (s->source_id == NULL)
        goto oom;
    atomic_init(&s->refs, 1);
    s->count = src->count;
    s->rustlike = src->rustlike;
    snprintf(s->mode, sizeof s->mode, "%s", src->mode);
    rx->state = s;
    rx->start_push_fn = stream_start;
    rx->drop_fn = stream_drop;
    resp->query_id = fx13_owned(qid);
    resp->source_id = fx13_owned(src->id);
    resp->receiver = rx;
    FX13_ADD(receivers_created, 1);
    free(qid);
    if (enable_bootstrap) {
        pthread_mutex_lock(&src->lock);
        BootstrapProviderVtable *prov = src->provider;
        pthread_mutex_unlock(&src->lock);
        if (prov != NULL) {
            {
                FfiBootstrapStream *bs = prov->bootstrap_fn(
                    prov->state, query_id, NULL, 0, NULL, 0, fx13_str("req"),
                    fx13_str("fixture013"), source_id);
                if (bs != NULL) {
                    resp->bootstrap_receiver = bs->events;
                    resp->bootstrap_result_receiver = bs->result;
                    free(bs);
                }
            }
        } else {
            fx13_bootstrap_run(src->id, src->bootstrap_count, "normal", &resp->bootstrap_receiver,
                               &resp->bootstrap_result_receiver);
        }
    }
    return resp;
oom:
    if (s != NULL)
        free(s->source_id);
    free(resp);
    free(rx);
    free(s);
    free(qid);
    return NULL;
}

static void src_set_provider(void *st, BootstrapProviderVtable *provider)
{
    Fx13Source *src = st;
    pthread_mutex_lock(&src->lock);
    BootstrapProviderVtable *old = src->provider;
    src->provider = provider;
    pthread_mutex_unlock(&src->lock);
    FX13_ADD(providers_adopted, 1);
    if (old != NULL) {
        old->drop_fn(old->state);
        free(old);
    }
}

static FfiResult src_remove_handle(void *st, FfiStr query_id)
{
    (void)st, (void)query_id;
    return fx13_ok();
}

static void src_drop(void *st)
{
    Fx13Source *src = st;
    if (src->has_identity) {
        if (src->identity_clone != NULL) {
            src->identity.drop_fn(src->identity_clone);
            FX13_ADD(foreign_identity_dropped, 1);
        }
        src->identity.drop_fn(src->identity.state);
        FX13_ADD(foreign_identity_dropped, 1);
    }
    if (src->provider != NULL) {
        src->provider->drop_fn(src->provider->state);
        free(src->provider);
    }
    FX13_ADD(objects_dropped, 1);
    src_unref(src);
}

/* ---- the factory ---- */

static FfiCreateResult fx13_resolve_secret(const char *name)
{
    ConfigResolverFn cb;
    const void *ctx;
    fx13_resolver(&cb, &ctx);
    if (cb == NULL)
        return fx13_create_error(FX13_PREFIX ": no config resolver for secret %s", name);
    char *json = fx13_printf("{\"kind\":\"Secret\",\"name\":\"%s\"}", name);
    if (json == NULL)
        return fx13_create_error("%s", "out of memory");
    FfiGetSecretResult r = cb(ctx, fx13_str(json));
    free(json);
    FX13_ADD(resolver_calls, 1);
    if (r.error_code != 0) {
        FX13_ADD(resolver_failures, 1);
        FfiCreateResult out = fx13_create_error(FX13_PREFIX ": secret not resolved: %s",
                                                r.error_msg ? r.error_msg : "unknown error");
        free(r.error_msg);
        free(r.value);
        return out;
    }
    free(r.error_msg);
    free(r.value);
    return fx13_created(NULL);
}

static FfiCreateResult fx13_create_source(void *state, FfiStr id, FfiStr config_json,
                                          bool auto_start)
{
    char mode[32] = "normal", secret[64], alloc[16] = "";
    (void)state;
    fx13_cfg_str(config_json, "mode", mode, sizeof mode);
    if (FX13_MODE_IS(mode, "fail")) {
        char reason[64] = "mode fail";
        fx13_cfg_str(config_json, "reason", reason, sizeof reason);
        return fx13_create_error(FX13_PREFIX ": create refused: %s", reason);
    }
    if (FX13_MODE_IS(mode, "nullptr"))
        return fx13_created(NULL);
    if (fx13_cfg_str(config_json, "secret", secret, sizeof secret)) {
        FfiCreateResult r = fx13_resolve_secret(secret);
        if (r.error_code != 0)
            return r;
    }
    Fx13Source *src = calloc(1, sizeof *src);
    SourceVtable *vt = calloc(1, sizeof *vt);
    char *sid = fx13_strndup(id.ptr ? id.ptr : "", id.len);
    if (src == NULL || vt == NULL || sid == NULL) {
        free(src);
        free(vt);
        free(sid);
        return fx13_create_error("%s", "out of memory");
    }
    atomic_init(&src->refs, 1);
    pthread_mutex_init(&src->lock, NULL);
    src->id = sid;
    snprintf(src->mode, sizeof src->mode, "%s", mode);
    src->count = fx13_cfg_int(config_json, "count", 4);
    src->bootstrap_count = fx13_cfg_int(config_json, "bootstrap_count", 2);
    src->auto_start = auto_start;
    src->rustlike = fx13_cfg_str(config_json, "alloc", alloc, sizeof alloc)
                    && strcmp(alloc, "rustlike") == 0;
    atomic_init(&src->status, FFI_COMPONENT_STATUS_STOPPED);
    vt->state = src;
    vt->id_fn = src_id;
    vt->type_name_fn = src_type;
    vt->auto_start_fn = src_auto_start;
    vt->dispatch_mode_fn = src_dispatch;
    vt->properties_fn = src_properties;
    vt->describe_schema_fn = src_schema;
    vt->start_fn = src_start;
    vt->stop_fn = src_stop;
    vt->status_fn = src_status;
    vt->deprovision_fn = src_deprovision;
    vt->initialize_fn = src_initialize;
    vt->subscribe_fn = src_subscribe;
    vt->set_bootstrap_provider_fn = src_set_provider;
    vt->supports_replay_fn = src_replay;
    vt->remove_position_handle_fn = src_remove_handle;
    vt->drop_fn = src_drop;
    FX13_ADD(objects_created, 1);
    fx13_log(FFI_LOG_LEVEL_INFO, sid, "source created");
    return fx13_created(vt);
}

static FfiStr sf_kind(const void *s) { (void)s; return fx13_str(FX13_PREFIX); }
static FfiStr sf_version(const void *s) { (void)s; return fx13_str("1.0.0"); }
static FfiOwnedStr sf_schema(const void *s) { (void)s; return fx13_owned("{\"type\":\"object\"}"); }
static FfiStr sf_schema_name(const void *s) { (void)s; return fx13_str("fixture013.SourceConfig"); }
static void sf_drop(void *s) { (void)s; FX13_ADD(factories_dropped, 1); }

void fx13_source_factory(SourcePluginVtable *vt)
{
    vt->kind_fn = sf_kind;
    vt->config_version_fn = sf_version;
    vt->config_schema_json_fn = sf_schema;
    vt->config_schema_name_fn = sf_schema_name;
    vt->create_source_fn = fx13_create_source;
    vt->drop_fn = sf_drop;
}
