/*
 * selftest013.c - a C host for the FFI 0.13 fixture libraries.
 *
 * Usage: selftest013 DIR   (DIR holds the libdrasi_v013_*.so built by
 * plugins_fixture/build.py:build_fixtures_013)
 *
 * Loads every 0.13 fixture with dlopen and drives it through the 0.13
 * vtables exactly as ABI-0.13.md prescribes for a host: registration with
 * log level and config resolver, FfiCreateResult errors with text, the
 * 9-argument subscribe, MessagePack change and bootstrap streams with their
 * exactly-once NULL sentinel, push-based bootstrap providers and their
 * results, the reaction's result loop ending with the (void*)1 sentinel,
 * identity providers by value, secret stores, and every hostile mode.  Each
 * event payload is checked with a strict MessagePack reader; every buffer
 * and envelope is released by the rule that owns it.  At the end each
 * library's counters must balance (everything it made was released) and all
 * its threads are joined, so that valgrind --leak-check=full finds nothing.
 * Exits 0 when every check passed.
 */
#define _POSIX_C_SOURCE 200809L
#include "drasi_plugin_0_13.h"
#include "mpack.h"
#include "stats013.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int failures, checks;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        checks++;                                                            \
        if (!(cond)) {                                                       \
            failures++;                                                      \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);             \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
        }                                                                    \
    } while (0)

static FfiStr S(const char *s)
{
    FfiStr out = {s, strlen(s)};
    return out;
}

static bool str_is(FfiStr s, const char *c) { return s.len == strlen(c) && memcmp(s.ptr, c, s.len) == 0; }
static bool owned_has(FfiOwnedStr s, const char *needle)
{
    char buf[512];
    size_t n = s.len < sizeof buf - 1 ? s.len : sizeof buf - 1;
    memcpy(buf, s.ptr, n);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}
static void free_owned(FfiOwnedStr s)
{
    if (s.cap > 0)
        free(s.ptr);
}

/* ---- libraries ---- */

typedef struct Lib {
    const char *name;
    void *handle;
    FfiPluginRegistration reg;
    void (*stats)(DrasiFixture013Stats *);
    void (*join)(void);
} Lib;

static _Atomic int host_logs, host_lifecycles, host_resolves;

static void on_log(void *ctx, const FfiLogEntry *entry)
{
    (void)ctx;
    if (entry->level <= FFI_LOG_LEVEL_TRACE)
        atomic_fetch_add(&host_logs, 1);
}

static void on_lifecycle(void *ctx, const FfiLifecycleEvent *event)
{
    (void)ctx, (void)event;
    atomic_fetch_add(&host_lifecycles, 1);
}

static FfiGetSecretResult host_resolver(const void *ctx, FfiStr json)
{
    FfiGetSecretResult r = {0, NULL, NULL};
    (void)ctx;
    atomic_fetch_add(&host_resolves, 1);
    char buf[256];
    snprintf(buf, sizeof buf, "%.*s", (int)json.len, json.ptr);
    if (strstr(buf, "\"kind\":\"Secret\"") == NULL || strstr(buf, "nosuch") != NULL) {
        r.error_code = 1;
        r.error_msg = strdup("host: no such secret");
        return r;
    }
    r.value = strdup("pw");
    return r;
}

static bool lib_open(Lib *lib, const char *dir, const char *name, const char *sdk)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/libdrasi_%s.so", dir, name);
    memset(lib, 0, sizeof *lib);
    lib->name = name;
    lib->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    CHECK(lib->handle != NULL, "dlopen %s: %s", path, dlerror());
    if (lib->handle == NULL)
        return false;
    DrasiPluginMetadataFn meta = (DrasiPluginMetadataFn)dlsym(lib->handle, "drasi_plugin_metadata");
    DrasiPluginInitFn init = (DrasiPluginInitFn)dlsym(lib->handle, "drasi_plugin_init");
    lib->stats = (void (*)(DrasiFixture013Stats *))dlsym(lib->handle, "drasi_fixture013_stats");
    lib->join = (void (*)(void))dlsym(lib->handle, "drasi_fixture013_join_threads");
    CHECK(meta && init && lib->stats && lib->join, "%s: missing symbols", name);
    CHECK(dlsym(lib->handle, "drasi_plugin_shutdown") != NULL, "%s: no shutdown export", name);
    if (!meta || !init || !lib->stats || !lib->join)
        return false;
    const PluginMetadata *md = meta();
    CHECK(str_is(md->sdk_version, sdk), "%s: sdk_version %.*s", name, (int)md->sdk_version.len,
          md->sdk_version.ptr);
    CHECK(md->target_triple.len > 0, "%s: empty target triple", name);
    FfiPluginRegistration *reg = init();
    CHECK(reg != NULL, "%s: init returned NULL", name);
    if (reg == NULL)
        return false;
    lib->reg = *reg;
    free(reg);
    lib->reg.set_log_callback(NULL, on_log);
    lib->reg.set_lifecycle_callback(NULL, on_lifecycle);
    lib->reg.set_log_level(FFI_LOG_FILTER_INFO);
    lib->reg.set_config_resolver(NULL, host_resolver);
    DrasiFixture013Stats st;
    lib->stats(&st);
    CHECK(st.log_level == FFI_LOG_FILTER_INFO, "%s: log level %lld", name, (long long)st.log_level);
    return true;
}

