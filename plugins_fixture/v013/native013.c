/*
 * native013.c - the native baseline of bench/bench_abi013.py: a host written
 * in C that consumes an FFI 0.13 source plugin's events on the plugin's own
 * push thread, with no Python and no channel.
 *
 * Usage: native013 PLUGIN N [CONFIG_EXTRA]
 *
 * PLUGIN is loaded as a 0.13 host loads it (metadata checked for 0.13.*,
 * init, log and lifecycle callbacks, set_log_level(Warn), registration
 * freed); its first source factory creates a source with
 * {"count": N CONFIG_EXTRA} (e.g. CONFIG_EXTRA = ', "alloc": "rustlike"'),
 * which is initialised (no state store, no identity), started and
 * subscribed without bootstrap.  The push callback does, per event, what the
 * host must do at the least: reject a payload over MAX_FFI_PAYLOAD_BYTES
 * unread, copy the payload bytes, read the routing fields from the
 * MessagePack (source id, first label, element id; a minimal reader on
 * mpack.c), call payload_drop_fn once and free() the envelope.  The time runs
 * from start_push_fn to the end-of-stream call.  Output (one line):
 *   events=<n> bytes=<payload bytes> routed=<events with an element id> seconds=<s> rate=<events/s>
 * Exit status 0 on success, 1 on failure (message on stderr).
 */
#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drasi_plugin_0_13.h"
#include "mpack.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static FfiStr s_(const char *s)
{
    FfiStr r = {s, strlen(s)};
    return r;
}

static void die(const char *msg)
{
    fprintf(stderr, "native013: %s\n", msg);
    exit(1);
}

static void on_log(void *ctx, const FfiLogEntry *entry) { (void)ctx, (void)entry; }
static void on_lifecycle(void *ctx, const FfiLifecycleEvent *event) { (void)ctx, (void)event; }

/* ---- routing fields ---- */

typedef struct Route {
    const char *source_id, *label, *element_id;
    uint32_t source_id_len, label_len, element_id_len;
} Route;

