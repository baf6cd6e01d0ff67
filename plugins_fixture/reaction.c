/*
 * reaction.c - the generic fixture reaction (kinds "fixture", "multi-r1", ...,
 * "opaque-reaction").
 *
 * start_fn starts one thread that pulls results with the host's callback
 * until it returns NULL.  Every result is checked to look like a JSON object,
 * counted, hashed (FNV-1a 64 over all bytes in arrival order) and released
 * with payload->drop_fn.  With record = "store" each result is also written to
 * the state store.  stop_fn joins the thread and publishes the totals: to the
 * state store (result_count, result_bytes, result_fnv1a) and to
 * drasi_fixture_reaction_summary().
 */
#include "fixture.h"

#define FX_FNV_OFFSET UINT64_C(0xcbf29ce484222325)
#define FX_FNV_PRIME UINT64_C(0x100000001b3)

typedef struct FxReaction {
    const FxReactionKind *kind;
    char *id;
    size_t id_len;
    bool auto_start;
    bool record_store;
    FxStrList query_ids;
    FxRuntime rt;
    pthread_mutex_t lock;
    int status; /* FfiComponentStatus, atomic */
    FfiResultPushCallbackFn cb;
    void *cb_ctx;
    bool thread_running;
    pthread_t thread;
    int64_t count;
    int64_t bytes;
    uint64_t fnv;
} FxReaction;

static pthread_mutex_t fx_summary_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t fx_summary_count, fx_summary_bytes;
static uint64_t fx_summary_fnv = FX_FNV_OFFSET;

FX_EXPORT void drasi_fixture_reaction_summary(int64_t *count, int64_t *bytes, uint64_t *fnv) {
    pthread_mutex_lock(&fx_summary_lock);
    if (count) *count = fx_summary_count;
    if (bytes) *bytes = fx_summary_bytes;
    if (fnv) *fnv = fx_summary_fnv;
    pthread_mutex_unlock(&fx_summary_lock);
}

static void fx_r_set_status(FxReaction *r, FfiComponentStatus st) {
    __atomic_store_n(&r->status, (int)st, __ATOMIC_SEQ_CST);
}

static FfiStr fx_r_id(const void *state) {
    const FxReaction *r = state;
    return fx_strn(r->id, r->id_len);
}

static FfiStr fx_r_type_name(const void *state) {
    return fx_str(((const FxReaction *)state)->kind->kind);
}

static bool fx_r_auto_start(const void *state) { return ((const FxReaction *)state)->auto_start; }

static FfiStringArray fx_r_query_ids(const void *state) {
    const FxReaction *r = state;
    FfiStringArray a;
    if (r->query_ids.n == 0) {
        a.data = FX_DANGLING_8;
        a.len = a.cap = 0;
        return a;
    }
    a.data = fx_xmalloc(r->query_ids.n * sizeof(FfiOwnedStr));
    for (size_t i = 0; i < r->query_ids.n; i++)
        a.data[i] = fx_owned(r->query_ids.items[i], r->query_ids.lens[i]);
    a.len = a.cap = r->query_ids.n;
    return a;
}

static FfiComponentStatus fx_r_status(const void *state) {
    return (FfiComponentStatus)__atomic_load_n(&((const FxReaction *)state)->status,
                                               __ATOMIC_SEQ_CST);
}

static bool fx_looks_like_object(const uint8_t *d, size_t len) {
    if (!d) return false;
    size_t k = 0;
    while (k < len && (d[k] == ' ' || d[k] == '\t' || d[k] == '\n' || d[k] == '\r')) k++;
    return k < len && d[k] == '{';
}