static void lib_close(Lib *lib)
{
    FfiPluginRegistration *r = &lib->reg;
#define DROP_ARRAY(arr, count)                                  \
    do {                                                        \
        for (size_t i = 0; i < (count); i++)                    \
            (arr)[i].drop_fn((arr)[i].state);                   \
        if ((count) > 0)                                        \
            free(arr);                                          \
    } while (0)
    DROP_ARRAY(r->source_plugins, r->source_plugin_count);
    DROP_ARRAY(r->reaction_plugins, r->reaction_plugin_count);
    DROP_ARRAY(r->bootstrap_plugins, r->bootstrap_plugin_count);
    DROP_ARRAY(r->identity_provider_plugins, r->identity_provider_plugin_count);
    DROP_ARRAY(r->secret_store_plugins, r->secret_store_plugin_count);
    lib->join();
    DrasiFixture013Stats st;
    lib->stats(&st);
    size_t factories = r->source_plugin_count + r->reaction_plugin_count
                       + r->bootstrap_plugin_count + r->identity_provider_plugin_count
                       + r->secret_store_plugin_count;
    CHECK(st.factories_dropped == (int64_t)factories, "%s: factories dropped %lld", lib->name,
          (long long)st.factories_dropped);
    CHECK(st.payloads_created == st.payloads_released, "%s: payloads %lld made, %lld freed",
          lib->name, (long long)st.payloads_created, (long long)st.payloads_released);
    CHECK(st.receivers_created == st.receivers_dropped, "%s: receivers %lld made, %lld dropped",
          lib->name, (long long)st.receivers_created, (long long)st.receivers_dropped);
    CHECK(st.objects_created == st.objects_dropped, "%s: objects %lld made, %lld dropped",
          lib->name, (long long)st.objects_created, (long long)st.objects_dropped);
    CHECK(st.identity_states_alive == 0, "%s: %lld identity states alive", lib->name,
          (long long)st.identity_states_alive);
    CHECK(st.threads_started == st.threads_finished, "%s: threads %lld started, %lld finished",
          lib->name, (long long)st.threads_started, (long long)st.threads_finished);
    /* never dlclose'd, as for any plugin (ABI-0.13.md section 1) */
}

static DrasiFixture013Stats stats_of(const Lib *lib)
{
    DrasiFixture013Stats st;
    lib->stats(&st);
    return st;
}

/* ---- waiting ---- */

static pthread_mutex_t wait_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wait_cond = PTHREAD_COND_INITIALIZER;

static void notify(void)
{
    pthread_mutex_lock(&wait_lock);
    pthread_cond_broadcast(&wait_cond);
    pthread_mutex_unlock(&wait_lock);
}

static bool wait_for(_Atomic int *value, int want)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&wait_lock);
    while (atomic_load(value) < want) {
        if (pthread_cond_timedwait(&wait_cond, &wait_lock, &until) != 0)
            break;
    }
    pthread_mutex_unlock(&wait_lock);
    return atomic_load(value) >= want;
}

/* ---- event streams ---- */

typedef struct Collect {
    _Atomic int ended, seen, good, bad, oversize, nulldrop, nullpayload;
    _Atomic int inserts, updates, deletes, futures, controls;
    int stop_after;
    bool bootstrap;
} Collect;

/* Checks a SourceEventPayload / BootstrapEventPayload and counts its kind. */
static bool check_event(Collect *c, const uint8_t *p, size_t len)
{
    Mpr r = {p, p + len};
    uint32_t n, m, sn;
    const char *s;
    bool have_source = false, have_kind = false;
    if (mpr_map(&r, &n) || n != (c->bootstrap ? 4u : 5u))
        return false;
    for (uint32_t i = 0; i < n; i++) {
        if (mpr_str(&r, &s, &sn))
            return false;
        if (mpr_key_is(s, sn, "source_id")) {
            if (mpr_str(&r, &s, &sn))
                return false;
            have_source = true;
        } else if (mpr_key_is(s, sn, c->bootstrap ? "change" : "event")) {
            const uint8_t *start = r.p;
            if (!c->bootstrap) {
                if (mpr_map(&r, &m) || m != 1 || mpr_str(&r, &s, &sn))
                    return false;
                if (mpr_key_is(s, sn, "Control")) {
                    atomic_fetch_add(&c->controls, 1);
                    have_kind = mpr_skip(&r) == 0;
                    continue;
                }
                if (!mpr_key_is(s, sn, "Change"))
                    return false;
            }
            if (mpr_map(&r, &m) || m != 1 || mpr_str(&r, &s, &sn))
                return false;
            if (mpr_key_is(s, sn, "Insert"))
                atomic_fetch_add(&c->inserts, 1);
            else if (mpr_key_is(s, sn, "Update"))
                atomic_fetch_add(&c->updates, 1);
            else if (mpr_key_is(s, sn, "Delete"))
                atomic_fetch_add(&c->deletes, 1);
            else if (mpr_key_is(s, sn, "Future"))
                atomic_fetch_add(&c->futures, 1);
            else
                return false;
            (void)start;
            have_kind = mpr_skip(&r) == 0;
        } else if (mpr_skip(&r)) {
            return false;
        }
    }
    return r.p == r.end && have_source && have_kind;
}

static bool take_payload(Collect *c, const uint8_t *ptr, size_t len, FfiBytesDropFn drop)
{
    if (len > DRASI_MAX_FFI_PAYLOAD_BYTES)
        atomic_fetch_add(&c->oversize, 1); /* never read */
    else if (ptr == NULL || len == 0)
        atomic_fetch_add(&c->nullpayload, 1);
    else if (check_event(c, ptr, len))
        atomic_fetch_add(&c->good, 1);
    else
        atomic_fetch_add(&c->bad, 1);
    if (ptr != NULL) {
        if (drop != NULL)
            drop((uint8_t *)ptr, len);
        else
            atomic_fetch_add(&c->nulldrop, 1); /* a producer bug: leak, do not crash */
    }
    int seen = atomic_fetch_add(&c->seen, 1) + 1;
    return !(c->stop_after > 0 && seen >= c->stop_after);
}

