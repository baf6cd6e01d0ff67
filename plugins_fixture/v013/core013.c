/* core013.c - metadata, registration, logging, threads and counters of the
 * FFI 0.13 fixture libraries (see fx013.h). */
#define _POSIX_C_SOURCE 200809L
#include "fx013.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

_Atomic int64_t fx13_stats[sizeof(DrasiFixture013Stats) / sizeof(int64_t)];

void drasi_fixture013_stats(DrasiFixture013Stats *out)
{
    int64_t *dst = (int64_t *)out;
    for (size_t i = 0; i < sizeof(DrasiFixture013Stats) / sizeof(int64_t); i++)
        dst[i] = atomic_load(&fx13_stats[i]);
}

void drasi_fixture013_reset_stats(void)
{
    int64_t level = FX13_GET(log_level);
    for (size_t i = 0; i < sizeof(DrasiFixture013Stats) / sizeof(int64_t); i++)
        atomic_store(&fx13_stats[i], 0);
    FX13_SET(log_level, level);
}

/* ---- strings and results ---- */

FfiStr fx13_str(const char *s)
{
    FfiStr out = {s, strlen(s)};
    return out;
}

char *fx13_strndup(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (out != NULL) {
        if (n > 0)
            memcpy(out, s, n);
        out[n] = '\0';
    }
    return out;
}

