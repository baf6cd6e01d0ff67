/*
 * selftest.c - checks the fixture plugins themselves, as a host written in C.
 *
 * Usage: selftest FIXTURE_DIR     (exit status 0 when every check passed)
 *
 * Meant to run under valgrind:
 *   valgrind --error-exitcode=1 --leak-check=full ./selftest FIXTURE_DIR
 * It loads every library built by build.py, runs full source / bootstrap /
 * reaction / services cycles with C callbacks (releasing everything exactly
 * as a host must), drives each hostile mode, and checks that the plugins'
 * stats counters balance (every event, payload, receiver, provider and
 * factory released exactly once, no double release).
 */
#define _POSIX_C_SOURCE 200809L
#define DRASI_HOST_BUILD 1

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drasi_plugin.h"
#include "fixture_stats.h"
#include "mini_store.h"

#ifdef __APPLE__
#define LIB(name) "libdrasi_" name ".dylib"
#else
#define LIB(name) "libdrasi_" name ".so"
#endif

static int failures, checks;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        checks++;                                                               \
        if (!(cond)) {                                                          \
            failures++;                                                         \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

static const char *fixture_dir;

static FfiStr S(const char *s) {
    FfiStr r = {s, strlen(s)};
    return r;
}

static bool str_is(FfiStr a, const char *lit) {
    return a.len == strlen(lit) && (a.len == 0 || memcmp(a.ptr, lit, a.len) == 0);
}

static void free_owned(FfiOwnedStr s) {
    if (s.cap > 0) free(s.ptr);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void deadline_in(struct timespec *ts, int ms) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* ---- host log / lifecycle sink ------------------------------------------------ */

typedef struct Logs {
    int64_t entries, errors, lifecycle, lifecycle_errors;
    int64_t with_instance; /* entries carrying an instance id */
    char last_error[512];
    char last_lifecycle_msg[256];
    int last_lifecycle_type;
} Logs;

static pthread_mutex_t logs_lock = PTHREAD_MUTEX_INITIALIZER;
static Logs logs;

static void on_log(void *ctx, const FfiLogEntry *e) {
    Logs *l = ctx;
    pthread_mutex_lock(&logs_lock);
    l->entries++;
    if (e->instance_id.len) l->with_instance++;
    if (e->level == FFI_LOG_LEVEL_ERROR) {
        l->errors++;
        snprintf(l->last_error, sizeof l->last_error, "%.*s", (int)e->message.len,
                 e->message.len ? e->message.ptr : "");
    }
    pthread_mutex_unlock(&logs_lock);
}

static void on_lifecycle(void *ctx, const FfiLifecycleEvent *ev) {
    Logs *l = ctx;
    pthread_mutex_lock(&logs_lock);
    l->lifecycle++;
    l->last_lifecycle_type = (int)ev->event_type;
    if (ev->event_type == FFI_LIFECYCLE_ERROR) l->lifecycle_errors++;
    snprintf(l->last_lifecycle_msg, sizeof l->last_lifecycle_msg, "%.*s", (int)ev->message.len,
             ev->message.len ? ev->message.ptr : "");
    pthread_mutex_unlock(&logs_lock);
}

static Logs logs_snapshot(void) {
    pthread_mutex_lock(&logs_lock);
    Logs copy = logs;
    pthread_mutex_unlock(&logs_lock);
    return copy;
}

/* ---- libraries ------------------------------------------------------------------- */

typedef struct Lib {
    void *h;
    FfiPluginRegistration reg;
    bool has_reg;
    const char *file;
} Lib;

static void *sym(Lib *l, const char *name) { return dlsym(l->h, name); }

static Lib open_lib(const char *file, bool init) {
    Lib l;
    memset(&l, 0, sizeof l);
    l.file = file;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", fixture_dir, file);
    l.h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!l.h) {
        fprintf(stderr, "cannot open %s: %s\n", path, dlerror());
        exit(2);
    }
    if (init) {
        DrasiPluginInitFn fn;
        *(void **)&fn = sym(&l, "drasi_plugin_init");
        CHECK(fn != NULL, "%s has drasi_plugin_init", file);
        FfiPluginRegistration *reg = fn ? fn() : NULL;
        CHECK(reg != NULL, "%s init returned a registration", file);
        if (reg) {
            l.reg = *reg;
            free(reg);
            l.has_reg = true;
            l.reg.set_log_callback(&logs, on_log);
            l.reg.set_lifecycle_callback(&logs, on_lifecycle);
        }
    }
    return l;
}

static DrasiFixtureStats stats(Lib *l) {
    DrasiFixtureStats st;
    void (*fn)(DrasiFixtureStats *);
    *(void **)&fn = sym(l, "drasi_fixture_stats");
    if (!fn) {
        fprintf(stderr, "%s lacks drasi_fixture_stats\n", l->file);
        exit(2);
    }
    fn(&st);
    return st;
}

/* Releases the factories and arrays; the library itself stays loaded. */
static void close_lib(Lib *l) {
    if (!l->has_reg) return;
    for (size_t i = 0; i < l->reg.source_plugin_count; i++)
        l->reg.source_plugins[i].drop_fn(l->reg.source_plugins[i].state);
    for (size_t i = 0; i < l->reg.reaction_plugin_count; i++)
        l->reg.reaction_plugins[i].drop_fn(l->reg.reaction_plugins[i].state);
    for (size_t i = 0; i < l->reg.bootstrap_plugin_count; i++)
        l->reg.bootstrap_plugins[i].drop_fn(l->reg.bootstrap_plugins[i].state);
    if (l->reg.source_plugin_count) free(l->reg.source_plugins);
    if (l->reg.reaction_plugin_count) free(l->reg.reaction_plugins);
    if (l->reg.bootstrap_plugin_count) free(l->reg.bootstrap_plugins);
    l->has_reg = false;
}

/* Every created event/payload was released exactly once. */
static void check_balanced(Lib *l) {
    DrasiFixtureStats st = stats(l);
    CHECK(st.events_created == st.events_released, "%s events %" PRId64 " created, %" PRId64
          " released", l->file, st.events_created, st.events_released);
    CHECK(st.payloads_created == st.payloads_released, "%s payloads %" PRId64 " created, %" PRId64
          " released", l->file, st.payloads_created, st.payloads_released);
    CHECK(st.double_release_detected == 0, "%s double releases: %" PRId64, l->file,
          st.double_release_detected);
    CHECK(st.receivers_created == st.receivers_dropped, "%s receivers %" PRId64 "/%" PRId64,
          l->file, st.receivers_created, st.receivers_dropped);
    CHECK(st.bootstrap_receivers_created == st.bootstrap_receivers_dropped,
          "%s bootstrap receivers %" PRId64 "/%" PRId64, l->file, st.bootstrap_receivers_created,
          st.bootstrap_receivers_dropped);
    CHECK(st.sources_created == st.sources_dropped, "%s sources %" PRId64 "/%" PRId64, l->file,
          st.sources_created, st.sources_dropped);
    CHECK(st.reactions_created == st.reactions_dropped, "%s reactions", l->file);
    CHECK(st.providers_created == st.providers_dropped, "%s providers", l->file);
    CHECK(st.results_received == st.results_released, "%s results", l->file);
}

static FfiRuntimeContext make_ctx(const char *component, const StateStoreVtable *store,
                                  const IdentityProviderVtable *identity) {
    FfiRuntimeContext c;
    memset(&c, 0, sizeof c);
    c.instance_id = S("selftest-instance");
    c.component_id = S(component);
    c.state_store = store;
    c.log_callback = on_log;
    c.log_ctx = &logs;
    c.lifecycle_callback = on_lifecycle;
    c.lifecycle_ctx = &logs;
    c.identity_provider = identity;
    return c;
}

static char *owned_to_cstr(FfiOwnedStr s) {
    char *c = malloc(s.len + 1);
    if (s.len) memcpy(c, s.ptr, s.len);
    c[s.len] = '\0';
    free_owned(s);
    return c;
}

/* ---- event collectors ----------------------------------------------------------- */

typedef struct Collect {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int64_t events, eos, after_eos, bad;
    int64_t false_at;    /* answer false to this event index (-1: never) */
    bool check_doc;      /* ops and element ids follow the generator */
    bool opaque;
    bool bootstrap;
    bool nodes_only;     /* provider records: nodes only */
    int64_t oversize_seen;
    int64_t bad_op_seen;
    int64_t bad_utf8_seen;
    char label[64];
    char source_id[64];
} Collect;

static void collect_init(Collect *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->false_at = -1;
    c->check_doc = true;
}

static void collect_destroy(Collect *c) {
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
}

static bool utf8_ok(FfiStr s) {
    for (size_t i = 0; i < s.len; i++)
        if ((unsigned char)s.ptr[i] >= 0x80) return false; /* the fixtures only emit ASCII */
    return true;
}

/* Checks one event; returns the answer for the plugin.  The event is released here
 * in every case (an event answered with false still belongs to the host). */
static bool collect_one(Collect *c, void *opaque, void (*drop)(void *), int op, uint64_t seq,
                        FfiStr source_id, FfiStr label, FfiStr entity_id) {
    pthread_mutex_lock(&c->lock);
    int64_t idx = c->events++;
    if (c->eos) c->after_eos++;
    if (!utf8_ok(label)) c->bad_utf8_seen++;
    if (op < 0 || op > 2) c->bad_op_seen++;
    if (!c->opaque) {
        const DrasiPayload *p = opaque;
        if (p->len > ((size_t)1 << 30)) {
            c->oversize_seen++; /* never read */
        } else if (c->check_doc) {
            char want_id[32];
            bool rel = !c->nodes_only && idx % 4 == 3;
            snprintf(want_id, sizeof want_id, "%c%" PRId64, rel ? 'r' : 'n', idx);
            char needle[64];
            snprintf(needle, sizeof needle, "\"element_id\":\"%s\"", want_id);
            char *doc = malloc(p->len + 1);
            memcpy(doc, p->data, p->len);
            doc[p->len] = '\0';
            bool ok = doc[0] == '{' && strstr(doc, needle) && str_is(entity_id, want_id);
            if (c->bootstrap)
                ok = ok && strncmp(doc, "{\"op\":\"insert\"", 14) == 0 && seq == (uint64_t)idx;
            else
                ok = ok && op == (int)(idx % 3) &&
                     (op == 2 ? strstr(doc, "\"properties\"") == NULL
                              : strstr(doc, "\"score\":") != NULL);
            ok = ok && str_is(label, rel ? "KNOWS" : c->label) && str_is(source_id, c->source_id);
            if (!ok) {
                c->bad++;
                fprintf(stderr, "unexpected event %" PRId64 ": %s\n", idx, doc);
            }
            free(doc);
        }
    }
    bool answer = c->eos == 0 && idx != c->false_at && !(c->false_at >= 0 && idx > c->false_at);
    pthread_mutex_unlock(&c->lock);
    drop(opaque);
    return answer;
}

static bool on_change(void *ctx, FfiSourceEvent *ev) {
    Collect *c = ctx;
    if (!ev) {
        pthread_mutex_lock(&c->lock);
        c->eos++;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        return false;
    }
    FfiSourceEvent e = *ev;
    free(ev);
    return collect_one(c, e.opaque, e.drop_fn, (int)e.op, 0, e.source_id, e.label, e.entity_id);
}

static bool on_bootstrap(void *ctx, FfiBootstrapEvent *ev) {
    Collect *c = ctx;
    if (!ev) {
        pthread_mutex_lock(&c->lock);
        c->eos++;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        return false;
    }
    FfiBootstrapEvent e = *ev;
    free(ev);
    return collect_one(c, e.opaque, e.drop_fn, 0, e.sequence, e.source_id, e.label, e.entity_id);
}

static bool wait_eos(Collect *c, int64_t n, int timeout_ms) {
    struct timespec dl;
    deadline_in(&dl, timeout_ms);
    pthread_mutex_lock(&c->lock);
    while (c->eos < n)
        if (pthread_cond_timedwait(&c->cond, &c->lock, &dl) == ETIMEDOUT) break;
    bool ok = c->eos >= n;
    pthread_mutex_unlock(&c->lock);
    return ok;
}

/* ---- source helpers ---------------------------------------------------------------- */

typedef struct Sub {
    FfiChangeReceiver rx;
    FfiBootstrapReceiver brx;
    bool has_rx, has_brx;
} Sub;

static SourceVtable create_source(SourcePluginVtable *f, const char *id, const char *cfg,
                                  bool *ok) {
    SourceVtable s;
    memset(&s, 0, sizeof s);
    SourceVtable *vt = f->create_source_fn(f->state, S(id), S(cfg), false);
    *ok = vt != NULL;
    if (vt) {
        s = *vt;
        free(vt);
    }
    return s;
}

static Sub subscribe(SourceVtable *s, const char *expect_source_id, bool bootstrap,
                     const char *query, const char *nodes) {
    Sub sub;
    memset(&sub, 0, sizeof sub);
    FfiSubscriptionResponse *r =
        s->subscribe_fn(s->state, S("requested-id"), bootstrap, S(query), S(nodes), S("[]"));
    CHECK(r != NULL, "subscribe returned a response");
    if (!r) return sub;
    char *q = owned_to_cstr(r->query_id);
    char *sid = owned_to_cstr(r->source_id);
    CHECK(strcmp(q, query) == 0, "response query id %s", q);
    CHECK(strcmp(sid, expect_source_id) == 0, "response source id %s", sid);
    free(q);
    free(sid);
    if (r->receiver) {
        sub.rx = *r->receiver;
        sub.has_rx = true;
        free(r->receiver);
    }
    if (r->bootstrap_receiver) {
        sub.brx = *r->bootstrap_receiver;
        sub.has_brx = true;
        free(r->bootstrap_receiver);
    }
    free(r);
    return sub;
}

static void drop_sub(Sub *sub) {
    if (sub->has_rx) sub->rx.drop_fn(sub->rx.state);
    if (sub->has_brx) sub->brx.drop_fn(sub->brx.state);
    sub->has_rx = sub->has_brx = false;
}

static void check_schema(FfiOwnedStr schema, const char *title) {
    char *s = owned_to_cstr(schema);
    CHECK(s[0] == '{' && strstr(s, title) != NULL, "schema mentions %s: %s", title, s);
    free(s);
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_load_variants(void) {
    struct {
        const char *file;
        bool metadata, init, format;
        const char *sdk, *triple, *fmt;
    } cases[] = {
        {LIB("source_fixture"), true, true, true, "0.4.2", NULL, "application/json"},
        {LIB("noinit"), true, false, true, "0.4.2", NULL, "application/json"},
        {LIB("initnull"), true, true, true, "0.4.2", NULL, "application/json"},
        {LIB("badsdk"), true, true, true, "0.3.1", NULL, "application/json"},
        {LIB("badtriple"), true, true, true, "0.4.2", "riscv64gc-unknown-none-elf",
         "application/json"},
        {LIB("nometa"), false, true, true, NULL, NULL, "application/json"},
        {LIB("badformat"), true, true, true, "0.4.2", NULL, "application/x-unknown"},
        {LIB("opaque"), true, true, false, "0.4.2", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Lib l = open_lib(cases[i].file, false);
        DrasiPluginMetadataFn md;
        DrasiPluginPayloadFormatFn pf;
        DrasiPluginInitFn in;
        *(void **)&md = sym(&l, "drasi_plugin_metadata");
        *(void **)&pf = sym(&l, "drasi_plugin_payload_format");
        *(void **)&in = sym(&l, "drasi_plugin_init");
        CHECK((md != NULL) == cases[i].metadata, "%s metadata export", l.file);
        CHECK((in != NULL) == cases[i].init, "%s init export", l.file);
        CHECK((pf != NULL) == cases[i].format, "%s payload format export", l.file);
        if (md) {
            const PluginMetadata *m = md();
            CHECK(str_is(m->sdk_version, cases[i].sdk), "%s sdk version", l.file);
            if (cases[i].triple)
                CHECK(str_is(m->target_triple, cases[i].triple), "%s triple", l.file);
            else
                CHECK(str_is(m->target_triple, "x86_64-unknown-linux-gnu") ||
                          str_is(m->target_triple, "aarch64-unknown-linux-gnu") ||
                          str_is(m->target_triple, "x86_64-apple-darwin") ||
                          str_is(m->target_triple, "aarch64-apple-darwin"),
                      "%s triple %.*s", l.file, (int)m->target_triple.len, m->target_triple.ptr);
        }
        if (pf) CHECK(str_is(pf(), cases[i].fmt), "%s payload format", l.file);
        if (strcmp(cases[i].file, LIB("initnull")) == 0) CHECK(in() == NULL, "initnull");
    }
    Lib bad = open_lib(LIB("badutf8"), true);
    SourcePluginVtable *f = &bad.reg.source_plugins[0];
    CHECK(str_is(f->kind_fn(f->state), "bad\xff\xfe" "kind"), "badutf8 kind bytes");
    close_lib(&bad);
}

static void test_source(void) {
    Lib l = open_lib(LIB("source_fixture"), true);
    CHECK(l.reg.source_plugin_count == 1 && l.reg.reaction_plugin_count == 0 &&
              l.reg.bootstrap_plugin_count == 0, "source registration counts");
    SourcePluginVtable *f = &l.reg.source_plugins[0];
    CHECK(str_is(f->kind_fn(f->state), "fixture"), "kind");
    CHECK(str_is(f->config_version_fn(f->state), "1.0.0"), "config version");
    CHECK(str_is(f->config_schema_name_fn(f->state), "source.fixture.FixtureSourceConfig"), "name");
    check_schema(f->config_schema_json_fn(f->state), "source.fixture.FixtureSourceConfig");

    bool ok;
    int64_t errors_before = logs_snapshot().errors;
    create_source(f, "bad", "{\"event_count\": \"many\"}", &ok);
    CHECK(!ok, "invalid config refused");
    Logs lg = logs_snapshot();
    CHECK(lg.errors == errors_before + 1 && strstr(lg.last_error, "event_count"),
          "config error logged: %s", lg.last_error);
    create_source(f, "bad2", "[1,2]", &ok);
    CHECK(!ok, "non-object config refused");

    /* full cycle with store, identity, bootstrap and change streams */
    MiniStore ms;
    ms_init(&ms);
    StateStoreVtable store = ms_vtable(&ms);
    int64_t id_live = 1, id_drops = 0;
    MiniIdentity ident = {&id_live, &id_drops};
    MiniIdentity *ident_state = malloc(sizeof ident);
    *ident_state = ident;
    IdentityProviderVtable idvt = {ident_state, mi_get, mi_clone, mi_drop};
    SourceVtable s = create_source(
        f, "s1", "{\"event_count\": 25, \"bootstrap_count\": 7, \"use_store\": true, "
                 "\"label\": \"Person\"}", &ok);
    CHECK(ok, "source created");
    CHECK(str_is(s.id_fn(s.state), "s1") && str_is(s.type_name_fn(s.state), "fixture"), "ids");
    CHECK(s.dispatch_mode_fn(s.state) == FFI_DISPATCH_MODE_CHANNEL, "dispatch");
    CHECK(s.status_fn(s.state) == FFI_COMPONENT_STATUS_STOPPED, "initial status");
    FfiRuntimeContext ctx = make_ctx("s1", &store, &idvt);
    s.initialize_fn(s.state, &ctx);
    int64_t lc_before = logs_snapshot().lifecycle;
    FfiResult r = s.start_fn(s.state);
    CHECK(r.error_code == 0, "start");
    free(r.error_msg);
    CHECK(s.status_fn(s.state) == FFI_COMPONENT_STATUS_RUNNING, "running");
    CHECK(logs_snapshot().lifecycle == lc_before + 2, "Starting+Started lifecycle");
    char *starts = ms_get(&ms, "s1", "starts", NULL);
    CHECK(starts && strcmp(starts, "1") == 0, "starts counter %s", starts ? starts : "(none)");
    free(starts);

    Sub sub = subscribe(&s, "s1", true, "q1", "[\"Person\"]");
    CHECK(sub.has_rx && sub.has_brx, "both receivers");
    Collect cc, bc;
    collect_init(&cc);
    collect_init(&bc);
    strcpy(cc.label, "Person");
    strcpy(bc.label, "Person");
    strcpy(cc.source_id, "s1");
    strcpy(bc.source_id, "s1");
    bc.bootstrap = true;
    sub.brx.start_push_fn(sub.brx.state, on_bootstrap, &bc);
    sub.rx.start_push_fn(sub.rx.state, on_change, &cc);
    CHECK(wait_eos(&cc, 1, 20000) && wait_eos(&bc, 1, 20000), "end of streams");
    CHECK(cc.events == 25 && cc.bad == 0, "change events %" PRId64 " bad %" PRId64, cc.events,
          cc.bad);
    CHECK(bc.events == 7 && bc.bad == 0, "bootstrap events %" PRId64, bc.events);
    drop_sub(&sub);

    /* early close: the host answers false at event 5 */
    Sub sub2 = subscribe(&s, "s1", false, "q2", "[]");
    CHECK(sub2.has_rx && !sub2.has_brx, "no bootstrap receiver");
    Collect c2;
    collect_init(&c2);
    strcpy(c2.label, "Person");
    strcpy(c2.source_id, "s1");
    c2.false_at = 5;
    DrasiFixtureStats before = stats(&l);
    sub2.rx.start_push_fn(sub2.rx.state, on_change, &c2);
    CHECK(wait_eos(&c2, 1, 20000), "eos after false");
    CHECK(c2.events == 6, "stopped after false: %" PRId64, c2.events);
    CHECK(stats(&l).push_false_seen == before.push_false_seen + 1, "push_false_seen");
    drop_sub(&sub2);

    r = s.stop_fn(s.state);
    CHECK(r.error_code == 0 && s.status_fn(s.state) == FFI_COMPONENT_STATUS_STOPPED, "stopped");
    free(r.error_msg);

    /* drop while the pusher sleeps between events: must not wait for the interval */
    SourceVtable slow = create_source(f, "slow", "{\"event_count\": 100, \"interval_us\": 5000000}", &ok);
    Sub sub3 = subscribe(&slow, "slow", false, "q3", "[]");
    Collect c3;
    collect_init(&c3);
    strcpy(c3.label, "Person");
    strcpy(c3.source_id, "slow");
    sub3.rx.start_push_fn(sub3.rx.state, on_change, &c3);
    sleep_ms(100);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    drop_sub(&sub3);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(dt < 2.0, "drop returned promptly (%.3f s)", dt);
    CHECK(c3.events == 1 && c3.eos == 1, "one event then end of stream");
    slow.drop_fn(slow.state);

    /* fail_start */
    SourceVtable bad = create_source(f, "failing", "{\"fail_start\": true}", &ok);
    int64_t lce = logs_snapshot().lifecycle_errors;
    r = bad.start_fn(bad.state);
    CHECK(r.error_code == 1 && r.error_msg &&
              strcmp(r.error_msg, "start refused: fail_start is set") == 0, "fail_start result");
    free(r.error_msg);
    CHECK(bad.status_fn(bad.state) == FFI_COMPONENT_STATUS_ERROR, "error status");
    lg = logs_snapshot();
    CHECK(lg.lifecycle_errors == lce + 1 &&
              strcmp(lg.last_lifecycle_msg, "start refused: fail_start is set") == 0,
          "error lifecycle: %s", lg.last_lifecycle_msg);
    bad.drop_fn(bad.state);

    s.drop_fn(s.state);
    CHECK(ms.drops == 1, "state store dropped once (%" PRId64 ")", ms.drops);
    CHECK(id_drops == 1 && id_live == 0, "identity dropped once");
    CHECK(logs_snapshot().with_instance > 0, "instance logs carry the instance id");
    close_lib(&l);
    DrasiFixtureStats st = stats(&l);
    CHECK(st.sources_dropped == 3 && st.factories_dropped == 1, "drops");
    CHECK(st.end_of_stream_sent == 4, "end of stream count %" PRId64, st.end_of_stream_sent);
    check_balanced(&l);
    collect_destroy(&cc);
    collect_destroy(&bc);
    collect_destroy(&c2);
    collect_destroy(&c3);
    ms_destroy(&ms);
}

static void test_bootstrap_provider(void) {
    Lib src = open_lib(LIB("source_fixture"), true);
    Lib bl = open_lib(LIB("bootstrap_fixture"), true);
    CHECK(bl.reg.bootstrap_plugin_count == 1 && bl.reg.source_plugin_count == 0, "counts");
    BootstrapPluginVtable *bf = &bl.reg.bootstrap_plugins[0];
    CHECK(str_is(bf->kind_fn(bf->state), "fixture"), "bootstrap kind");
    check_schema(bf->config_schema_json_fn(bf->state), "bootstrap.fixture.FixtureBootstrapConfig");
    CHECK(bf->create_bootstrap_provider_fn(bf->state, S("{\"count\": -1}"), S("{}")) == NULL,
          "negative count refused");
    SourcePluginVtable *sf = &src.reg.source_plugins[0];
    DrasiFixtureStats s0 = stats(&src);
    struct {
        const char *cfg;
        int64_t false_at;
        int64_t expect_events;
        const char *label;
    } runs[] = {
        {"{\"count\": 4}", -1, 4, "City"},                 /* label from the request */
        {"{\"count\": 3, \"label\": \"Town\"}", -1, 3, "Town"},
        {"{\"count\": 10}", 2, 3, "City"},                 /* host closes early */
        {"{\"fail\": true}", -1, 0, "City"},
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        bool ok;
        SourceVtable s = create_source(sf, "bs", "{\"bootstrap_count\": 99}", &ok);
        BootstrapProviderVtable *p =
            bf->create_bootstrap_provider_fn(bf->state, S(runs[i].cfg), S("{}"));
        CHECK(p != NULL, "provider created");
        s.set_bootstrap_provider_fn(s.state, p);
        Sub sub = subscribe(&s, "bs", true, "qb", "[\"City\"]");
        Collect bc;
        collect_init(&bc);
        bc.bootstrap = true;
        bc.nodes_only = true;
        bc.false_at = runs[i].false_at;
        strcpy(bc.label, runs[i].label);
        strcpy(bc.source_id, "bs");
        sub.brx.start_push_fn(sub.brx.state, on_bootstrap, &bc);
        CHECK(wait_eos(&bc, 1, 20000), "bootstrap eos");
        CHECK(bc.events == runs[i].expect_events && bc.bad == 0,
              "run %zu: %" PRId64 " events, %" PRId64 " bad", i, bc.events, bc.bad);
        drop_sub(&sub);
        s.drop_fn(s.state);
        collect_destroy(&bc);
    }
    /* a replaced provider is released at once */
    bool ok;
    SourceVtable s = create_source(sf, "bs2", "{}", &ok);
    s.set_bootstrap_provider_fn(s.state,
                                bf->create_bootstrap_provider_fn(bf->state, S("{}"), S("{}")));
    s.set_bootstrap_provider_fn(s.state,
                                bf->create_bootstrap_provider_fn(bf->state, S("{}"), S("{}")));
    CHECK(stats(&bl).providers_dropped == stats(&bl).providers_created - 1, "replaced provider");
    s.drop_fn(s.state);
    DrasiFixtureStats s1 = stats(&src);
    CHECK(s1.senders_dropped - s0.senders_dropped == 4, "senders dropped");
    CHECK(s1.foreign_providers_dropped - s0.foreign_providers_dropped == 6, "providers released");
    CHECK(s1.bootstrap_sends - s0.bootstrap_sends == 10, "sends %" PRId64,
          s1.bootstrap_sends - s0.bootstrap_sends);
    CHECK(s1.bootstrap_sends_rejected - s0.bootstrap_sends_rejected == 1, "rejected sends");
    close_lib(&src);
    close_lib(&bl);
    check_balanced(&src);
    check_balanced(&bl);
}

typedef struct Feed {
    int64_t n, sent;
    int64_t released;
    uint64_t fnv;
    int64_t bytes;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
} Feed;

static int64_t feed_released;
static int64_t feed_bad_unused; /* calls whose `unused` argument was not NULL */

static void feed_drop(DrasiPayload *p) {
    __atomic_add_fetch(&feed_released, 1, __ATOMIC_SEQ_CST);
    free(p);
}

/* Returns n results, then blocks until stopping (like a host), then NULL. */
static void *feed_next(void *ctx, void *unused) {
    Feed *f = ctx;
    if (unused != NULL) __atomic_add_fetch(&feed_bad_unused, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&f->lock);
    if (f->sent < f->n && !f->stopping) {
        char doc[160];
        int len = snprintf(doc, sizeof doc,
                           "{\"query_id\":\"q1\",\"timestamp\":\"2026-11-28T07:30:00.000000Z\","
                           "\"results\":[{\"type\":\"ADD\",\"data\":{\"i\":%" PRId64 "}}],"
                           "\"metadata\":{}}",
                           f->sent);
        f->sent++;
        for (int i = 0; i < len; i++) {
            f->fnv ^= (unsigned char)doc[i];
            f->fnv *= UINT64_C(0x100000001b3);
        }
        f->bytes += len;
        pthread_mutex_unlock(&f->lock);
        DrasiPayload *p = malloc(sizeof(DrasiPayload) + (size_t)len);
        memcpy(p + 1, doc, (size_t)len);
        p->data = (const uint8_t *)(p + 1);
        p->len = (size_t)len;
        p->drop_fn = feed_drop;
        return p;
    }
    while (!f->stopping) pthread_cond_wait(&f->cond, &f->lock);
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

static void test_reaction(void) {
    Lib l = open_lib(LIB("reaction_fixture"), true);
    ReactionPluginVtable *f = &l.reg.reaction_plugins[0];
    CHECK(str_is(f->kind_fn(f->state), "fixture"), "reaction kind");
    check_schema(f->config_schema_json_fn(f->state), "reaction.fixture.FixtureReactionConfig");
    CHECK(f->create_reaction_fn(f->state, S("r0"), S("[]"), S("{\"record\": \"x\"}"), false) ==
              NULL, "bad record refused");
    CHECK(f->create_reaction_fn(f->state, S("r0"), S("{}"), S("{}"), false) == NULL,
          "bad query ids refused");
    ReactionVtable *vt =
        f->create_reaction_fn(f->state, S("r1"), S("[\"q1\",\"q2\"]"), S("{\"record\":\"store\"}"), true);
    CHECK(vt != NULL, "reaction created");
    ReactionVtable rc = *vt;
    free(vt);
    CHECK(rc.auto_start_fn(rc.state) && str_is(rc.id_fn(rc.state), "r1"), "reaction ids");
    FfiStringArray q = rc.query_ids_fn(rc.state);
    CHECK(q.len == 2 && q.cap > 0 && str_is((FfiStr){q.data[1].ptr, q.data[1].len}, "q2"), "qids");
    for (size_t i = 0; i < q.len; i++) free_owned(q.data[i]);
    if (q.cap) free(q.data);
    MiniStore ms;
    ms_init(&ms);
    StateStoreVtable store = ms_vtable(&ms);
    FfiRuntimeContext ctx = make_ctx("r1", &store, NULL);
    rc.initialize_fn(rc.state, &ctx);
    Feed feed = {.n = 50, .fnv = UINT64_C(0xcbf29ce484222325)};
    pthread_mutex_init(&feed.lock, NULL);
    pthread_cond_init(&feed.cond, NULL);
    feed_released = 0;
    rc.start_result_push_fn(rc.state, feed_next, &feed);
    FfiResult r = rc.start_fn(rc.state);
    CHECK(r.error_code == 0 && rc.status_fn(rc.state) == FFI_COMPONENT_STATUS_RUNNING, "started");
    free(r.error_msg);
    for (int i = 0; i < 2000 && __atomic_load_n(&feed_released, __ATOMIC_SEQ_CST) < 50; i++)
        sleep_ms(5);
    pthread_mutex_lock(&feed.lock);
    feed.stopping = true;
    pthread_cond_broadcast(&feed.cond);
    pthread_mutex_unlock(&feed.lock);
    r = rc.stop_fn(rc.state);
    free(r.error_msg);
    CHECK(feed_bad_unused == 0, "the reaction passes NULL as `unused`");
    CHECK(feed_released == 50, "all results released (%" PRId64 ")", feed_released);
    char *count = ms_get(&ms, "r1", "result_count", NULL);
    char *bytes = ms_get(&ms, "r1", "result_bytes", NULL);
    char *fnv = ms_get(&ms, "r1", "result_fnv1a", NULL);
    char want[32];
    snprintf(want, sizeof want, "%016" PRIx64, feed.fnv);
    CHECK(count && strcmp(count, "50") == 0, "result_count");
    CHECK(bytes && strtoll(bytes, NULL, 10) == feed.bytes, "result_bytes");
    CHECK(fnv && strcmp(fnv, want) == 0, "result_fnv1a %s vs %s", fnv ? fnv : "-", want);
    char *first = ms_get(&ms, "r1", "result:00000000", NULL);
    CHECK(first && strstr(first, "{\"i\":0}"), "first stored result");
    free(first);
    free(count);
    free(bytes);
    free(fnv);
    void (*summary)(int64_t *, int64_t *, uint64_t *);
    *(void **)&summary = sym(&l, "drasi_fixture_reaction_summary");
    int64_t sc = 0, sb = 0;
    uint64_t sf = 0;
    summary(&sc, &sb, &sf);
    CHECK(sc == 50 && sb == feed.bytes && sf == feed.fnv, "summary export");
    rc.drop_fn(rc.state);
    CHECK(ms.drops == 1, "store dropped once");
    close_lib(&l);
    check_balanced(&l);
    CHECK(stats(&l).results_received == 50, "results counted");
    ms_destroy(&ms);
    pthread_mutex_destroy(&feed.lock);
    pthread_cond_destroy(&feed.cond);
}

static void test_services(void) {
    Lib l = open_lib(LIB("services"), true);
    SourcePluginVtable *f = &l.reg.source_plugins[0];
    CHECK(str_is(f->kind_fn(f->state), "services"), "services kind");
    MiniStore ms;
    ms_init(&ms);
    ms_set(&ms, "svc", "in:a", "alpha", 5);
    ms_set(&ms, "svc", "in:b", "", 0);
    ms_set(&ms, "svc", "other", "x", 1);
    StateStoreVtable store = ms_vtable(&ms);
    int64_t live = 1, drops = 0;
    MiniIdentity *ident = malloc(sizeof *ident);
    ident->live = &live;
    ident->drops = &drops;
    IdentityProviderVtable idvt = {ident, mi_get, mi_clone, mi_drop};
    bool ok;
    SourceVtable s = create_source(f, "svc", "{}", &ok);
    CHECK(ok, "services source");
    FfiRuntimeContext ctx = make_ctx("svc", &store, &idvt);
    s.initialize_fn(s.state, &ctx);
    FfiResult r = s.start_fn(s.state);
    free(r.error_msg);
    r = s.stop_fn(s.state);
    free(r.error_msg);
    char *report = ms_get(&ms, "svc", "report", NULL);
    CHECK(report != NULL, "report written");
    const char *want =
        "{\"copied\":2,\"contains_missing\":\"not_found\",\"many_deleted\":2,\"key_count\":5,"
        "\"store_exists\":true,\"other_store_exists\":false,\"sync\":\"ok\",\"identity\":"
        "{\"kind\":1,\"f1\":\"fixture-user\",\"f2\":\"fixture-token\",\"f3\":null,"
        "\"clone_kind\":1},\"errors\":[]}";
    CHECK(report && strcmp(report, want) == 0, "report %s", report ? report : "(none)");
    free(report);
    char *out = ms_get(&ms, "svc", "out:a", NULL);
    CHECK(out && strcmp(out, "alpha") == 0, "out:a copied");
    free(out);
    s.drop_fn(s.state);
    CHECK(drops == 2 && live == 0, "identity clone and copy dropped");

    SourceVtable b = create_source(f, "bench", "{\"ops\": 3000}", &ok);
    FfiRuntimeContext ctx2 = make_ctx("bench", &store, NULL);
    b.initialize_fn(b.state, &ctx2);
    r = b.start_fn(b.state);
    free(r.error_msg);
    r = b.stop_fn(b.state);
    free(r.error_msg);
    report = ms_get(&ms, "bench", "report", NULL);
    CHECK(report && strstr(report, "\"ops\":6000,") && strstr(report, "\"mismatches\":0,"),
          "bench report %s", report ? report : "(none)");
    free(report);
    b.drop_fn(b.state);
    CHECK(ms.drops == 2, "stores dropped");
    close_lib(&l);
    check_balanced(&l);
    ms_destroy(&ms);
}

static void test_multi_and_opaque(void) {
    Lib m = open_lib(LIB("multi"), true);
    CHECK(m.reg.source_plugin_count == 2 && m.reg.reaction_plugin_count == 3 &&
              m.reg.bootstrap_plugin_count == 2, "multi counts");
    const char *sk[] = {"multi-a", "multi-b"}, *rk[] = {"multi-r1", "multi-r2", "multi-r3"},
               *bk[] = {"multi-b1", "multi-b2"};
    for (int i = 0; i < 2; i++)
        CHECK(str_is(m.reg.source_plugins[i].kind_fn(m.reg.source_plugins[i].state), sk[i]), "sk");
    for (int i = 0; i < 3; i++)
        CHECK(str_is(m.reg.reaction_plugins[i].kind_fn(m.reg.reaction_plugins[i].state), rk[i]),
              "rk");
    for (int i = 0; i < 2; i++)
        CHECK(str_is(m.reg.bootstrap_plugins[i].kind_fn(m.reg.bootstrap_plugins[i].state), bk[i]),
              "bk");
    close_lib(&m);
    CHECK(stats(&m).factories_dropped == 7, "multi factories dropped");

    Lib o = open_lib(LIB("opaque"), true);
    SourcePluginVtable *f = &o.reg.source_plugins[0];
    CHECK(str_is(f->kind_fn(f->state), "opaque"), "opaque kind");
    CHECK(str_is(o.reg.reaction_plugins[0].kind_fn(o.reg.reaction_plugins[0].state),
                 "opaque-reaction"), "opaque reaction kind");
    bool ok;
    SourceVtable s = create_source(f, "o1", "{\"event_count\": 9}", &ok);
    Sub sub = subscribe(&s, "o1", false, "q", "[]");
    Collect c;
    collect_init(&c);
    c.opaque = true;
    sub.rx.start_push_fn(sub.rx.state, on_change, &c);
    CHECK(wait_eos(&c, 1, 20000) && c.events == 9, "opaque events");
    drop_sub(&sub);
    s.drop_fn(s.state);
    close_lib(&o);
    check_balanced(&o);
    collect_destroy(&c);
}

static void hostile_stream(SourcePluginVtable *f, const char *mode, Collect *c, int settle_ms) {
    char cfg[128];
    snprintf(cfg, sizeof cfg, "{\"mode\": \"%s\", \"event_count\": 4}", mode);
    bool ok;
    SourceVtable s = create_source(f, "h", cfg, &ok);
    CHECK(ok, "hostile %s created", mode);
    Sub sub = subscribe(&s, "h", false, "q", "[]");
    collect_init(c);
    strcpy(c->label, "Person");
    strcpy(c->source_id, "h");
    c->check_doc = false;
    sub.rx.start_push_fn(sub.rx.state, on_change, c);
    CHECK(wait_eos(c, 1, 20000), "%s eos", mode);
    sleep_ms(settle_ms);
    drop_sub(&sub);
    s.drop_fn(s.state);
}

static void test_hostile(void) {
    Lib l = open_lib(LIB("hostile"), true);
    CHECK(l.reg.source_plugin_count == 2, "hostile factories");
    SourcePluginVtable *f = &l.reg.source_plugins[0];
    SourcePluginVtable *f2 = &l.reg.source_plugins[1];
    char *schema = owned_to_cstr(f->config_schema_json_fn(f->state));
    CHECK(strcmp(schema, "{not json") == 0, "invalid schema");
    free(schema);
    FfiOwnedStr empty = f2->config_schema_json_fn(f2->state);
    CHECK(empty.cap == 0 && empty.len == 0 && empty.ptr == (char *)1, "empty schema");
    bool ok;
    int64_t e0 = logs_snapshot().errors;
    create_source(f, "h", "{\"mode\": \"null\"}", &ok);
    CHECK(!ok && logs_snapshot().errors == e0 + 1 &&
              strcmp(logs_snapshot().last_error, "hostile: refusing to create (mode=null)") == 0,
          "mode null");
    SourceVtable s = create_source(f, "h", "{\"mode\": \"bad_status\"}", &ok);
    CHECK((int)s.status_fn(s.state) == 42, "bad status");
    s.drop_fn(s.state);
    s = create_source(f, "h", "{\"mode\": \"bad_dispatch\"}", &ok);
    CHECK((int)s.dispatch_mode_fn(s.state) == 7, "bad dispatch");
    s.drop_fn(s.state);
    s = create_source(f, "h", "{\"mode\": \"null_subscription\"}", &ok);
    CHECK(s.subscribe_fn(s.state, S("h"), true, S("q"), S("[]"), S("[]")) == NULL, "null sub");
    s.drop_fn(s.state);
    s = create_source(f, "h", "{\"mode\": \"null_receiver\"}", &ok);
    Sub sub = subscribe(&s, "h", true, "q", "[]");
    CHECK(!sub.has_rx && !sub.has_brx, "null receiver");
    s.drop_fn(s.state);
    s = create_source(f, "h", "{\"mode\": \"start_error\"}", &ok);
    FfiResult r = s.start_fn(s.state);
    CHECK(r.error_code == 7 && r.error_msg && strcmp(r.error_msg, "hostile start failure") == 0,
          "start_error");
    free(r.error_msg);
    s.drop_fn(s.state);
    s = create_source(f, "h", "{\"mode\": \"start_error_nullmsg\"}", &ok);
    r = s.start_fn(s.state);
    CHECK(r.error_code == 3 && r.error_msg == NULL, "start_error_nullmsg");
    s.drop_fn(s.state);
    s = create_source(f2, "h", "{\"mode\": \"empty_strings\"}", &ok);
    FfiStr id = s.id_fn(s.state);
    CHECK(id.len == 0 && id.ptr == (const char *)1, "empty id");
    FfiSubscriptionResponse *resp = s.subscribe_fn(s.state, S("h"), false, S("q"), S("[]"), S("[]"));
    CHECK(resp && resp->query_id.cap == 0 && resp->source_id.cap == 0 && resp->receiver, "empty");
    resp->receiver->drop_fn(resp->receiver->state);
    free(resp->receiver);
    free(resp);
    s.drop_fn(s.state);
    CHECK(f->create_source_fn(f->state, S("h"), S("{\"mode\": \"nope\"}"), false) == NULL,
          "unknown mode refused");

    Collect c;
    hostile_stream(f, "oversize", &c, 0);
    CHECK(c.events == 2 && c.oversize_seen == 1, "oversize");
    collect_destroy(&c);
    hostile_stream(f, "bad_json", &c, 0);
    CHECK(c.events == 4, "bad_json");
    collect_destroy(&c);
    hostile_stream(f, "bad_op", &c, 0);
    CHECK(c.events == 4 && c.bad_op_seen == 1, "bad_op");
    collect_destroy(&c);
    hostile_stream(f, "bad_utf8", &c, 0);
    CHECK(c.events == 4 && c.bad_utf8_seen == 1, "bad_utf8");
    collect_destroy(&c);
    hostile_stream(f, "after_eos", &c, 0);
    /* the drop joins the pusher, so every late call has happened */
    CHECK(c.events == 5 && c.after_eos == 2 && c.eos == 2, "after_eos %" PRId64, c.events);
    collect_destroy(&c);

    /* flood_after_drop: calls keep coming for ~200 ms after the drop */
    DrasiFixtureStats before = stats(&l);
    char cfg[] = "{\"mode\": \"flood_after_drop\"}";
    s = create_source(f, "h", cfg, &ok);
    sub = subscribe(&s, "h", false, "q", "[]");
    collect_init(&c);
    c.check_doc = false;
    sub.rx.start_push_fn(sub.rx.state, on_change, &c);
    sleep_ms(50);
    drop_sub(&sub);
    s.drop_fn(s.state);
    sleep_ms(1500);
    DrasiFixtureStats after = stats(&l);
    CHECK(after.late_calls_made > before.late_calls_made, "late calls made");
    pthread_mutex_lock(&c.lock);
    int64_t flood_eos = c.eos;
    pthread_mutex_unlock(&c.lock);
    CHECK(flood_eos == 1, "flood eos after drop");
    collect_destroy(&c);
    close_lib(&l);
    check_balanced(&l);
}

static void test_threadlog(void) {
    int64_t before = logs_snapshot().entries;
    int64_t lc = logs_snapshot().lifecycle;
    Lib l = open_lib(LIB("threadlog"), true);
    for (int i = 0; i < 1000 && logs_snapshot().lifecycle == lc; i++) sleep_ms(10);
    CHECK(logs_snapshot().entries - before == 100, "100 thread logs (%" PRId64 ")",
          logs_snapshot().entries - before);
    CHECK(logs_snapshot().lifecycle == lc + 1, "one lifecycle event");
    void (*late)(int);
    *(void **)&late = sym(&l, "drasi_fixture_late_log");
    int64_t b2 = logs_snapshot().entries;
    late(7);
    CHECK(logs_snapshot().entries - b2 == 7, "late logs");
    CHECK(stats(&l).late_calls_made == 7, "late calls counted");
    close_lib(&l);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FIXTURE_DIR\n", argv[0]);
        return 2;
    }
    fixture_dir = argv[1];
    struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"load variants", test_load_variants},
        {"source", test_source},
        {"bootstrap provider", test_bootstrap_provider},
        {"reaction", test_reaction},
        {"services", test_services},
        {"multi and opaque", test_multi_and_opaque},
        {"hostile", test_hostile},
        {"threadlog", test_threadlog},
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int before = failures;
        tests[i].fn();
        printf("%-20s %s\n", tests[i].name, failures == before ? "ok" : "FAILED");
        fflush(stdout);
    }
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
