/*
 * lib_lifetime.c - libdrasi_lifetime: one source factory, kind "lifetime",
 * that watches how the host treats the lifetime of its objects.
 *
 * A source's state is never freed (it stays on a list), so a call after its
 * drop_fn is observed and counted instead of being undefined behaviour:
 *
 *   calls_after_drop   any vtable call (drop_fn included) on a dropped source
 *   drops_during_call  drop_fn while another call on that source is running
 *   last_drop_thread   pthread_self() of the latest drop_fn
 *
 * Configuration: `call_sleep_us` (start_fn, status_fn and stop_fn sleep that
 * long, widening race windows), `stop_block` (stop_fn blocks until
 * drasi_lifetime_unblock(), which may never come), `refuse` (create_source
 * logs an error and returns NULL).
 *
 * drasi_lifetime_stats(int64_t out[8]) fills, in order: created, dropped,
 * calls, calls_after_drop, drops_during_call, blocked (stop_fn calls waiting
 * now), last_drop_thread, live (created - dropped).
 */
#include "fixture.h"

typedef struct LtSource {
    char *id;
    size_t id_len;
    bool auto_start;
    int64_t call_sleep_us;
    bool stop_block;
    int status;    /* atomic */
    int in_call;   /* atomic: calls running now */
    int dropped;   /* atomic */
    struct LtSource *next;
} LtSource;

static pthread_mutex_t lt_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lt_cond = PTHREAD_COND_INITIALIZER;
static bool lt_unblocked;
static LtSource *lt_all; /* every source ever made (kept reachable) */

static int64_t lt_created, lt_dropped, lt_calls, lt_after_drop, lt_during_call, lt_blocked;
static uint64_t lt_drop_thread;

#define LT_ADD(v, n) ((void)__atomic_add_fetch(&(v), (n), __ATOMIC_SEQ_CST))
#define LT_GET(v) __atomic_load_n(&(v), __ATOMIC_SEQ_CST)

static LtSource *lt_enter(const void *state) {
    LtSource *s = (LtSource *)state;
    LT_ADD(lt_calls, 1);
    LT_ADD(s->in_call, 1);
    if (LT_GET(s->dropped)) LT_ADD(lt_after_drop, 1);
    return s;
}

static void lt_leave(LtSource *s) {
    if (LT_GET(s->dropped)) LT_ADD(lt_after_drop, 1);
    LT_ADD(s->in_call, -1);
}

static FfiStr lt_id(const void *state) {
    LtSource *s = lt_enter(state);
    FfiStr r = fx_strn(s->id, s->id_len);
    lt_leave(s);
    return r;
}

static FfiStr lt_type_name(const void *state) {
    LtSource *s = lt_enter(state);
    lt_leave(s);
    return fx_str("lifetime");
}

static bool lt_auto_start(const void *state) {
    LtSource *s = lt_enter(state);
    bool r = s->auto_start;
    lt_leave(s);
    return r;
}

static FfiDispatchMode lt_dispatch_mode(const void *state) {
    LtSource *s = lt_enter(state);
    lt_leave(s);
    return FFI_DISPATCH_MODE_CHANNEL;
}

static FfiResult lt_start(void *state) {
    LtSource *s = lt_enter(state);
    if (s->call_sleep_us > 0) fx_sleep_us(s->call_sleep_us);
    __atomic_store_n(&s->status, FFI_COMPONENT_STATUS_RUNNING, __ATOMIC_SEQ_CST);
    lt_leave(s);
    return fx_ok();
}

static FfiResult lt_stop(void *state) {
    LtSource *s = lt_enter(state);
    if (s->call_sleep_us > 0) fx_sleep_us(s->call_sleep_us);
    if (s->stop_block) {
        pthread_mutex_lock(&lt_lock);
        LT_ADD(lt_blocked, 1);
        while (!lt_unblocked) pthread_cond_wait(&lt_cond, &lt_lock);
        LT_ADD(lt_blocked, -1);
        pthread_mutex_unlock(&lt_lock);
    }
    __atomic_store_n(&s->status, FFI_COMPONENT_STATUS_STOPPED, __ATOMIC_SEQ_CST);
    lt_leave(s);
    return fx_ok();
}

static FfiComponentStatus lt_status(const void *state) {
    LtSource *s = lt_enter(state);
    if (s->call_sleep_us > 0) fx_sleep_us(s->call_sleep_us);
    FfiComponentStatus r = (FfiComponentStatus)__atomic_load_n(&s->status, __ATOMIC_SEQ_CST);
    lt_leave(s);
    return r;
}

static FfiResult lt_deprovision(void *state) {
    LtSource *s = lt_enter(state);
    lt_leave(s);
    return fx_ok();
}

static void lt_initialize(void *state, const FfiRuntimeContext *ctx) {
    (void)ctx;
    LtSource *s = lt_enter(state);
    lt_leave(s);
}

static FfiSubscriptionResponse *lt_subscribe(void *state, FfiStr source_id, bool bootstrap,
                                             FfiStr query_id, FfiStr nodes, FfiStr relations) {
    (void)source_id, (void)bootstrap, (void)query_id, (void)nodes, (void)relations;
    LtSource *s = lt_enter(state);
    lt_leave(s);
    return NULL; /* this source has no events */
}