/* ElementReference: {"source_id": str, "element_id": str} */
static int read_reference(Mpr *r, Route *out)
{
    uint32_t n, kn;
    const char *k;
    if (mpr_map(r, &n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        if (mpr_str(r, &k, &kn))
            return -1;
        if (mpr_key_is(k, kn, "element_id")) {
            if (mpr_str(r, &out->element_id, &out->element_id_len))
                return -1;
        } else if (mpr_skip(r)) {
            return -1;
        }
    }
    return 0;
}

/* ElementMetadata: {"reference": ..., "labels": [str], "effective_from": u64} */
static int read_metadata(Mpr *r, Route *out)
{
    uint32_t n, kn, m;
    const char *k;
    if (mpr_map(r, &n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        if (mpr_str(r, &k, &kn))
            return -1;
        if (mpr_key_is(k, kn, "reference")) {
            if (read_reference(r, out))
                return -1;
        } else if (mpr_key_is(k, kn, "labels")) {
            if (mpr_array(r, &m))
                return -1;
            for (uint32_t j = 0; j < m; j++) {
                if (j == 0 ? mpr_str(r, &out->label, &out->label_len) : mpr_skip(r))
                    return -1;
            }
        } else if (mpr_skip(r)) {
            return -1;
        }
    }
    return 0;
}

/* The map of a struct variant's fields: the "metadata" field is read, the
 * rest skipped. */
static int read_fields(Mpr *r, Route *out)
{
    uint32_t n, kn;
    const char *k;
    if (mpr_map(r, &n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        if (mpr_str(r, &k, &kn))
            return -1;
        if (mpr_key_is(k, kn, "metadata")) {
            if (read_metadata(r, out))
                return -1;
        } else if (mpr_key_is(k, kn, "element")) {
            uint32_t one, vn;
            const char *v;
            /* Element = {"Node": {...}} | {"Relation": {...}} */
            if (mpr_map(r, &one) || one != 1 || mpr_str(r, &v, &vn) || read_fields(r, out))
                return -1;
        } else if (mpr_skip(r)) {
            return -1;
        }
    }
    return 0;
}

/* SourceEventPayload: source_id, and for a change the element's first label
 * and element id; a control event routes by source id only. */
static int read_route(const uint8_t *p, size_t len, Route *out)
{
    Mpr r = {p, p + len};
    uint32_t n, kn, one;
    const char *k;
    memset(out, 0, sizeof *out);
    if (mpr_map(&r, &n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        if (mpr_str(&r, &k, &kn))
            return -1;
        if (mpr_key_is(k, kn, "source_id")) {
            if (mpr_str(&r, &out->source_id, &out->source_id_len))
                return -1;
        } else if (mpr_key_is(k, kn, "event")) {
            /* {"Change": {"Insert"|"Update"|"Delete"|"Future": {...}}} | {"Control": ...} */
            if (mpr_map(&r, &one) || one != 1 || mpr_str(&r, &k, &kn))
                return -1;
            if (!mpr_key_is(k, kn, "Change")) {
                if (mpr_skip(&r))
                    return -1;
                continue;
            }
            if (mpr_map(&r, &one) || one != 1 || mpr_str(&r, &k, &kn))
                return -1;
            if (mpr_key_is(k, kn, "Future") ? mpr_skip(&r) : read_fields(&r, out))
                return -1;
        } else if (mpr_skip(&r)) {
            return -1;
        }
    }
    return r.p == r.end ? 0 : -1;
}

/* ---- the push callback ---- */

typedef struct Sink {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int64_t events, routed, bad;
    uint64_t bytes, check;
    uint8_t scratch[65536];
} Sink;

static bool on_event(void *ctx, FfiSourceEvent *ev)
{
    Sink *s = ctx;
    if (ev == NULL) {
        pthread_mutex_lock(&s->lock);
        s->done = true;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
        return false;
    }
    size_t n = ev->payload_len;
    if (ev->payload_ptr != NULL && n > 0 && n <= DRASI_MAX_FFI_PAYLOAD_BYTES) {
        /* the host copies the bytes into its channel; a real copy per event */
        uint8_t *copy = n <= sizeof s->scratch ? s->scratch : malloc(n);
        if (copy == NULL)
            die("out of memory");
        memcpy(copy, ev->payload_ptr, n);
        Route route;
        if (read_route(copy, n, &route) == 0) {
            s->check += route.source_id_len + route.label_len + route.element_id_len
                        + (route.label_len ? (uint8_t)route.label[0] : 0);
            s->routed += route.element_id_len > 0;
        } else {
            s->bad++;
        }
        if (copy != s->scratch)
            free(copy);
        s->bytes += n;
    }
    if (ev->payload_ptr != NULL && ev->payload_drop_fn != NULL)
        ev->payload_drop_fn((uint8_t *)ev->payload_ptr, ev->payload_len);
    s->check += (uint64_t)ev->op;
    free(ev);
    s->events++;
    return true;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s PLUGIN N [CONFIG_EXTRA]\n", argv[0]);
        return 2;
    }
    int64_t n = strtoll(argv[2], NULL, 10);
    if (n < 0)
        die("N must be >= 0");
    const char *extra = argc > 3 ? argv[3] : "";
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL)
        die(dlerror());
    DrasiPluginMetadataFn meta;
    DrasiPluginInitFn init;
    *(void **)&meta = dlsym(lib, "drasi_plugin_metadata");
    *(void **)&init = dlsym(lib, "drasi_plugin_init");
    if (meta == NULL || init == NULL)
        die("no drasi_plugin_metadata / drasi_plugin_init export");
    const PluginMetadata *md = meta();
    if (md == NULL || md->sdk_version.len < 5 || memcmp(md->sdk_version.ptr, "0.13.", 5) != 0)
        die("not an FFI 0.13 plugin");
    FfiPluginRegistration *block = init();
    if (block == NULL)
        die("drasi_plugin_init returned NULL");
    FfiPluginRegistration reg = *block;
    free(block);
    reg.set_log_callback(NULL, on_log);
    reg.set_lifecycle_callback(NULL, on_lifecycle);
    if (reg.set_log_level != NULL)
        reg.set_log_level(FFI_LOG_FILTER_WARN); /* the host's default */
    if (reg.source_plugin_count == 0)
        die("no source factory");
    SourcePluginVtable *f = &reg.source_plugins[0];

    char cfg[256];
    snprintf(cfg, sizeof cfg, "{\"count\": %" PRId64 "%s}", n, extra);
    FfiCreateResult cr = f->create_source_fn(f->state, s_("bench-native"), s_(cfg), false);
    if (cr.error_code != 0 || cr.ptr == NULL) {
        fprintf(stderr, "native013: create_source_fn: %s\n",
                cr.error_msg ? cr.error_msg : "null source");
        return 1;
    }
    SourceVtable vt = *(SourceVtable *)cr.ptr;
    free(cr.ptr);

    FfiRuntimeContext ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.instance_id = s_("bench");
    ctx.component_id = s_("bench-native");
    ctx.log_callback = on_log;
    ctx.lifecycle_callback = on_lifecycle;
    vt.initialize_fn(vt.state, &ctx);
    FfiResult r = vt.start_fn(vt.state);
    if (r.error_code != 0)
        die("start_fn failed");
    free(r.error_msg);
    FfiSubscriptionResponse *resp = vt.subscribe_fn(vt.state, s_("bench-native"), false, s_("q"),
                                                    s_("[]"), s_("[]"), NULL, 0, false);
    if (resp == NULL || resp->receiver == NULL)
        die("subscribe_fn failed");
    FfiChangeReceiver rx = *resp->receiver;
    free(resp->receiver);
    if (resp->query_id.cap)
        free(resp->query_id.ptr);
    if (resp->source_id.cap)
        free(resp->source_id.ptr);
    free(resp);

    Sink *sink = calloc(1, sizeof *sink);
    if (sink == NULL)
        die("out of memory");
    pthread_mutex_init(&sink->lock, NULL);
    pthread_cond_init(&sink->cond, NULL);
    double t0 = now_s();
    rx.start_push_fn(rx.state, on_event, sink);
    pthread_mutex_lock(&sink->lock);
    while (!sink->done)
        pthread_cond_wait(&sink->cond, &sink->lock);
    pthread_mutex_unlock(&sink->lock);
    double secs = now_s() - t0;
    rx.drop_fn(rx.state);
    r = vt.stop_fn(vt.state);
    free(r.error_msg);
    vt.drop_fn(vt.state);
    for (size_t i = 0; i < reg.source_plugin_count; i++)
        reg.source_plugins[i].drop_fn(reg.source_plugins[i].state);
    if (sink->events != n)
        die("event count mismatch");
    if (sink->bad != 0)
        die("undecodable routing fields");
    printf("events=%" PRId64 " bytes=%" PRIu64 " routed=%" PRId64 " check=%" PRIu64
           " seconds=%.6f rate=%.0f\n",
           sink->events, sink->bytes, sink->routed, sink->check, secs,
           secs > 0 ? (double)n / secs : 0.0);
    free(sink);
    return 0;
}
