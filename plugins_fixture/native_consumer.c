/*
 * native_consumer.c - the physical-limit baseline for the host's benchmarks:
 * a host written in C that drives a fixture plugin with no work besides the
 * ABI's own.
 *
 * Usage:
 *   native_consumer events  <source-plugin>   [N]   change events through a push receiver
 *   native_consumer results <reaction-plugin> [N]   query results pulled by a reaction
 *   native_consumer store   <services-plugin> [N]   N set+get pairs on a C state store
 *
 * Output (one line):
 *   events=<n> seconds=<s> rate=<events/s>
 *   results=<n> seconds=<s> rate=<results/s>
 *   ops=<n> seconds=<s> rate=<ops/s>
 *
 * events:  the first source factory creates a source with {"event_count": N}
 *          (no state store, no identity), it is subscribed without bootstrap,
 *          and a C callback reads every event's routing hints, releases the
 *          event (drop_fn(opaque), free(envelope)) and counts it; the time runs
 *          from start_push_fn to the end-of-stream call.
 * results: the first reaction factory creates a reaction for query "q1"; the
 *          result callback returns N malloc'd DrasiPayload copies of a fixed
 *          query-result document, then NULL; the time runs from start_fn to the
 *          first NULL.
 * store:   the services plugin runs its `ops` mode against the mutex-protected
 *          hash table of mini_store.h; the figures are those it reports.
 * Exit status 0 on success, 1 on any failure (with a message on stderr).
 */
#define _POSIX_C_SOURCE 200809L
#define DRASI_HOST_BUILD 1

#include <dlfcn.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NATIVE_HOST_NAME "native_consumer"
#include "native_host.h"
#include "mini_store.h"

static void free_owned(FfiOwnedStr s) {
    if (s.cap > 0) free(s.ptr);
}

typedef struct Plugin {
    FfiPluginRegistration reg;
    void *lib;
} Plugin;

static Plugin load(const char *path) {
    Plugin p;
    p.lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!p.lib) die(dlerror());
    DrasiPluginInitFn init;
    *(void **)&init = dlsym(p.lib, "drasi_plugin_init");
    if (!init) die("no drasi_plugin_init export");
    FfiPluginRegistration *reg = init();
    if (!reg) die("drasi_plugin_init returned NULL");
    p.reg = *reg;
    free(reg);
    return p;
}

static void unload(Plugin *p) {
    for (size_t i = 0; i < p->reg.source_plugin_count; i++)
        p->reg.source_plugins[i].drop_fn(p->reg.source_plugins[i].state);
    for (size_t i = 0; i < p->reg.reaction_plugin_count; i++)
        p->reg.reaction_plugins[i].drop_fn(p->reg.reaction_plugins[i].state);
    for (size_t i = 0; i < p->reg.bootstrap_plugin_count; i++)
        p->reg.bootstrap_plugins[i].drop_fn(p->reg.bootstrap_plugins[i].state);
    if (p->reg.source_plugin_count) free(p->reg.source_plugins);
    if (p->reg.reaction_plugin_count) free(p->reg.reaction_plugins);
    if (p->reg.bootstrap_plugin_count) free(p->reg.bootstrap_plugins);
    /* the library stays loaded: plugin threads may still run its code */
}

static FfiRuntimeContext context(const char *id, const StateStoreVtable *store) {
    FfiRuntimeContext ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.instance_id = s_("native");
    ctx.component_id = s_(id);
    ctx.state_store = store;
    return ctx;
}

/* ---- events --------------------------------------------------------------- */

typedef struct Sink {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int64_t events;
    uint64_t hint_bytes;
} Sink;

static bool on_event(void *ctx, FfiSourceEvent *ev) {
    Sink *s = ctx;
    if (!ev) {
        pthread_mutex_lock(&s->lock);
        s->done = true;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
        return true;
    }
    s->hint_bytes += ev->source_id.len + ev->label.len + ev->entity_id.len;
    if (ev->label.len) s->hint_bytes += (unsigned char)ev->label.ptr[0] & 1;
    ev->drop_fn(ev->opaque);
    free(ev);
    s->events++;
    return true;
}