static bool on_change(void *ctx, FfiSourceEvent *ev)
{
    Collect *c = ctx;
    if (ev == NULL) {
        atomic_fetch_add(&c->ended, 1);
        notify();
        return false;
    }
    bool go = take_payload(c, ev->payload_ptr, ev->payload_len, ev->payload_drop_fn);
    free(ev);
    return go;
}

static bool on_bootstrap(void *ctx, FfiBootstrapEvent *ev)
{
    Collect *c = ctx;
    if (ev == NULL) {
        atomic_fetch_add(&c->ended, 1);
        notify();
        return false;
    }
    bool go = take_payload(c, ev->payload_ptr, ev->payload_len, ev->payload_drop_fn);
    free(ev);
    return go;
}

typedef struct ResultBox {
    _Atomic int got;
    bool null_result;
    int64_t event_count;
    size_t position_len;
    char error[256];
} ResultBox;

static void on_bootstrap_result(void *ctx, FfiBootstrapResult *res)
{
    ResultBox *box = ctx;
    if (res == NULL) {
        box->null_result = true;
    } else {
        box->event_count = res->event_count;
        if (res->source_position_ptr != NULL && res->source_position_len > 0) {
            box->position_len = res->source_position_len;
            if (res->source_position_drop_fn != NULL)
                res->source_position_drop_fn((uint8_t *)res->source_position_ptr,
                                             res->source_position_len);
        }
        if (res->error_ptr != NULL && res->error_len > 0) {
            size_t n = res->error_len < sizeof box->error - 1 ? res->error_len : sizeof box->error - 1;
            memcpy(box->error, res->error_ptr, n);
            box->error[n] = '\0';
            if (res->error_drop_fn != NULL)
                res->error_drop_fn((uint8_t *)res->error_ptr, res->error_len);
        }
        free(res);
    }
    atomic_fetch_add(&box->got, 1);
    notify();
}

static void run_change_receiver(FfiChangeReceiver *rx, Collect *c)
{
    FfiChangeReceiver copy = *rx;
    free(rx);
    copy.start_push_fn(copy.state, on_change, c);
    CHECK(wait_for(&c->ended, 1), "change stream never ended");
    copy.drop_fn(copy.state);
}

static void run_bootstrap(FfiBootstrapReceiver *events, FfiBootstrapResultReceiver *result,
                          Collect *c, ResultBox *box)
{
    FfiBootstrapReceiver ev = *events;
    FfiBootstrapResultReceiver res = *result;
    free(events);
    free(result);
    c->bootstrap = true;
    res.start_fn(res.state, on_bootstrap_result, box);
    res.drop_fn(res.state); /* allowed right after start */
    ev.start_push_fn(ev.state, on_bootstrap, c);
    CHECK(wait_for(&c->ended, 1), "bootstrap stream never ended");
    ev.drop_fn(ev.state);
    CHECK(wait_for(&box->got, 1), "bootstrap result never came");
}

/* ---- host services ---- */

static uint8_t store_value[64];
static size_t store_len;
static bool store_has;

static FfiGetResult ss_get(void *st, FfiStr store, FfiStr key)
{
    FfiGetResult r = {(uint8_t *)(uintptr_t)1, 0, 0, false, 0, NULL};
    (void)st, (void)store, (void)key;
    if (store_has) {
        r.data = malloc(store_len);
        memcpy(r.data, store_value, store_len);
        r.len = r.cap = store_len;
        r.found = true;
    }
    return r;
}

static FfiResult ss_set(void *st, FfiStr store, FfiStr key, const uint8_t *v, size_t n)
{
    FfiResult r = {0, NULL};
    (void)st, (void)store, (void)key;
    if (n > sizeof store_value) {
        r.error_code = 1;
        r.error_msg = strdup("too big");
        return r;
    }
    memcpy(store_value, v, n);
    store_len = n;
    store_has = true;
    return r;
}

static FfiResult ss_unsupported(void) { FfiResult r = {1, strdup("unsupported")}; return r; }
static FfiResult ss_key(void *st, FfiStr s, FfiStr k) { (void)st, (void)s, (void)k; return ss_unsupported(); }
static FfiResult ss_get_many(void *st, FfiStr s, const FfiStr *k, size_t n, FfiGetResult *o)
{ (void)st, (void)s, (void)k, (void)n, (void)o; return ss_unsupported(); }
static FfiResult ss_set_many(void *st, FfiStr s, const FfiStr *k, const uint8_t *const *v,
                             const size_t *l, size_t n)
{ (void)st, (void)s, (void)k, (void)v, (void)l, (void)n; return ss_unsupported(); }
static int64_t ss_delete_many(void *st, FfiStr s, const FfiStr *k, size_t n)
{ (void)st, (void)s, (void)k, (void)n; return -1; }
static int64_t ss_store_i64(void *st, FfiStr s) { (void)st, (void)s; return -1; }
static FfiStringArray ss_list(void *st, FfiStr s)
{ FfiStringArray a = {(FfiOwnedStr *)(uintptr_t)8, 0, 0}; (void)st, (void)s; return a; }
static FfiResult ss_store(void *st, FfiStr s) { (void)st, (void)s; return ss_unsupported(); }
static FfiResult ss_sync(void *st) { (void)st; FfiResult r = {0, NULL}; return r; }
static void ss_drop(void *st) { (void)st; }

static const StateStoreVtable host_store = {
    NULL, ss_get, ss_set, ss_key, ss_key, ss_get_many, ss_set_many, ss_delete_many,
    ss_store_i64, ss_list, ss_store, ss_store_i64, ss_sync, ss_drop,
};