static void *fx_r_thread(void *arg) {
    FxReaction *r = arg;
    StateStoreVtable st;
    char *store_id = NULL;
    bool has_store = r->record_store && fx_runtime_store(&r->rt, &st, &store_id);
    if (r->record_store && !has_store)
        fx_runtime_log(&r->rt, FFI_LOG_LEVEL_WARN, "record=store but no state store was given");
    int64_t count = 0, bytes = 0;
    uint64_t fnv = FX_FNV_OFFSET;
    for (;;) {
        DrasiPayload *p = r->cb(r->cb_ctx, NULL);
        if (!p) break;
        FX_STAT(results_received);
        const uint8_t *d = p->data;
        size_t len = p->len;
        if (!fx_looks_like_object(d, len)) {
            FX_STAT(results_invalid);
            fx_runtime_log(&r->rt, FFI_LOG_LEVEL_ERROR, "result %" PRId64 " is not a JSON object",
                           count);
        }
        for (size_t i = 0; d && i < len; i++) {
            fnv ^= d[i];
            fnv *= FX_FNV_PRIME;
        }
        if (has_store) {
            char key[48];
            snprintf(key, sizeof key, "result:%08lld", (long long)count);
            FfiResult res = st.set_fn(st.state, fx_str(store_id), fx_str(key), d, len);
            if (res.error_code != 0)
                fx_runtime_log(&r->rt, FFI_LOG_LEVEL_ERROR, "state store set %s failed: %s", key,
                               res.error_msg ? res.error_msg : "(no message)");
            free(res.error_msg);
        }
        count++;
        bytes += (int64_t)len;
        p->drop_fn(p);
        FX_STAT(results_released);
    }
    pthread_mutex_lock(&r->lock);
    r->count = count;
    r->bytes = bytes;
    r->fnv = fnv;
    pthread_mutex_unlock(&r->lock);
    free(store_id);
    return NULL;
}

static FfiResult fx_r_start(void *state) {
    FxReaction *r = state;
    pthread_mutex_lock(&r->lock);
    if (r->thread_running) {
        pthread_mutex_unlock(&r->lock);
        return fx_ok();
    }
    if (!r->cb) {
        pthread_mutex_unlock(&r->lock);
        fx_runtime_log(&r->rt, FFI_LOG_LEVEL_ERROR, "start without start_result_push_fn");
        return fx_err(1, "start_result_push_fn was not called before start");
    }
    pthread_mutex_unlock(&r->lock);
    fx_r_set_status(r, FFI_COMPONENT_STATUS_STARTING);
    fx_runtime_lifecycle(&r->rt, FFI_LIFECYCLE_STARTING, NULL);
    pthread_mutex_lock(&r->lock);
    r->count = r->bytes = 0;
    r->fnv = FX_FNV_OFFSET;
    r->thread_running = pthread_create(&r->thread, NULL, fx_r_thread, r) == 0;
    bool running = r->thread_running;
    pthread_mutex_unlock(&r->lock);
    if (!running) {
        fx_r_set_status(r, FFI_COMPONENT_STATUS_ERROR);
        fx_runtime_lifecycle(&r->rt, FFI_LIFECYCLE_ERROR, "cannot start the result thread");
        return fx_err(2, "cannot start the result thread");
    }
    fx_r_set_status(r, FFI_COMPONENT_STATUS_RUNNING);
    fx_runtime_lifecycle(&r->rt, FFI_LIFECYCLE_STARTED, NULL);
    fx_runtime_log(&r->rt, FFI_LOG_LEVEL_INFO, "reaction started");
    return fx_ok();
}

static void fx_r_put(FxReaction *r, const StateStoreVtable *st, const char *store_id,
                     const char *key, const char *value) {
    FfiResult res = st->set_fn(st->state, fx_str(store_id), fx_str(key), (const uint8_t *)value,
                               strlen(value));
    if (res.error_code != 0)
        fx_runtime_log(&r->rt, FFI_LOG_LEVEL_ERROR, "state store set %s failed: %s", key,
                       res.error_msg ? res.error_msg : "(no message)");
    free(res.error_msg);
}