static int run_events(const char *path, int64_t n) {
    Plugin p = load(path);
    if (!p.reg.source_plugin_count) die("the plugin has no source factory");
    SourcePluginVtable *f = &p.reg.source_plugins[0];
    char cfg[64];
    snprintf(cfg, sizeof cfg, "{\"event_count\": %" PRId64 "}", n);
    SourceVtable *vt = f->create_source_fn(f->state, s_("bench-source"), s_(cfg), false);
    if (!vt) die("create_source_fn returned NULL");
    SourceVtable src = *vt;
    free(vt);
    FfiRuntimeContext ctx = context("bench-source", NULL);
    src.initialize_fn(src.state, &ctx);
    FfiResult r = src.start_fn(src.state);
    if (r.error_code) die(r.error_msg ? r.error_msg : "start_fn failed");
    FfiSubscriptionResponse *resp =
        src.subscribe_fn(src.state, s_("bench-source"), false, s_("q1"), s_("[]"), s_("[]"));
    if (!resp || !resp->receiver) die("subscribe_fn failed");
    FfiChangeReceiver rx = *resp->receiver;
    free(resp->receiver);
    if (resp->bootstrap_receiver) die("unexpected bootstrap receiver");
    free_owned(resp->query_id);
    free_owned(resp->source_id);
    free(resp);

    Sink sink = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, 0};
    double t0 = now_s();
    rx.start_push_fn(rx.state, on_event, &sink);
    pthread_mutex_lock(&sink.lock);
    while (!sink.done) pthread_cond_wait(&sink.cond, &sink.lock);
    pthread_mutex_unlock(&sink.lock);
    double secs = now_s() - t0;
    rx.drop_fn(rx.state);
    r = src.stop_fn(src.state);
    free(r.error_msg);
    src.drop_fn(src.state);
    unload(&p);
    if (sink.events != n) die("event count mismatch");
    printf("events=%" PRId64 " seconds=%.6f rate=%.0f\n", sink.events, secs,
           secs > 0 ? (double)sink.events / secs : 0.0);
    return 0;
}

/* ---- results --------------------------------------------------------------- */

static const char RESULT_DOC[] =
    "{\"query_id\":\"q1\",\"timestamp\":\"2026-11-28T07:30:00.123456Z\",\"results\":"
    "[{\"type\":\"ADD\",\"data\":{\"id\":\"n1\",\"name\":\"Ada\",\"age\":36}}],\"metadata\":{}}";

typedef struct Feed {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int64_t n;
    int64_t sent;
    bool done;
} Feed;

static void free_payload(DrasiPayload *p) { free(p); }

static void *next_result(void *ctx, void *unused) {
    Feed *f = ctx;
    (void)unused;
    if (f->sent >= f->n) {
        pthread_mutex_lock(&f->lock);
        f->done = true;
        pthread_cond_signal(&f->cond);
        pthread_mutex_unlock(&f->lock);
        return NULL;
    }
    DrasiPayload *p = malloc(sizeof(DrasiPayload) + sizeof RESULT_DOC);
    if (!p) abort();
    memcpy(p + 1, RESULT_DOC, sizeof RESULT_DOC);
    p->data = (const uint8_t *)(p + 1);
    p->len = sizeof RESULT_DOC - 1;
    p->drop_fn = free_payload;
    f->sent++;
    return p;
}