static _Atomic int fetcher_drops;
static FfiSnapshotIteratorResponse fetch_none(void *st, FfiStr q)
{
    FfiSnapshotIteratorResponse r;
    (void)st, (void)q;
    memset(&r, 0, sizeof r);
    r.error.ptr = strdup("no snapshots here");
    r.error.len = strlen(r.error.ptr);
    r.error.cap = r.error.len + 1;
    return r;
}
static void fetcher_drop(void *st) { (void)st; atomic_fetch_add(&fetcher_drops, 1); }
static const SnapshotFetcherVtable host_fetcher = {NULL, fetch_none, fetcher_drop};

static FfiRuntimeContext runtime(const char *id, const IdentityProviderVtable *identity,
                                 const SnapshotFetcherVtable *fetcher)
{
    FfiRuntimeContext ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.instance_id = S("selftest");
    ctx.component_id = S(id);
    ctx.state_store = &host_store;
    ctx.log_callback = on_log;
    ctx.lifecycle_callback = on_lifecycle;
    ctx.identity_provider = identity;
    ctx.snapshot_fetcher = fetcher;
    ctx.wal_provider = NULL; /* a non-Rust host always passes NULL */
    return ctx;
}

/* Gives a component its own clone of a plugin-made identity provider, in a
 * transient block freed right after initialize_fn. */
static IdentityProviderVtable *identity_block(const IdentityProviderVtable *ident)
{
    if (ident->state == NULL)
        return NULL;
    IdentityProviderVtable *block = malloc(sizeof *block);
    *block = *ident;
    block->state = ident->clone_fn(ident->state);
    return block;
}

/* ---- sections ---- */

static bool create_ok(FfiCreateResult r, const char *what)
{
    CHECK(r.error_code == 0 && r.ptr != NULL, "%s: create failed: %s", what,
          r.error_msg ? r.error_msg : "(null)");
    if (r.error_code != 0 || r.ptr == NULL) {
        free(r.error_msg);
        free(r.ptr);
        return false;
    }
    return true;
}

static void create_fails(FfiCreateResult r, const char *needle, const char *what)
{
    CHECK(r.error_code == 1 && r.ptr == NULL, "%s: expected an error result", what);
    CHECK(r.error_msg != NULL && strstr(r.error_msg, needle) != NULL, "%s: error text %s", what,
          r.error_msg ? r.error_msg : "(null)");
    free(r.error_msg);
}

static IdentityProviderVtable test_services(Lib *lib)
{
    IdentityProviderVtable keep;
    memset(&keep, 0, sizeof keep);
    IdentityProviderPluginVtable *idf = &lib->reg.identity_provider_plugins[0];
    CHECK(str_is(idf->kind_fn(idf->state), "fixture013-identity"), "identity kind");
    free_owned(idf->config_schema_json_fn(idf->state));
    CHECK(idf->create_identity_provider_fn(idf->state, S("{\"mode\":\"nullptr\"}")) == NULL,
          "identity nullptr mode");
    IdentityProviderVtable *bad = idf->create_identity_provider_fn(idf->state, S("{\"token\":\"fail\"}"));
    CHECK(bad != NULL, "identity create");
    if (bad != NULL) {
        FfiCredentialsResult r = bad->get_credentials_fn(bad->state, NULL, 0);
        CHECK(r.error_code == 1 && r.error_msg && strstr(r.error_msg, "credentials refused"),
              "identity error text");
        free(r.error_msg);
        bad->drop_fn(bad->state);
        free(bad);
    }
    IdentityProviderVtable *id = idf->create_identity_provider_fn(idf->state, S("{\"token\":\"abc\"}"));
    CHECK(id != NULL, "identity create abc");
    if (id != NULL) {
        keep = *id;
        free(id);
        static const char ctx[] = "{\"host\":\"h\"}";
        FfiCredentialsResult r = keep.get_credentials_fn(keep.state, (const uint8_t *)ctx, sizeof ctx - 1);
        CHECK(r.error_code == 0 && r.credentials.credential_type == FFI_CREDENTIAL_TOKEN,
              "credentials");
        CHECK(r.credentials.field2 && strcmp(r.credentials.field2, "abc|{\"host\":\"h\"}") == 0,
              "credentials carry the context: %s", r.credentials.field2 ? r.credentials.field2 : "");
        free(r.credentials.field1);
        free(r.credentials.field2);
        free(r.credentials.field3);
    }

    SecretStorePluginVtable *sf = &lib->reg.secret_store_plugins[0];
    CHECK(str_is(sf->kind_fn(sf->state), "fixture013-secrets"), "secrets kind");
    CHECK(sf->create_secret_store_fn(sf->state, S("{\"mode\":\"nullptr\"}")) == NULL, "secrets nullptr");
    SecretStoreProviderVtable *store = sf->create_secret_store_fn(sf->state, S("{}"));
    CHECK(store != NULL, "secret store create");
    if (store != NULL) {
        SecretStoreProviderVtable s = *store;
        free(store);
        FfiGetSecretResult r = s.get_secret_fn(s.state, S("db"));
        CHECK(r.error_code == 0 && r.value && strcmp(r.value, "s-db") == 0, "secret value");
        free(r.value);
        free(r.error_msg);
        r = s.get_secret_fn(s.state, S("missing"));
        CHECK(r.error_code == 1 && r.value == NULL && r.error_msg
                  && strstr(r.error_msg, "no secret named missing"), "secret error text");
        free(r.error_msg);
        free(r.value);
        r = s.get_secret_fn(s.state, S("empty"));
        CHECK(r.error_code == 0 && r.value == NULL, "empty secret");
        s.drop_fn(s.state);
    }
    return keep;
}

