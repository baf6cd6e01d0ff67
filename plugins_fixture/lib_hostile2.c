/*
 * lib_hostile2.c - libdrasi_hostile2: a plugin that breaks the boundary rules
 * of ABI.md in ways a host must survive without reading, writing or freeing
 * memory it does not own.
 *
 * What drasi_plugin_init registers is chosen beforehand with the exported
 * drasi_hostile2_set_registration(mode) (the library's globals survive
 * between loads of one path):
 *
 *   0  normal: source kinds "badbool", "dangling-schema", "storm" and the
 *      reaction kind "badarray" (below);
 *   1  source_plugin_count = SIZE_MAX over a one-element array;
 *   2  source_plugin_count = 2^40 over a one-element array;
 *   3  reaction_plugin_count = 2^40 with NULL as the array.
 *
 * Kinds of the normal registration:
 *
 *   badbool          created sources answer auto_start_fn with the byte 0x42
 *                    (a C bool may only hold 0 or 1);
 *   dangling-schema  config_schema_json_fn returns {ptr = 0x1, len = 5,
 *                    cap = 0}: owned bytes that do not exist;
 *   storm            start_fn starts drasi_hostile2_set_storm(n) detached
 *                    threads (default 4) that call the component's log and
 *                    lifecycle callbacks and its state store (set, get) in a
 *                    loop for the rest of the process, without ever stopping;
 *   badarray         created reactions answer query_ids_fn with
 *                    {data = one element, len = 100000, cap = 1}.
 *
 * drasi_hostile2_log(level, n, distinct) sends n global log messages with the
 * given raw level; with `distinct` each names a different component id
 * ("c<k>").  drasi_hostile2_storm_global(n) starts n detached threads that
 * send global logs and lifecycle events for ever.
 */
#include "fixture.h"

static int hx_registration_mode;
static int hx_storm_threads = 4;
static uint64_t hx_storm_calls;

FX_EXPORT void drasi_hostile2_set_registration(int mode) { hx_registration_mode = mode; }
FX_EXPORT void drasi_hostile2_set_storm(int threads) { hx_storm_threads = threads; }
FX_EXPORT uint64_t drasi_hostile2_storm_calls(void) {
    return __atomic_load_n(&hx_storm_calls, __ATOMIC_SEQ_CST);
}

/* ---- plugin-wide callbacks, captured for the raw calls below ---------------- */

static pthread_mutex_t hx_lock = PTHREAD_MUTEX_INITIALIZER;
static LogCallbackFn hx_log_cb;
static void *hx_log_ctx;
static LifecycleCallbackFn hx_lc_cb;
static void *hx_lc_ctx;

static void hx_set_log(void *ctx, LogCallbackFn cb) {
    pthread_mutex_lock(&hx_lock);
    hx_log_cb = cb;
    hx_log_ctx = ctx;
    pthread_mutex_unlock(&hx_lock);
    fx_set_log_callback(ctx, cb);
}

static void hx_set_lifecycle(void *ctx, LifecycleCallbackFn cb) {
    pthread_mutex_lock(&hx_lock);
    hx_lc_cb = cb;
    hx_lc_ctx = ctx;
    pthread_mutex_unlock(&hx_lock);
    fx_set_lifecycle_callback(ctx, cb);
}

static void hx_log(LogCallbackFn cb, void *ctx, int level, const char *msg, const char *cid) {
    FfiLogEntry e;
    memset(&e, 0, sizeof e);
    e.level = (FfiLogLevel)level;
    e.plugin_id = fx_str("hostile2");
    e.target = fx_str("fixture::hostile2");
    e.message = fx_str(msg);
    e.timestamp_us = fx_now_us();
    e.instance_id = fx_str("");
    e.component_id = fx_str(cid);
    cb(ctx, &e);
}

