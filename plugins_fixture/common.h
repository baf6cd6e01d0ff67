/*
 * common.h - shared helpers of the fixture plugins.
 *
 * Every fixture source file includes this header first.  It pulls in the
 * system headers the fixtures use, the plugin ABI and the stats block, and
 * then hides every further declaration: each library gets its own private
 * copy of the helpers and globals (log callbacks, stats), even when several
 * fixture libraries are loaded into one process.  Only symbols marked
 * FX_EXPORT leave a library.
 *
 * Contents: FfiStr / owned string helpers, a growable byte buffer with JSON
 * string escaping, a small JSON reader (enough for flat configuration
 * objects and string arrays, tolerant of any valid JSON), clocks, the stats
 * counters, the plugin-wide log/lifecycle callbacks and a per-instance copy
 * of the FfiRuntimeContext.
 */
#ifndef FX_COMMON_H
#define FX_COMMON_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drasi_plugin.h"
#include "fixture_stats.h"

#define FX_EXPORT __attribute__((visibility("default")))

#pragma GCC visibility push(hidden)

/* ---- build identity ------------------------------------------------------ */

#if defined(__x86_64__) || defined(_M_X64)
#define FX_ARCH "x86_64"
#elif defined(__aarch64__) || defined(__arm64__)
#define FX_ARCH "aarch64"
#else
#error "unsupported architecture for the fixture plugins"
#endif

#if defined(__APPLE__)
#define FX_HOST_TRIPLE FX_ARCH "-apple-darwin"
#elif defined(__linux__)
#define FX_HOST_TRIPLE FX_ARCH "-unknown-linux-gnu"
#else
#error "unsupported operating system for the fixture plugins"
#endif

/* Dangling, non-NULL pointers used for empty owned buffers (cap == 0). */
#define FX_DANGLING_1 ((void *)(uintptr_t)1)
#define FX_DANGLING_8 ((void *)(uintptr_t)8)

/* ---- memory and strings -------------------------------------------------- */

void *fx_xmalloc(size_t n);
void *fx_xcalloc(size_t n, size_t size);
void *fx_xrealloc(void *p, size_t n);
char *fx_strndup(const char *p, size_t n); /* NUL-terminated copy; p may dangle when n == 0 */
char *fx_strdup(const char *s);
FfiStr fx_str(const char *s);
FfiStr fx_strn(const char *p, size_t n);
FfiOwnedStr fx_owned(const char *p, size_t n); /* malloc'd, cap = n + 1 > 0 */
bool fx_str_eq(FfiStr a, const char *lit);
bool fx_str_starts(FfiStr a, const char *prefix);
char *fx_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
FfiResult fx_ok(void);
FfiResult fx_err(int32_t code, const char *msg); /* msg copied with malloc; NULL stays NULL */

/* ---- byte buffer ---------------------------------------------------------- */

typedef struct FxBuf {
    char *p;
    size_t len;
    size_t cap;
} FxBuf;