static void test_source(Lib *lib, const IdentityProviderVtable *ident)
{
    SourcePluginVtable *f = &lib->reg.source_plugins[0];
    CHECK(str_is(f->kind_fn(f->state), "fixture013"), "source kind");
    FfiOwnedStr schema = f->config_schema_json_fn(f->state);
    CHECK(owned_has(schema, "object"), "source schema");
    free_owned(schema);
    create_fails(f->create_source_fn(f->state, S("x"), S("{\"mode\":\"fail\",\"reason\":\"no disk\"}"), false),
                 "no disk", "source fail");
    FfiCreateResult nul = f->create_source_fn(f->state, S("x"), S("{\"mode\":\"nullptr\"}"), false);
    CHECK(nul.error_code == 0 && nul.ptr == NULL && nul.error_msg == NULL, "source nullptr");
    create_fails(f->create_source_fn(f->state, S("x"), S("{\"secret\":\"nosuch\"}"), false),
                 "no such secret", "source unresolved secret");
    int resolves = atomic_load(&host_resolves);
    FfiCreateResult cr = f->create_source_fn(
        f->state, S("s1"), S("{\"count\":8,\"bootstrap_count\":3,\"secret\":\"db\"}"), true);
    if (!create_ok(cr, "source"))
        return;
    CHECK(atomic_load(&host_resolves) == resolves + 1, "resolver called once");
    SourceVtable src = *(SourceVtable *)cr.ptr;
    free(cr.ptr);
    CHECK(str_is(src.id_fn(src.state), "s1"), "source id");
    CHECK(src.auto_start_fn(src.state), "auto start");
    CHECK(!src.supports_replay_fn(src.state), "replay");
    FfiOwnedStr props = src.properties_fn(src.state);
    CHECK(owned_has(props, "\"count\":8"), "properties");
    free_owned(props);
    FfiOwnedStr desc = src.describe_schema_fn(src.state);
    CHECK(owned_has(desc, "null"), "describe schema");
    free_owned(desc);

    IdentityProviderVtable *block = identity_block(ident);
    FfiRuntimeContext ctx = runtime("s1", block, NULL);
    src.initialize_fn(src.state, &ctx);
    free(block); /* transient: the plugin copied it */
    CHECK(src.status_fn(src.state) == FFI_COMPONENT_STATUS_ADDED, "status added");
    FfiResult r = src.start_fn(src.state);
    CHECK(r.error_code == 0, "start");
    free(r.error_msg);
    CHECK(src.status_fn(src.state) == FFI_COMPONENT_STATUS_RUNNING, "status running");
    DrasiFixture013Stats st = stats_of(lib);
    CHECK(st.foreign_identity_calls == 1 && st.state_store_ops == 2, "services used: %lld %lld",
          (long long)st.foreign_identity_calls, (long long)st.state_store_ops);

    FfiSubscriptionResponse *resp = src.subscribe_fn(src.state, S("s1"), true, S("q1"),
                                                     S("[\"Person\"]"), S("[]"), NULL, 0, false);
    CHECK(resp != NULL, "subscribe");
    if (resp != NULL) {
        CHECK(resp->query_id.len == 2 && memcmp(resp->query_id.ptr, "q1", 2) == 0, "query id");
        CHECK(resp->position_handle_ptr == NULL, "no position handle");
        CHECK(resp->bootstrap_receiver != NULL && resp->bootstrap_result_receiver != NULL,
              "bootstrap receivers");
        free_owned(resp->query_id);
        free_owned(resp->source_id);
        Collect c;
        memset(&c, 0, sizeof c);
        run_change_receiver(resp->receiver, &c);
        CHECK(c.good == 8 && c.bad == 0 && c.ended == 1, "stream: %d good %d bad", c.good, c.bad);
        CHECK(c.inserts == 4 && c.updates == 2 && c.deletes == 2, "stream kinds %d/%d/%d",
              c.inserts, c.updates, c.deletes);
        Collect b;
        ResultBox box;
        memset(&b, 0, sizeof b);
        memset(&box, 0, sizeof box);
        run_bootstrap(resp->bootstrap_receiver, resp->bootstrap_result_receiver, &b, &box);
        CHECK(b.good == 3 && b.inserts == 3 && b.ended == 1, "bootstrap: %d good", b.good);
        CHECK(!box.null_result && box.event_count == 3 && box.position_len == 2,
              "bootstrap result %lld", (long long)box.event_count);
        free(resp);
    }

    /* the host stops a stream early by returning false */
    resp = src.subscribe_fn(src.state, S("s1"), false, S("q2"), S("[]"), S("[]"),
                            (const uint8_t *)"\x01\x02", 2, false);
    if (resp != NULL) {
        CHECK(resp->bootstrap_receiver == NULL && resp->bootstrap_result_receiver == NULL,
              "no bootstrap without request");
        free_owned(resp->query_id);
        free_owned(resp->source_id);
        Collect c;
        memset(&c, 0, sizeof c);
        c.stop_after = 2;
        run_change_receiver(resp->receiver, &c);
        CHECK(c.seen == 2 && c.ended == 1, "early stop: %d seen", c.seen);
        free(resp);
    }
    /* dropped without ever being started */
    resp = src.subscribe_fn(src.state, S("s1"), true, S("q3"), S("[]"), S("[]"), NULL, 0, false);
    if (resp != NULL) {
        free_owned(resp->query_id);
        free_owned(resp->source_id);
        resp->receiver->drop_fn(resp->receiver->state);
        resp->bootstrap_receiver->drop_fn(resp->bootstrap_receiver->state);
        resp->bootstrap_result_receiver->drop_fn(resp->bootstrap_result_receiver->state);
        free(resp->receiver);
        free(resp->bootstrap_receiver);
        free(resp->bootstrap_result_receiver);
        free(resp);
    }
    r = src.stop_fn(src.state);
    free(r.error_msg);
    r = src.deprovision_fn(src.state);
    free(r.error_msg);
    CHECK(src.status_fn(src.state) == FFI_COMPONENT_STATUS_REMOVED, "status removed");
    r = src.remove_position_handle_fn(src.state, S("q1"));
    CHECK(r.error_code == 0, "remove position handle");
    src.drop_fn(src.state);
    st = stats_of(lib);
    CHECK(st.foreign_identity_dropped == 2, "identity states dropped: %lld",
          (long long)st.foreign_identity_dropped);
    CHECK(st.push_false_seen == 1, "push false seen %lld", (long long)st.push_false_seen);
}