static void hx_lifecycle(LifecycleCallbackFn cb, void *ctx, const char *cid) {
    FfiLifecycleEvent ev;
    ev.component_id = fx_str(cid);
    ev.component_type = fx_str("source");
    ev.event_type = FFI_LIFECYCLE_STARTED;
    ev.message = fx_str("");
    ev.timestamp_us = fx_now_us();
    cb(ctx, &ev);
}

FX_EXPORT void drasi_hostile2_log(int level, int n, int distinct) {
    pthread_mutex_lock(&hx_lock);
    LogCallbackFn cb = hx_log_cb;
    void *ctx = hx_log_ctx;
    pthread_mutex_unlock(&hx_lock);
    if (!cb) return;
    char msg[64], cid[32];
    for (int k = 0; k < n; k++) {
        snprintf(msg, sizeof msg, "hostile2 message %d", k);
        snprintf(cid, sizeof cid, "c%d", k);
        hx_log(cb, ctx, level, msg, distinct ? cid : "");
    }
}

/* ---- threads that never stop ---------------------------------------------- */

typedef struct HxStorm {
    LogCallbackFn log_cb;
    void *log_ctx;
    LifecycleCallbackFn lc_cb;
    void *lc_ctx;
    bool has_store;
    StateStoreVtable store;
    char *store_id;
} HxStorm;

static void hx_store_round(const HxStorm *s, uint64_t k) {
    char key[32];
    uint8_t value[16];
    snprintf(key, sizeof key, "k%llu", (unsigned long long)(k % 64));
    memset(value, (int)(k & 0xff), sizeof value);
    FfiStr sid = fx_str(s->store_id), fkey = fx_str(key);
    FfiResult r = s->store.set_fn(s->store.state, sid, fkey, value, sizeof value);
    free(r.error_msg);
    FfiGetResult g = s->store.get_fn(s->store.state, sid, fkey);
    if (g.cap > 0) free(g.data);
    free(g.error_msg);
}