char *fx13_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *out = malloc((size_t)n + 1);
    if (out == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(out, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return out;
}

FfiOwnedStr fx13_owned(const char *s)
{
    FfiOwnedStr out = {(char *)"", 0, 0};
    size_t n = strlen(s);
    if (n == 0)
        return out;
    out.ptr = fx13_strndup(s, n);
    if (out.ptr == NULL) {
        out.ptr = (char *)"";
        return out;
    }
    out.len = n;
    out.cap = n + 1;
    return out;
}

FfiResult fx13_ok(void)
{
    FfiResult r = {0, NULL};
    return r;
}

FfiResult fx13_err(const char *msg)
{
    FfiResult r = {1, fx13_strndup(msg, strlen(msg))};
    return r;
}

FfiCreateResult fx13_created(void *ptr)
{
    FfiCreateResult r = {ptr, DRASI_CREATE_OK, NULL};
    return r;
}

FfiCreateResult fx13_create_error(const char *fmt, const char *detail)
{
    FfiCreateResult r = {NULL, DRASI_CREATE_ERROR, fx13_printf(fmt, detail)};
    return r;
}

/* ---- config ---- */

static const char *fx13_cfg_find(FfiStr json, const char *key)
{
    size_t klen = strlen(key);
    if (json.ptr == NULL)
        return NULL;
    for (size_t i = 0; i + klen + 2 <= json.len; i++) {
        if (json.ptr[i] == '"' && memcmp(json.ptr + i + 1, key, klen) == 0
            && json.ptr[i + 1 + klen] == '"') {
            size_t j = i + klen + 2;
            while (j < json.len && (json.ptr[j] == ' ' || json.ptr[j] == ':'))
                j++;
            return j < json.len ? json.ptr + j : NULL;
        }
    }
    return NULL;
}

int64_t fx13_cfg_int(FfiStr json, const char *key, int64_t fallback)
{
    const char *p = fx13_cfg_find(json, key);
    const char *end = json.ptr + json.len;
    if (p == NULL || !((*p >= '0' && *p <= '9') || *p == '-'))
        return fallback;
    int sign = 1;
    int64_t v = 0;
    if (*p == '-') {
        sign = -1;
        p++;
    }
    while (p < end && *p >= '0' && *p <= '9' && v < INT64_MAX / 10)
        v = v * 10 + (*p++ - '0');
    return sign * v;
}

bool fx13_cfg_str(FfiStr json, const char *key, char *out, size_t cap)
{
    const char *p = fx13_cfg_find(json, key);
    const char *end = json.ptr + json.len;
    size_t n = 0;
    if (p == NULL || *p != '"' || cap == 0)
        return false;
    for (p++; p < end && *p != '"' && n + 1 < cap; p++)
        out[n++] = *p;
    out[n] = '\0';
    return true;
}

/* ---- logging, lifecycle, resolver ---- */

static pthread_mutex_t fx13_lock = PTHREAD_MUTEX_INITIALIZER;
static LogCallbackFn fx13_log_cb;
static void *fx13_log_ctx;
static LifecycleCallbackFn fx13_lc_cb;
static void *fx13_lc_ctx;
static ConfigResolverFn fx13_resolver_cb;
static const void *fx13_resolver_ctx;
static _Atomic int fx13_level = FFI_LOG_FILTER_TRACE;

static int64_t fx13_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void fx13_log(FfiLogLevel level, const char *component, const char *message)
{
    if ((int)level + 1 > atomic_load(&fx13_level)) {
        FX13_ADD(logs_filtered, 1);
        return;
    }
    pthread_mutex_lock(&fx13_lock);
    LogCallbackFn cb = fx13_log_cb;
    void *ctx = fx13_log_ctx;
    pthread_mutex_unlock(&fx13_lock);
    if (cb == NULL)
        return;
    FfiLogEntry entry = {level, fx13_str(FX13_PREFIX), fx13_str("fixture013"),
                         fx13_str(message), fx13_now_us(), fx13_str(""), fx13_str(component)};
    cb(ctx, &entry);
    FX13_ADD(logs_emitted, 1);
}

void fx13_lifecycle(const Fx13Callbacks *cbs, const char *id, const char *type,
                    FfiLifecycleEventType ev)
{
    LifecycleCallbackFn cb = cbs->lifecycle;
    void *ctx = cbs->lifecycle_ctx;
    if (cb == NULL) {
        pthread_mutex_lock(&fx13_lock);
        cb = fx13_lc_cb;
        ctx = fx13_lc_ctx;
        pthread_mutex_unlock(&fx13_lock);
    }
    if (cb == NULL)
        return;
    FfiLifecycleEvent event = {fx13_str(id), fx13_str(type), ev, fx13_str(""), fx13_now_us()};
    cb(ctx, &event);
    FX13_ADD(lifecycle_calls, 1);
}

void fx13_resolver(ConfigResolverFn *cb, const void **ctx)
{
    pthread_mutex_lock(&fx13_lock);
    *cb = fx13_resolver_cb;
    *ctx = fx13_resolver_ctx;
    pthread_mutex_unlock(&fx13_lock);
}

static void fx13_set_log_callback(void *ctx, LogCallbackFn cb)
{
    pthread_mutex_lock(&fx13_lock);
    fx13_log_cb = cb;
    fx13_log_ctx = ctx;
    pthread_mutex_unlock(&fx13_lock);
}

static void fx13_set_lifecycle_callback(void *ctx, LifecycleCallbackFn cb)
{
    pthread_mutex_lock(&fx13_lock);
    fx13_lc_cb = cb;
    fx13_lc_ctx = ctx;
    pthread_mutex_unlock(&fx13_lock);
}

static void fx13_set_config_resolver(void *ctx, ConfigResolverFn cb)
{
    pthread_mutex_lock(&fx13_lock);
    fx13_resolver_cb = cb;
    fx13_resolver_ctx = ctx;
    pthread_mutex_unlock(&fx13_lock);
}

static void fx13_set_log_level(FfiLogLevelFilter level)
{
    atomic_store(&fx13_level, (int)level);
    FX13_SET(log_level, (int64_t)level);
}

void fx13_payload_drop(uint8_t *ptr, size_t len)
{
    (void)len;
    free(ptr);
    FX13_ADD(payloads_released, 1);
}

/* ---- threads ---- */

typedef struct Fx13Thread {
    pthread_t thread;
    struct Fx13Thread *next;
} Fx13Thread;

typedef struct Fx13Start {
    void *(*fn)(void *);
    void *arg;
} Fx13Start;

static Fx13Thread *fx13_threads;

static void *fx13_thread_main(void *raw)
{
    Fx13Start start = *(Fx13Start *)raw;
    free(raw);
    void *out = start.fn(start.arg);
    FX13_ADD(threads_finished, 1);
    return out;
}

bool fx13_spawn(void *(*fn)(void *), void *arg)
{
    Fx13Thread *t = malloc(sizeof *t);
    Fx13Start *start = malloc(sizeof *start);
    if (t == NULL || start == NULL) {
        free(t);
        free(start);
        return false;
    }
    start->fn = fn;
    start->arg = arg;
    pthread_mutex_lock(&fx13_lock);
    if (pthread_create(&t->thread, NULL, fx13_thread_main, start) != 0) {
        pthread_mutex_unlock(&fx13_lock);
        free(t);
        free(start);
        return false;
    }
    t->next = fx13_threads;
    fx13_threads = t;
    FX13_ADD(threads_started, 1);
    pthread_mutex_unlock(&fx13_lock);
    return true;
}

void drasi_fixture013_join_threads(void)
{
    for (;;) {
        pthread_mutex_lock(&fx13_lock);
        Fx13Thread *list = fx13_threads;
        fx13_threads = NULL;
        pthread_mutex_unlock(&fx13_lock);
        if (list == NULL)
            return;
        while (list != NULL) {
            Fx13Thread *next = list->next;
            pthread_join(list->thread, NULL);
            free(list);
            list = next;
        }
    }
}

/* ---- metadata and registration ---- */

static const PluginMetadata fx13_metadata = {
    {FX13_SDK_VERSION, sizeof(FX13_SDK_VERSION) - 1},
    {"0.4.0", 5},
    {"0.11.0", 6},
    {"0.1.0", 5},
#if defined(__x86_64__) && defined(__linux__)
    {"x86_64-unknown-linux-gnu", 24},
#elif defined(__aarch64__) && defined(__linux__)
    {"aarch64-unknown-linux-gnu", 25},
#elif defined(__aarch64__) && defined(__APPLE__)
    {"aarch64-apple-darwin", 20},
#elif defined(__x86_64__) && defined(__APPLE__)
    {"x86_64-apple-darwin", 19},
#else
    {"unknown", 7},
#endif
    {"", 0},
    {"", 0},
};

const PluginMetadata *drasi_plugin_metadata(void) { return &fx13_metadata; }

void drasi_plugin_shutdown(void) { abort(); /* a host must never call it */ }

#define FX13_ARRAY(type, fn, enabled, ptr, count)                                  \
    do {                                                                           \
        if (enabled) {                                                             \
            (ptr) = calloc(1, sizeof(type));                                       \
            if ((ptr) == NULL)                                                     \
                goto oom;                                                          \
            fn(ptr);                                                               \
            (count) = 1;                                                           \
        } else {                                                                   \
            (ptr) = (type *)(uintptr_t)8; /* an empty Rust Vec: dangling */        \
            (count) = 0;                                                           \
        }                                                                          \
    } while (0)

/* Weak stubs: the file of each kind linked into the library overrides its
 * own; only the kinds flagged FX13_WITH_* are registered. */
#define FX13_STUB(fn, type) \
    __attribute__((weak)) void fn(type *vt) { (void)vt; }
FX13_STUB(fx13_source_factory, SourcePluginVtable)
FX13_STUB(fx13_reaction_factory, ReactionPluginVtable)
FX13_STUB(fx13_bootstrap_factory, BootstrapPluginVtable)
FX13_STUB(fx13_identity_factory, IdentityProviderPluginVtable)
FX13_STUB(fx13_secrets_factory, SecretStorePluginVtable)

#ifndef FX13_WITH_SOURCE
#define FX13_WITH_SOURCE 0
#endif
#ifndef FX13_WITH_REACTION
#define FX13_WITH_REACTION 0
#endif
#ifndef FX13_WITH_BOOTSTRAP
#define FX13_WITH_BOOTSTRAP 0
#endif
#ifndef FX13_WITH_IDENTITY
#define FX13_WITH_IDENTITY 0
#endif
#ifndef FX13_WITH_SECRETS
#define FX13_WITH_SECRETS 0
#endif

FfiPluginRegistration *drasi_plugin_init(void)
{
    FfiPluginRegistration *reg = calloc(1, sizeof *reg);
    if (reg == NULL)
        return NULL;
    FX13_ARRAY(SourcePluginVtable, fx13_source_factory, FX13_WITH_SOURCE, reg->source_plugins,
               reg->source_plugin_count);
    FX13_ARRAY(ReactionPluginVtable, fx13_reaction_factory, FX13_WITH_REACTION,
               reg->reaction_plugins, reg->reaction_plugin_count);
    FX13_ARRAY(BootstrapPluginVtable, fx13_bootstrap_factory, FX13_WITH_BOOTSTRAP,
               reg->bootstrap_plugins, reg->bootstrap_plugin_count);
    FX13_ARRAY(IdentityProviderPluginVtable, fx13_identity_factory, FX13_WITH_IDENTITY,
               reg->identity_provider_plugins, reg->identity_provider_plugin_count);
    FX13_ARRAY(SecretStorePluginVtable, fx13_secrets_factory, FX13_WITH_SECRETS,
               reg->secret_store_plugins, reg->secret_store_plugin_count);
    reg->set_log_callback = fx13_set_log_callback;
    reg->set_lifecycle_callback = fx13_set_lifecycle_callback;
    reg->set_config_resolver = fx13_set_config_resolver;
    reg->set_log_level = fx13_set_log_level;
    if (FX13_GET(log_level) == 0 && atomic_load(&fx13_level) == FFI_LOG_FILTER_TRACE)
        FX13_SET(log_level, -1);
    return reg;
oom:
    if (reg->source_plugin_count)
        free(reg->source_plugins);
    if (reg->reaction_plugin_count)
        free(reg->reaction_plugins);
    if (reg->bootstrap_plugin_count)
        free(reg->bootstrap_plugins);
    if (reg->identity_provider_plugin_count)
        free(reg->identity_provider_plugins);
    free(reg);
    return NULL;
}