static void stream_mode(Lib *lib, const char *config, Collect *c)
{
    SourcePluginVtable *f = &lib->reg.source_plugins[0];
    memset(c, 0, sizeof *c);
    FfiCreateResult cr = f->create_source_fn(f->state, S("h"), S(config), false);
    if (!create_ok(cr, config))
        return;
    SourceVtable src = *(SourceVtable *)cr.ptr;
    free(cr.ptr);
    FfiRuntimeContext ctx = runtime("h", NULL, NULL);
    src.initialize_fn(src.state, &ctx);
    FfiSubscriptionResponse *resp = src.subscribe_fn(src.state, S("h"), false, S("q"), S("[]"),
                                                     S("[]"), NULL, 0, false);
    if (strstr(config, "nullsubscribe") != NULL) {
        CHECK(resp == NULL, "nullsubscribe");
    } else if (resp != NULL) {
        free_owned(resp->query_id);
        free_owned(resp->source_id);
        run_change_receiver(resp->receiver, c);
        free(resp);
    }
    src.drop_fn(src.state);
}

static void test_source_modes(Lib *lib)
{
    Collect c;
    stream_mode(lib, "{\"count\":4,\"mode\":\"control\"}", &c);
    CHECK(c.good == 6 && c.controls == 1 && c.futures == 1, "control: %d good %d/%d", c.good,
          c.controls, c.futures);
    stream_mode(lib, "{\"count\":3,\"mode\":\"badmsgpack\"}", &c);
    CHECK(c.good == 3 && c.bad == 1 && c.ended == 1, "badmsgpack: %d/%d", c.good, c.bad);
    stream_mode(lib, "{\"count\":3,\"mode\":\"oversize\"}", &c);
    CHECK(c.good == 3 && c.oversize == 1, "oversize: %d/%d", c.good, c.oversize);
    stream_mode(lib, "{\"count\":3,\"mode\":\"nulldrop\"}", &c);
    CHECK(c.good == 3 && c.nulldrop == 1 && c.bad == 1, "nulldrop: %d/%d", c.good, c.nulldrop);
    stream_mode(lib, "{\"count\":3,\"mode\":\"nullpayload\"}", &c);
    CHECK(c.good == 3 && c.nullpayload == 1, "nullpayload: %d/%d", c.good, c.nullpayload);
    stream_mode(lib, "{\"count\":3,\"mode\":\"wrongtags\"}", &c);
    CHECK(c.good == 3 && c.ended == 1, "wrongtags is well-formed MessagePack: %d", c.good);
    stream_mode(lib, "{\"mode\":\"nullsubscribe\"}", &c);
}

typedef struct Serve {
    const char *plan; /* one char per result: g good, x garbage, o oversize */
    _Atomic int next, sentinels, drops, pulls_after_end;
} Serve;

static Serve *current_serve;

static void host_payload_drop(uint8_t *ptr, size_t len)
{
    (void)len;
    free(ptr);
    atomic_fetch_add(&current_serve->drops, 1);
}

static void *serve_results(void *ctx, void *sentinel)
{
    Serve *s = ctx;
    if (sentinel != NULL) {
        atomic_fetch_add(&s->sentinels, 1);
        notify();
        return NULL; /* never dereferenced */
    }
    int i = atomic_fetch_add(&s->next, 1);
    if ((size_t)i >= strlen(s->plan)) {
        if ((size_t)i > strlen(s->plan))
            atomic_fetch_add(&s->pulls_after_end, 1);
        return NULL;
    }
    FfiQueryResult *res = malloc(sizeof *res);
    size_t len = 0;
    uint8_t *buf;
    if (s->plan[i] == 'g') {
        Mpw w;
        mpw_init(&w);
        mpw_map(&w, 5);
        mpw_str(&w, "query_id");
        mpw_str(&w, "q1");
        mpw_str(&w, "sequence");
        mpw_uint(&w, (uint64_t)i + 1);
        mpw_str(&w, "timestamp");
        mpw_str(&w, "2026-11-28T07:30:00.123456Z");
        mpw_str(&w, "results");
        mpw_array(&w, 2);
        mpw_map(&w, 3);
        mpw_str(&w, "type");
        mpw_str(&w, "ADD");
        mpw_str(&w, "data");
        mpw_map(&w, 1);
        mpw_str(&w, "n");
        mpw_int(&w, i);
        mpw_str(&w, "row_signature");
        mpw_uint(&w, 42);
        mpw_map(&w, 1);
        mpw_str(&w, "type");
        mpw_str(&w, "noop");
        mpw_str(&w, "metadata");
        mpw_map(&w, 0);
        buf = mpw_take(&w, &len);
    } else {
        buf = calloc(1, 8);
        buf[0] = 0xc1;
        len = s->plan[i] == 'o' ? (size_t)DRASI_MAX_FFI_PAYLOAD_BYTES + 1 : 3;
    }
    res->payload_ptr = buf;
    res->payload_len = len;
    res->payload_drop_fn = host_payload_drop;
    return res;
}

