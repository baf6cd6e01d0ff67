/*
 * chan_native.c - the native baseline of the channel benchmarks: a host
 * written in C that consumes a source plugin's events on the plugin's own
 * thread, with no Python and no channel.
 *
 * Usage: chan_native PLUGIN N [SLOW_US]
 *
 * The first source factory of PLUGIN creates a source with
 * {"event_count": N}; it is subscribed without bootstrap and the push
 * callback, called on the plugin's thread, reads each event's routing hints
 * and copies its payload bytes (what any consumer has to look at), then
 * releases the event (drop_fn(opaque), free(envelope)).  The time runs from
 * start_push_fn to the end-of-stream call.  Output (one line):
 *   events=<n> bytes=<payload bytes> seconds=<s> rate=<events/s>
 * Exit status 0 on success, 1 on failure (message on stderr).
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

#define NATIVE_HOST_NAME "chan_native"
#include "native_host.h"

typedef struct Sink {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int64_t events;
    uint64_t bytes;
    uint64_t check;
    uint8_t scratch[65536];
} Sink;

static bool on_event(void *ctx, FfiSourceEvent *ev) {
    Sink *s = ctx;
    if (!ev) {
        pthread_mutex_lock(&s->lock);
        s->done = true;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
        return false;
    }
    const DrasiPayload *p = ev->opaque;
    size_t n = p && p->len <= sizeof s->scratch ? p->len : 0;
    if (n) memcpy(s->scratch, p->data, n);
    s->bytes += n;
    s->check += ev->source_id.len + ev->label.len + ev->entity_id.len + (uint64_t)ev->op +
                (n ? s->scratch[n - 1] : 0);
    ev->drop_fn(ev->opaque);
    free(ev);
    s->events++;
    return true;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s PLUGIN N\n", argv[0]);
        return 2;
    }
    int64_t n = strtoll(argv[2], NULL, 10);
    if (n < 0) die("N must be >= 0");
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) die(dlerror());
    DrasiPluginInitFn init;
    *(void **)&init = dlsym(lib, "drasi_plugin_init");
    if (!init) die("no drasi_plugin_init export");
    FfiPluginRegistration *reg = init();
    if (!reg || !reg->source_plugin_count) die("no source factory");
    SourcePluginVtable *f = &reg->source_plugins[0];
    char cfg[64];
    snprintf(cfg, sizeof cfg, "{\"event_count\": %" PRId64 "}", n);
    SourceVtable *vt = f->create_source_fn(f->state, s_("bench-native"), s_(cfg), false);
    if (!vt) die("create_source_fn returned NULL");
    FfiResult r = vt->start_fn(vt->state);
    if (r.error_code) die("start_fn failed");
    FfiSubscriptionResponse *resp =
        vt->subscribe_fn(vt->state, s_("bench-native"), false, s_("q"), s_("[]"), s_("[]"));
    if (!resp || !resp->receiver) die("subscribe_fn failed");
    FfiChangeReceiver rx = *resp->receiver;
    free(resp->receiver);
    if (resp->query_id.cap) free(resp->query_id.ptr);
    if (resp->source_id.cap) free(resp->source_id.ptr);
    free(resp);

    Sink *sink = calloc(1, sizeof *sink);
    if (!sink) die("out of memory");
    pthread_mutex_init(&sink->lock, NULL);
    pthread_cond_init(&sink->cond, NULL);
    double t0 = now_s();
    rx.start_push_fn(rx.state, on_event, sink);
    pthread_mutex_lock(&sink->lock);
    while (!sink->done) pthread_cond_wait(&sink->cond, &sink->lock);
    pthread_mutex_unlock(&sink->lock);
    double secs = now_s() - t0;
    rx.drop_fn(rx.state);
    r = vt->stop_fn(vt->state);
    free(r.error_msg);
    vt->drop_fn(vt->state);
    free(vt);
    if (sink->events != n) die("event count mismatch");
    printf("events=%" PRId64 " bytes=%" PRIu64 " check=%" PRIu64 " seconds=%.6f rate=%.0f\n",
           sink->events, sink->bytes, sink->check, secs, secs > 0 ? (double)n / secs : 0.0);
    free(sink);
    return 0;
}