void fx_buf_put(FxBuf *b, const void *data, size_t n);
void fx_buf_puts(FxBuf *b, const char *s);
void fx_buf_printf(FxBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fx_buf_json_str(FxBuf *b, const char *s, size_t n); /* quoted, escaped JSON string */
char *fx_buf_cstr(FxBuf *b);                             /* NUL-terminated view */
void fx_buf_free(FxBuf *b);

/* ---- JSON reader ---------------------------------------------------------- */

typedef enum FxJsonType {
    FXJ_NULL,
    FXJ_BOOL,
    FXJ_NUMBER,
    FXJ_STRING,
    FXJ_ARRAY,
    FXJ_OBJECT
} FxJsonType;

typedef struct FxJson {
    FxJsonType type;
    bool b;
    bool is_int; /* number written without fraction/exponent and fits int64 */
    int64_t i;
    double d;
    char *s; /* string value (NUL-terminated, may contain NULs) */
    size_t slen;
    struct FxJson *items; /* array elements or object values */
    char **keys;          /* object keys (NUL-terminated) */
    size_t *key_lens;
    size_t n;
} FxJson;

/* Parses a whole document; NULL with a message in err on failure. */
FxJson *fx_json_parse(const char *p, size_t n, char *err, size_t errlen);
void fx_json_free(FxJson *v);
const FxJson *fx_json_get(const FxJson *obj, const char *key);

/* Configuration objects: an empty text or `null` is an empty object. */
FxJson *fx_config_parse(FfiStr json, char *err, size_t errlen);
bool fx_cfg_int(const FxJson *cfg, const char *key, int64_t def, int64_t min, int64_t *out,
                char *err, size_t errlen);
bool fx_cfg_bool(const FxJson *cfg, const char *key, bool def, bool *out, char *err, size_t errlen);
/* *out is malloc'd (NUL-terminated), *len its length. */
bool fx_cfg_str(const FxJson *cfg, const char *key, const char *def, char **out, size_t *len,
                char *err, size_t errlen);

typedef struct FxStrList {
    char **items;
    size_t *lens;
    size_t n;
} FxStrList;

/* A JSON array of strings; an empty text or `null` gives an empty list. */
bool fx_str_list_parse(FfiStr json, FxStrList *out, char *err, size_t errlen);
void fx_str_list_free(FxStrList *l);

/* ---- clocks --------------------------------------------------------------- */

int64_t fx_now_us(void);   /* wall clock, microseconds since the Unix epoch */
double fx_mono_s(void);    /* monotonic seconds */
void fx_sleep_us(int64_t us);
void fx_deadline(struct timespec *ts, int64_t us_from_now); /* CLOCK_REALTIME */

/* ---- stats ---------------------------------------------------------------- */

extern DrasiFixtureStats fx_stats;
#define FX_STAT(field) ((void)__atomic_add_fetch(&fx_stats.field, 1, __ATOMIC_SEQ_CST))
#define FX_STAT_ADD(field, n) \
    ((void)__atomic_add_fetch(&fx_stats.field, (int64_t)(n), __ATOMIC_SEQ_CST))

/* ---- plugin-wide callbacks ------------------------------------------------ */

void fx_set_log_callback(void *ctx, LogCallbackFn cb);
void fx_set_lifecycle_callback(void *ctx, LifecycleCallbackFn cb);
bool fx_callbacks_ready(void); /* both callbacks registered */
void fx_global_log(FfiLogLevel level, const char *plugin_id, const char *target, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));
void fx_global_lifecycle(const char *component_id, const char *component_type,
                         FfiLifecycleEventType type, const char *message);
const char *fx_plugin_name(void); /* the library's name, used as plugin_id before a kind is known */

/* ---- per-instance runtime context ----------------------------------------- */

typedef struct FxRuntime {
    pthread_mutex_t lock;
    const char *plugin_id;      /* the kind */
    const char *target;         /* e.g. "fixture::source" */
    const char *component_type; /* "source" / "reaction" / "bootstrap" */
    char *instance_id;          /* "" until initialize */
    char *component_id;         /* the component's id until initialize */
    bool initialized;
    bool has_store;
    StateStoreVtable store;
    bool has_identity;
    IdentityProviderVtable identity;
    LogCallbackFn log_cb;
    void *log_ctx;
    LifecycleCallbackFn lc_cb;
    void *lc_ctx;
} FxRuntime;

void fx_runtime_init(FxRuntime *rt, const char *plugin_id, const char *target,
                     const char *component_type, const char *component_id);
/* Copies what it needs from ctx; services of an earlier initialize are dropped. */
void fx_runtime_set(FxRuntime *rt, const FfiRuntimeContext *ctx);
/* Drops the copied services and frees the strings. */
void fx_runtime_release(FxRuntime *rt);
void fx_runtime_log(FxRuntime *rt, FfiLogLevel level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void fx_runtime_lifecycle(FxRuntime *rt, FfiLifecycleEventType type, const char *message);
/* Snapshot of the store copy (false when none); the store id is the component id. */
bool fx_runtime_store(FxRuntime *rt, StateStoreVtable *out, char **store_id);
bool fx_runtime_identity(FxRuntime *rt, IdentityProviderVtable *out);

/* ---- registration ---------------------------------------------------------- */

FfiPluginRegistration *fx_registration_new(const SourcePluginVtable *sources, size_t ns,
                                           const ReactionPluginVtable *reactions, size_t nr,
                                           const BootstrapPluginVtable *bootstraps, size_t nb);

#endif /* FX_COMMON_H */