static void test_reaction(Lib *lib, const IdentityProviderVtable *ident)
{
    ReactionPluginVtable *f = &lib->reg.reaction_plugins[0];
    CHECK(str_is(f->kind_fn(f->state), "fixture013-reaction"), "reaction kind");
    create_fails(f->create_reaction_fn(f->state, S("r"), S("[]"), S("{\"mode\":\"fail\"}"), false),
                 "create refused", "reaction fail");
    FfiCreateResult nul = f->create_reaction_fn(f->state, S("r"), S("[]"), S("{\"mode\":\"nullptr\"}"), false);
    CHECK(nul.error_code == 0 && nul.ptr == NULL, "reaction nullptr");
    FfiCreateResult cr = f->create_reaction_fn(f->state, S("r1"), S("[\"q1\",\"q2\"]"), S("{}"), false);
    if (!create_ok(cr, "reaction"))
        return;
    ReactionVtable rx = *(ReactionVtable *)cr.ptr;
    free(cr.ptr);
    FfiStringArray q = rx.query_ids_fn(rx.state);
    CHECK(q.len == 2 && q.data[1].len == 2 && memcmp(q.data[1].ptr, "q2", 2) == 0, "query ids");
    for (size_t i = 0; i < q.len; i++)
        free_owned(q.data[i]);
    if (q.cap > 0)
        free(q.data);
    CHECK(!rx.is_durable_fn(rx.state) && !rx.needs_snapshot_on_fresh_start_fn(rx.state)
              && rx.default_recovery_policy_fn(rx.state) == DRASI_RECOVERY_STRICT,
          "recovery members");
    int fetcher_drops_before = atomic_load(&fetcher_drops);
    IdentityProviderVtable *block = identity_block(ident);
    FfiRuntimeContext ctx = runtime("r1", block, &host_fetcher);
    rx.initialize_fn(rx.state, &ctx);
    free(block);
    FfiResult r = rx.start_fn(rx.state);
    free(r.error_msg);
    Serve serve;
    memset(&serve, 0, sizeof serve);
    serve.plan = "gggggxog";
    current_serve = &serve;
    rx.start_result_push_fn(rx.state, serve_results, &serve);
    CHECK(wait_for(&serve.sentinels, 1), "reaction exit sentinel never came");
    DrasiFixture013Stats st = stats_of(lib);
    CHECK(st.results_received == 8 && st.results_decoded == 6 && st.results_invalid == 2,
          "results %lld/%lld/%lld", (long long)st.results_received,
          (long long)st.results_decoded, (long long)st.results_invalid);
    CHECK(st.result_diffs == 12 && st.exit_sentinels_sent == 1, "diffs %lld sentinels %lld",
          (long long)st.result_diffs, (long long)st.exit_sentinels_sent);
    CHECK(serve.drops == 8, "host payloads dropped by the plugin: %d", serve.drops);
    r = rx.stop_fn(rx.state);
    free(r.error_msg);
    rx.drop_fn(rx.state); /* only after the sentinel */
    CHECK(fetcher_drops == fetcher_drops_before + 1, "snapshot fetcher dropped once");

    cr = f->create_reaction_fn(f->state, S("r2"), S("[\"q1\"]"), S("{\"mode\":\"nosentinel\"}"), false);
    if (create_ok(cr, "reaction nosentinel")) {
        ReactionVtable rx2 = *(ReactionVtable *)cr.ptr;
        free(cr.ptr);
        static Serve quiet;
        quiet.plan = "g";
        current_serve = &quiet;
        rx2.start_result_push_fn(rx2.state, serve_results, &quiet);
        lib->join(); /* the forwarder has exited without the sentinel */
        CHECK(quiet.sentinels == 0 && quiet.drops == 1, "nosentinel: %d", quiet.sentinels);
        rx2.drop_fn(rx2.state);
    }
}

static void provider_run(BootstrapProviderVtable *p, Collect *c, ResultBox *box, bool *null_stream)
{
    FfiStr labels[1] = {{"Person", 6}};
    memset(c, 0, sizeof *c);
    memset(box, 0, sizeof *box);
    FfiBootstrapStream *stream = p->bootstrap_fn(p->state, S("q1"), labels, 1, NULL, 0, S("req"),
                                                 S("srv"), S("s1"));
    *null_stream = stream == NULL;
    if (stream == NULL)
        return;
    FfiBootstrapReceiver *events = stream->events;
    FfiBootstrapResultReceiver *result = stream->result;
    free(stream);
    if (events == NULL || result == NULL) {
        if (events != NULL) {
            events->drop_fn(events->state);
            free(events);
        }
        if (result != NULL) {
            result->drop_fn(result->state);
            free(result);
        }
        *null_stream = true;
        return;
    }
    run_bootstrap(events, result, c, box);
}

static BootstrapProviderVtable *make_provider(BootstrapPluginVtable *f, const char *config)
{
    FfiCreateResult cr = f->create_bootstrap_provider_fn(f->state, S(config), S("{}"));
    if (!create_ok(cr, config))
        return NULL;
    return cr.ptr;
}