/* Joins the result thread (if any) and publishes the totals. */
static void fx_r_finish(FxReaction *r) {
    pthread_mutex_lock(&r->lock);
    bool running = r->thread_running;
    pthread_t t = r->thread;
    r->thread_running = false;
    pthread_mutex_unlock(&r->lock);
    if (!running) return;
    pthread_join(t, NULL);
    pthread_mutex_lock(&r->lock);
    int64_t count = r->count, bytes = r->bytes;
    uint64_t fnv = r->fnv;
    pthread_mutex_unlock(&r->lock);
    pthread_mutex_lock(&fx_summary_lock);
    fx_summary_count = count;
    fx_summary_bytes = bytes;
    fx_summary_fnv = fnv;
    pthread_mutex_unlock(&fx_summary_lock);
    StateStoreVtable st;
    char *store_id;
    if (fx_runtime_store(&r->rt, &st, &store_id)) {
        char v[32];
        snprintf(v, sizeof v, "%" PRId64, count);
        fx_r_put(r, &st, store_id, "result_count", v);
        snprintf(v, sizeof v, "%" PRId64, bytes);
        fx_r_put(r, &st, store_id, "result_bytes", v);
        snprintf(v, sizeof v, "%016" PRIx64, fnv);
        fx_r_put(r, &st, store_id, "result_fnv1a", v);
        free(store_id);
    }
    fx_runtime_log(&r->rt, FFI_LOG_LEVEL_INFO,
                   "reaction received %" PRId64 " results (%" PRId64 " bytes, fnv1a %016" PRIx64 ")",
                   count, bytes, fnv);
}

static FfiResult fx_r_stop(void *state) {
    FxReaction *r = state;
    fx_r_set_status(r, FFI_COMPONENT_STATUS_STOPPING);
    fx_runtime_lifecycle(&r->rt, FFI_LIFECYCLE_STOPPING, NULL);
    fx_r_finish(r);
    fx_r_set_status(r, FFI_COMPONENT_STATUS_STOPPED);
    fx_runtime_lifecycle(&r->rt, FFI_LIFECYCLE_STOPPED, NULL);
    return fx_ok();
}

static FfiResult fx_r_deprovision(void *state) {
    FxReaction *r = state;
    fx_runtime_log(&r->rt, FFI_LOG_LEVEL_INFO, "reaction deprovisioned");
    return fx_ok();
}

static void fx_r_initialize(void *state, const FfiRuntimeContext *ctx) {
    FxReaction *r = state;
    fx_runtime_set(&r->rt, ctx);
    fx_runtime_log(&r->rt, FFI_LOG_LEVEL_INFO, "reaction initialized (state store: %s)",
                   ctx->state_store ? "yes" : "no");
}

static void fx_r_start_push(void *state, FfiResultPushCallbackFn cb, void *cb_ctx) {
    FxReaction *r = state;
    pthread_mutex_lock(&r->lock);
    r->cb = cb;
    r->cb_ctx = cb_ctx;
    pthread_mutex_unlock(&r->lock);
}

static void fx_r_drop(void *state) {
    FxReaction *r = state;
    fx_r_finish(r); /* the host stopped us before, so the callback returns NULL */
    fx_runtime_release(&r->rt);
    pthread_mutex_destroy(&r->lock);
    fx_str_list_free(&r->query_ids);
    free(r->id);
    free(r);
    FX_STAT(reactions_dropped);
}

/* ---- factory ------------------------------------------------------------------ */

static FfiStr fx_rf_kind(const void *state) {
    return fx_str(((const FxReactionKind *)state)->kind);
}
static FfiStr fx_rf_version(const void *state) {
    (void)state;
    return fx_str("1.0.0");
}
static FfiStr fx_rf_schema_name(const void *state) {
    return fx_str(((const FxReactionKind *)state)->schema_name);
}