static void *hx_storm_main(void *arg) {
    HxStorm *s = arg;
    for (uint64_t k = 0;; k++) {
        if (s->log_cb) hx_log(s->log_cb, s->log_ctx, FFI_LOG_LEVEL_DEBUG, "storm", "storm");
        if (s->lc_cb) hx_lifecycle(s->lc_cb, s->lc_ctx, "storm");
        if (s->has_store) hx_store_round(s, k);
        __atomic_add_fetch(&hx_storm_calls, 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

static bool hx_spawn(const HxStorm *tmpl, int n) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        HxStorm *s = fx_xmalloc(sizeof *s);
        *s = *tmpl;
        s->store_id = tmpl->store_id ? fx_strdup(tmpl->store_id) : NULL;
        pthread_t t;
        ok = pthread_create(&t, &attr, hx_storm_main, s) == 0;
    }
    pthread_attr_destroy(&attr);
    return ok;
}

FX_EXPORT int drasi_hostile2_storm_global(int n) {
    HxStorm s;
    memset(&s, 0, sizeof s);
    pthread_mutex_lock(&hx_lock);
    s.log_cb = hx_log_cb;
    s.log_ctx = hx_log_ctx;
    s.lc_cb = hx_lc_cb;
    s.lc_ctx = hx_lc_ctx;
    pthread_mutex_unlock(&hx_lock);
    return hx_spawn(&s, n) ? 0 : -1;
}

/* The storm source: its threads copy the component's callbacks and store (the
 * host keeps both answering, also after release) and never touch the source. */
static bool hx_storm_start(FxSource *src, char **error_msg) {
    HxStorm s;
    memset(&s, 0, sizeof s);
    pthread_mutex_lock(&src->rt.lock);
    s.log_cb = src->rt.log_cb;
    s.log_ctx = src->rt.log_ctx;
    s.lc_cb = src->rt.lc_cb;
    s.lc_ctx = src->rt.lc_ctx;
    pthread_mutex_unlock(&src->rt.lock);
    char *sid = NULL;
    s.has_store = fx_runtime_store(&src->rt, &s.store, &sid);
    s.store_id = sid;
    bool ok = hx_spawn(&s, hx_storm_threads);
    free(sid);
    if (!ok) *error_msg = fx_strdup("cannot start storm threads");
    return ok;
}

/* ---- kinds ------------------------------------------------------------------ */

static const FxSourceKind hx_badbool = {
    .kind = "badbool", .schema_name = "source.hostile2.BadBoolConfig"};
static const FxSourceKind hx_dangling = {
    .kind = "dangling-schema", .schema_name = "source.hostile2.DanglingSchemaConfig"};
static const FxSourceKind hx_storm = {
    .kind = "storm", .schema_name = "source.hostile2.StormConfig", .on_start = hx_storm_start};
static const FxReactionKind hx_badarray = {
    .kind = "badarray", .schema_name = "reaction.hostile2.BadArrayConfig"};

/* A bool function that answers 0x42 in the return register: called through a
 * `bool (*)(const void *)` pointer, the caller sees a _Bool holding 0x42. */
static uint8_t hx_auto_start_42(const void *state) {
    (void)state;
    return 0x42;
}

static SourceVtable *hx_badbool_create(void *state, FfiStr id, FfiStr config, bool auto_start) {
    SourceVtable *vt = fx_source_factory(&hx_badbool).create_source_fn(state, id, config, auto_start);
    if (vt) vt->auto_start_fn = (bool (*)(const void *))(void (*)(void))hx_auto_start_42;
    return vt;
}

static FfiOwnedStr hx_dangling_schema(const void *state) {
    (void)state;
    FfiOwnedStr s = {FX_DANGLING_1, 5, 0};
    return s;
}

static FfiStringArray hx_bad_query_ids(const void *state) {
    (void)state;
    FfiStringArray a;
    a.data = fx_xmalloc(sizeof(FfiOwnedStr));
    a.data[0] = fx_owned("q", 1);
    a.len = 100000;
    a.cap = 1;
    return a;
}

static ReactionVtable *hx_badarray_create(void *state, FfiStr id, FfiStr qids, FfiStr config,
                                          bool auto_start) {
    ReactionVtable *vt =
        fx_reaction_factory(&hx_badarray).create_reaction_fn(state, id, qids, config, auto_start);
    if (vt) vt->query_ids_fn = hx_bad_query_ids;
    return vt;
}

static SourcePluginVtable *hx_one_source(void) {
    SourcePluginVtable *a = fx_xmalloc(sizeof *a);
    *a = fx_source_factory(&hx_storm);
    return a;
}

FX_EXPORT FfiPluginRegistration *drasi_plugin_init(void) {
    FfiPluginRegistration *reg;
    switch (hx_registration_mode) {
    case 1:
    case 2:
    case 3:
        reg = fx_registration_new(NULL, 0, NULL, 0, NULL, 0);
        if (hx_registration_mode == 3) {
            reg->reaction_plugins = NULL;
            reg->reaction_plugin_count = (size_t)1 << 40;
        } else {
            reg->source_plugins = hx_one_source();
            reg->source_plugin_count = hx_registration_mode == 1 ? SIZE_MAX : (size_t)1 << 40;
        }
        break;
    default: {
        SourcePluginVtable s[3] = {fx_source_factory(&hx_badbool), fx_source_factory(&hx_dangling),
                                   fx_source_factory(&hx_storm)};
        s[0].create_source_fn = hx_badbool_create;
        s[1].config_schema_json_fn = hx_dangling_schema;
        ReactionPluginVtable r = fx_reaction_factory(&hx_badarray);
        r.create_reaction_fn = hx_badarray_create;
        reg = fx_registration_new(s, 3, &r, 1, NULL, 0);
    }
    }
    reg->set_log_callback = hx_set_log;
    reg->set_lifecycle_callback = hx_set_lifecycle;
    return reg;
}