static void test_bootstrap(Lib *lib)
{
    BootstrapPluginVtable *f = &lib->reg.bootstrap_plugins[0];
    CHECK(str_is(f->kind_fn(f->state), "fixture013-bootstrap"), "bootstrap kind");
    create_fails(f->create_bootstrap_provider_fn(f->state, S("{\"mode\":\"fail\"}"), S("{}")),
                 "create refused", "bootstrap fail");
    struct {
        const char *config;
        int good, bad;
        int64_t count;
        bool null_result, null_stream;
        const char *error;
    } cases[] = {
        {"{\"count\":5}", 5, 0, 5, false, false, ""},
        {"{\"count\":2,\"mode\":\"bootfail\"}", 2, 0, -1, false, false, "source unavailable"},
        {"{\"count\":1,\"mode\":\"noresult\"}", 1, 0, 0, true, false, ""},
        {"{\"count\":2,\"mode\":\"badmsgpack\"}", 2, 1, 2, false, false, ""},
        {"{\"mode\":\"nullstream\"}", 0, 0, 0, false, true, ""},
        {"{\"mode\":\"halfstream\"}", 0, 0, 0, false, true, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        BootstrapProviderVtable *p = make_provider(f, cases[i].config);
        if (p == NULL)
            continue;
        Collect c;
        ResultBox box;
        bool null_stream;
        provider_run(p, &c, &box, &null_stream);
        CHECK(null_stream == cases[i].null_stream, "%s: stream", cases[i].config);
        if (!null_stream) {
            CHECK(c.good == cases[i].good && c.bad == cases[i].bad && c.ended == 1,
                  "%s: %d good %d bad", cases[i].config, c.good, c.bad);
            CHECK(box.null_result == cases[i].null_result, "%s: null result", cases[i].config);
            if (!cases[i].null_result)
                CHECK(box.event_count == cases[i].count && strstr(box.error, cases[i].error),
                      "%s: result %lld '%s'", cases[i].config, (long long)box.event_count,
                      box.error);
        }
        p->drop_fn(p->state);
        free(p);
    }
    if (lib->reg.source_plugin_count == 0)
        return;
    /* a source adopts a copy of this plugin's provider */
    BootstrapProviderVtable *p = make_provider(f, "{\"count\":2}");
    SourcePluginVtable *sf = &lib->reg.source_plugins[0];
    FfiCreateResult cr = sf->create_source_fn(sf->state, S("s2"), S("{\"count\":1}"), false);
    if (p == NULL || !create_ok(cr, "source s2")) {
        free(p);
        return;
    }
    SourceVtable src = *(SourceVtable *)cr.ptr;
    free(cr.ptr);
    src.set_bootstrap_provider_fn(src.state, p); /* ownership passes */
    FfiSubscriptionResponse *resp = src.subscribe_fn(src.state, S("s2"), true, S("q"), S("[]"),
                                                     S("[]"), NULL, 0, false);
    if (resp != NULL) {
        free_owned(resp->query_id);
        free_owned(resp->source_id);
        Collect c, b;
        ResultBox box;
        memset(&c, 0, sizeof c);
        memset(&b, 0, sizeof b);
        memset(&box, 0, sizeof box);
        run_change_receiver(resp->receiver, &c);
        run_bootstrap(resp->bootstrap_receiver, resp->bootstrap_result_receiver, &b, &box);
        CHECK(c.good == 1 && b.good == 2 && box.event_count == 2, "adopted provider: %d/%d",
              c.good, b.good);
        free(resp);
    }
    src.drop_fn(src.state);
    CHECK(stats_of(lib).providers_adopted == 1, "provider adopted");
}

static void test_only_kinds(const char *dir, const char *name, size_t s, size_t r, size_t b,
                            size_t i, size_t k)
{
    Lib lib;
    if (!lib_open(&lib, dir, name, "0.13.0"))
        return;
    FfiPluginRegistration *g = &lib.reg;
    CHECK(g->source_plugin_count == s && g->reaction_plugin_count == r
              && g->bootstrap_plugin_count == b && g->identity_provider_plugin_count == i
              && g->secret_store_plugin_count == k,
          "%s: kinds %zu %zu %zu %zu %zu", name, g->source_plugin_count,
          g->reaction_plugin_count, g->bootstrap_plugin_count,
          g->identity_provider_plugin_count, g->secret_store_plugin_count);
    if (r > 0 && s == 0)
        test_reaction(&lib, &(IdentityProviderVtable){0});
    lib_close(&lib);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    Lib all;
    if (lib_open(&all, dir, "v013_all", "0.13.0")) {
        IdentityProviderVtable ident = test_services(&all);
        if (ident.state != NULL) {
            test_source(&all, &ident);
            test_reaction(&all, &ident);
            ident.drop_fn(ident.state); /* the host's own original */
        }
        test_source_modes(&all);
        test_bootstrap(&all);
        DrasiFixture013Stats st = stats_of(&all);
        CHECK(st.logs_emitted > 0 && st.logs_filtered > 0, "log filter: %lld emitted %lld filtered",
              (long long)st.logs_emitted, (long long)st.logs_filtered);
        CHECK(st.lifecycle_calls > 0, "lifecycle calls");
        lib_close(&all);
    }
    test_only_kinds(dir, "v013_source", 1, 0, 0, 0, 0);
    test_only_kinds(dir, "v013_reaction", 0, 1, 0, 0, 0);
    test_only_kinds(dir, "v013_bootstrap", 0, 0, 1, 0, 0);
    test_only_kinds(dir, "v013_services", 0, 0, 0, 1, 1);
    Lib hostile;
    if (lib_open(&hostile, dir, "v013_hostile", "0.13.0")) {
        SourcePluginVtable *f = &hostile.reg.source_plugins[0];
        CHECK(str_is(f->kind_fn(f->state), "hostile013"), "hostile kind");
        lib_close(&hostile);
    }
    Lib bad;
    if (lib_open(&bad, dir, "v013_badsdk", "0.12.0"))
        lib_close(&bad);
    printf("selftest013: %d checks, %d failures\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