static int run_results(const char *path, int64_t n) {
    Plugin p = load(path);
    if (!p.reg.reaction_plugin_count) die("the plugin has no reaction factory");
    ReactionPluginVtable *f = &p.reg.reaction_plugins[0];
    ReactionVtable *vt =
        f->create_reaction_fn(f->state, s_("bench-reaction"), s_("[\"q1\"]"), s_("{}"), false);
    if (!vt) die("create_reaction_fn returned NULL");
    ReactionVtable rc = *vt;
    free(vt);
    FfiRuntimeContext ctx = context("bench-reaction", NULL);
    rc.initialize_fn(rc.state, &ctx);
    Feed feed = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, n, 0, false};
    rc.start_result_push_fn(rc.state, next_result, &feed);
    double t0 = now_s();
    FfiResult r = rc.start_fn(rc.state);
    if (r.error_code) die(r.error_msg ? r.error_msg : "start_fn failed");
    pthread_mutex_lock(&feed.lock);
    while (!feed.done) pthread_cond_wait(&feed.cond, &feed.lock);
    pthread_mutex_unlock(&feed.lock);
    double secs = now_s() - t0;
    r = rc.stop_fn(rc.state);
    free(r.error_msg);
    rc.drop_fn(rc.state);
    void (*summary)(int64_t *, int64_t *, uint64_t *);
    *(void **)&summary = dlsym(p.lib, "drasi_fixture_reaction_summary");
    if (summary) {
        int64_t count = 0, bytes = 0;
        uint64_t fnv = 0;
        summary(&count, &bytes, &fnv);
        if (count != n) die("the reaction's summary disagrees with the number of results sent");
    }
    unload(&p);
    printf("results=%" PRId64 " seconds=%.6f rate=%.0f\n", feed.sent, secs,
           secs > 0 ? (double)feed.sent / secs : 0.0);
    return 0;
}

/* ---- store ------------------------------------------------------------------ */

static double json_number(const char *doc, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *at = strstr(doc, pat);
    if (!at) die("the services report lacks a field");
    return strtod(at + strlen(pat), NULL);
}

static int run_store(const char *path, int64_t n) {
    Plugin p = load(path);
    if (!p.reg.source_plugin_count) die("the plugin has no source factory");
    SourcePluginVtable *f = &p.reg.source_plugins[0];
    char cfg[64];
    snprintf(cfg, sizeof cfg, "{\"ops\": %" PRId64 "}", n);
    SourceVtable *vt = f->create_source_fn(f->state, s_("bench-store"), s_(cfg), false);
    if (!vt) die("create_source_fn returned NULL (is this the services plugin?)");
    SourceVtable src = *vt;
    free(vt);
    MiniStore ms;
    ms_init(&ms);
    StateStoreVtable store = ms_vtable(&ms);
    FfiRuntimeContext ctx = context("bench-store", &store);
    src.initialize_fn(src.state, &ctx);
    FfiResult r = src.start_fn(src.state);
    if (r.error_code) die(r.error_msg ? r.error_msg : "start_fn failed");
    r = src.stop_fn(src.state); /* joins the worker */
    free(r.error_msg);
    src.drop_fn(src.state);
    unload(&p);
    char *report = ms_get(&ms, "bench-store", "report", NULL);
    if (!report) die("the services plugin wrote no report");
    double ops = json_number(report, "ops");
    double secs = json_number(report, "seconds");
    if (json_number(report, "mismatches") != 0 || json_number(report, "failures") != 0)
        die("the services plugin reported store errors");
    printf("ops=%.0f seconds=%.6f rate=%.0f\n", ops, secs, secs > 0 ? ops / secs : 0.0);
    free(report);
    ms_destroy(&ms);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s events|results|store PLUGIN [N]\n", argv[0]);
        return 2;
    }
    int64_t n = argc > 3 ? strtoll(argv[3], NULL, 10) : 1000000;
    if (n < 0) die("N must be >= 0");
    if (strcmp(argv[1], "events") == 0) return run_events(argv[2], n);
    if (strcmp(argv[1], "results") == 0) return run_results(argv[2], n);
    if (strcmp(argv[1], "store") == 0) return run_store(argv[2], n);
    fprintf(stderr, "unknown mode %s\n", argv[1]);
    return 2;
}