static FfiOwnedStr fx_rf_schema(const void *state) {
    const FxReactionKind *k = state;
    FxBuf b = {0};
    fx_buf_puts(&b, "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"title\":");
    fx_buf_json_str(&b, k->schema_name, strlen(k->schema_name));
    fx_buf_puts(&b, ",\"type\":\"object\",\"properties\":{\"record\":{\"type\":\"string\","
                    "\"enum\":[\"count\",\"store\"],\"default\":\"count\","
                    "\"description\":\"count results, or also write each to the state store\"}}}");
    FfiOwnedStr s = fx_owned(b.p, b.len);
    fx_buf_free(&b);
    return s;
}

static ReactionVtable *fx_rf_create(void *state, FfiStr id, FfiStr query_ids_json,
                                    FfiStr config_json, bool auto_start) {
    const FxReactionKind *k = state;
    char err[256] = {0};
    char *id_c = fx_strndup(id.ptr, id.len);
    FxStrList qids;
    char *record = NULL;
    size_t rlen = 0;
    FxJson *cfg = NULL;
    bool ok = fx_str_list_parse(query_ids_json, &qids, err, sizeof err);
    if (!ok) {
        char tmp[256];
        snprintf(tmp, sizeof tmp, "query ids: %s", err);
        memcpy(err, tmp, sizeof err);
    } else {
        cfg = fx_config_parse(config_json, err, sizeof err);
        ok = cfg && fx_cfg_str(cfg, "record", "count", &record, &rlen, err, sizeof err);
        if (ok && strcmp(record, "count") != 0 && strcmp(record, "store") != 0) {
            snprintf(err, sizeof err, "'record' must be \"count\" or \"store\" (got \"%s\")",
                     record);
            ok = false;
        }
        if (!ok) fx_str_list_free(&qids);
    }
    fx_json_free(cfg);
    if (!ok) {
        fx_global_log(FFI_LOG_LEVEL_ERROR, k->kind, "fixture::reaction",
                      "invalid configuration for reaction '%s': %s", id_c, err);
        FX_STAT(config_errors);
        free(record);
        free(id_c);
        return NULL;
    }
    FxReaction *r = fx_xcalloc(1, sizeof *r);
    r->kind = k;
    r->id = id_c;
    r->id_len = id.len;
    r->auto_start = auto_start;
    r->record_store = strcmp(record, "store") == 0;
    free(record);
    r->query_ids = qids;
    pthread_mutex_init(&r->lock, NULL);
    fx_runtime_init(&r->rt, k->kind, "fixture::reaction", "reaction", id_c);
    fx_r_set_status(r, FFI_COMPONENT_STATUS_STOPPED);
    ReactionVtable *vt = fx_xmalloc(sizeof *vt);
    vt->state = r;
    vt->executor = NULL;
    vt->id_fn = fx_r_id;
    vt->type_name_fn = fx_r_type_name;
    vt->auto_start_fn = fx_r_auto_start;
    vt->query_ids_fn = fx_r_query_ids;
    vt->start_fn = fx_r_start;
    vt->stop_fn = fx_r_stop;
    vt->status_fn = fx_r_status;
    vt->deprovision_fn = fx_r_deprovision;
    vt->initialize_fn = fx_r_initialize;
    vt->start_result_push_fn = fx_r_start_push;
    vt->drop_fn = fx_r_drop;
    FX_STAT(reactions_created);
    fx_global_log(FFI_LOG_LEVEL_INFO, k->kind, "fixture::reaction", "created reaction '%s'", id_c);
    return vt;
}

static void fx_rf_drop(void *state) {
    (void)state;
    FX_STAT(factories_dropped);
}

ReactionPluginVtable fx_reaction_factory(const FxReactionKind *kind) {
    ReactionPluginVtable f;
    f.state = (void *)kind;
    f.executor = NULL;
    f.kind_fn = fx_rf_kind;
    f.config_version_fn = fx_rf_version;
    f.config_schema_json_fn = fx_rf_schema;
    f.config_schema_name_fn = fx_rf_schema_name;
    f.create_reaction_fn = fx_rf_create;
    f.drop_fn = fx_rf_drop;
    return f;
}