static void lt_drop(void *state) {
    LtSource *s = (LtSource *)state;
    LT_ADD(lt_calls, 1);
    if (LT_GET(s->in_call) > 0) LT_ADD(lt_during_call, 1);
    if (__atomic_exchange_n(&s->dropped, 1, __ATOMIC_SEQ_CST)) {
        LT_ADD(lt_after_drop, 1); /* a second drop */
        return;
    }
    __atomic_store_n(&lt_drop_thread, (uint64_t)pthread_self(), __ATOMIC_SEQ_CST);
    LT_ADD(lt_dropped, 1);
    FX_STAT(sources_dropped);
}

/* ---- the factory ------------------------------------------------------------ */

static const char lt_schema[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"call_sleep_us\":{\"type\":\"integer\",\"minimum\":0},"
    "\"stop_block\":{\"type\":\"boolean\"},"
    "\"refuse\":{\"type\":\"boolean\"}}}";

static FfiStr lt_kind(const void *state) {
    (void)state;
    return fx_str("lifetime");
}

static FfiStr lt_config_version(const void *state) {
    (void)state;
    return fx_str("1.0.0");
}

static FfiOwnedStr lt_config_schema(const void *state) {
    (void)state;
    return fx_owned(lt_schema, sizeof lt_schema - 1);
}

static FfiStr lt_schema_name(const void *state) {
    (void)state;
    return fx_str("source.lifetime.LifetimeSourceConfig");
}

static SourceVtable *lt_create(void *state, FfiStr id, FfiStr config_json, bool auto_start) {
    (void)state;
    char err[256];
    FxJson *cfg = fx_config_parse(config_json, err, sizeof err);
    int64_t sleep_us = 0;
    bool stop_block = false, refuse = false;
    if (!cfg || !fx_cfg_int(cfg, "call_sleep_us", 0, 0, &sleep_us, err, sizeof err) ||
        !fx_cfg_bool(cfg, "stop_block", false, &stop_block, err, sizeof err) ||
        !fx_cfg_bool(cfg, "refuse", false, &refuse, err, sizeof err)) {
        fx_json_free(cfg);
        fx_global_log(FFI_LOG_LEVEL_ERROR, "lifetime", "fixture::lifetime", "bad config: %s", err);
        return NULL;
    }
    fx_json_free(cfg);
    if (refuse) {
        fx_global_log(FFI_LOG_LEVEL_ERROR, "lifetime", "fixture::lifetime",
                      "source %.*s refused: the configuration says so", (int)id.len, id.ptr);
        return NULL;
    }
    LtSource *s = fx_xcalloc(1, sizeof *s);
    s->id = fx_strndup(id.ptr, id.len);
    s->id_len = id.len;
    s->auto_start = auto_start;
    s->call_sleep_us = sleep_us;
    s->stop_block = stop_block;
    s->status = FFI_COMPONENT_STATUS_STOPPED;
    pthread_mutex_lock(&lt_lock);
    s->next = lt_all;
    lt_all = s;
    pthread_mutex_unlock(&lt_lock);
    LT_ADD(lt_created, 1);
    FX_STAT(sources_created);

    SourceVtable *vt = fx_xcalloc(1, sizeof *vt);
    vt->state = s;
    vt->id_fn = lt_id;
    vt->type_name_fn = lt_type_name;
    vt->auto_start_fn = lt_auto_start;
    vt->dispatch_mode_fn = lt_dispatch_mode;
    vt->start_fn = lt_start;
    vt->stop_fn = lt_stop;
    vt->status_fn = lt_status;
    vt->deprovision_fn = lt_deprovision;
    vt->initialize_fn = lt_initialize;
    vt->subscribe_fn = lt_subscribe;
    vt->drop_fn = lt_drop;
    return vt;
}

static void lt_factory_drop(void *state) {
    (void)state;
    FX_STAT(factories_dropped);
}

FX_EXPORT FfiPluginRegistration *drasi_plugin_init(void) {
    SourcePluginVtable f;
    memset(&f, 0, sizeof f);
    f.kind_fn = lt_kind;
    f.config_version_fn = lt_config_version;
    f.config_schema_json_fn = lt_config_schema;
    f.config_schema_name_fn = lt_schema_name;
    f.create_source_fn = lt_create;
    f.drop_fn = lt_factory_drop;
    return fx_registration_new(&f, 1, NULL, 0, NULL, 0);
}

FX_EXPORT void drasi_lifetime_stats(int64_t out[8]) {
    out[0] = LT_GET(lt_created);
    out[1] = LT_GET(lt_dropped);
    out[2] = LT_GET(lt_calls);
    out[3] = LT_GET(lt_after_drop);
    out[4] = LT_GET(lt_during_call);
    out[5] = LT_GET(lt_blocked);
    out[6] = (int64_t)LT_GET(lt_drop_thread);
    out[7] = out[0] - out[1];
}

FX_EXPORT void drasi_lifetime_unblock(void) {
    pthread_mutex_lock(&lt_lock);
    lt_unblocked = true;
    pthread_cond_broadcast(&lt_cond);
    pthread_mutex_unlock(&lt_lock);
}
