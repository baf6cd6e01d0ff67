/*
 * host.c - the native half of drasi_host._ffi besides the channels
 * (channels.c).
 *
 * Everything here runs without the GIL on whatever thread a plugin chooses:
 * the C functions plugins call for logs, lifecycle events, the state store,
 * identity and Python bootstrap providers.  Each checks that the host is
 * still alive before entering Python (an extern "Python" function), and
 * answers with a safe failure value otherwise.
 */
#define DRASI_HOST_BUILD 1
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "drasi_plugin.h"
#include "chanops.h"
#include "host.h"
#include "host_py.h"

/* ---- the host's life, as the shims see it --------------------------------
 *
 * Every shim into Python enters through dh_enter() and leaves through
 * dh_leave(): dh_enter counts the call as in flight and only then checks that
 * the host is alive, so dh_host_shutdown() - which clears "alive" first and
 * then waits for the count to reach zero - never returns while a call it has
 * not refused is still inside Python.  Both sides use sequentially consistent
 * atomics, so either the shim sees the host gone, or the shutdown sees the
 * shim's count.  From shutdown on, calls are answered with their failure
 * values without entering Python, so no plugin thread ever reaches a
 * finalising interpreter (where it would be unwound by pthread_exit, which
 * aborts a C++ or Rust plugin). */
static int dh_alive = 1;
static int64_t dh_inflight;

int dh_host_alive(void) { return __atomic_load_n(&dh_alive, __ATOMIC_SEQ_CST); }

static int dh_enter(void) {
    __atomic_add_fetch(&dh_inflight, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&dh_alive, __ATOMIC_SEQ_CST)) return 1;
    __atomic_sub_fetch(&dh_inflight, 1, __ATOMIC_SEQ_CST);
    return 0;
}

static void dh_leave(void) { __atomic_sub_fetch(&dh_inflight, 1, __ATOMIC_SEQ_CST); }

int64_t dh_host_inflight(void) { return __atomic_load_n(&dh_inflight, __ATOMIC_SEQ_CST); }

/* Refuse every later call into Python, then wait up to wait_ms for the calls
 * already inside to return.  Must be called without the GIL held (cffi
 * releases it), or the calls inside could never finish.  Returns the number
 * still in flight when it gave up (0 when all returned). */
int64_t dh_host_shutdown(uint32_t wait_ms) {
    __atomic_store_n(&dh_alive, 0, __ATOMIC_SEQ_CST);
    struct timespec step = {0, 1000000};
    for (uint32_t waited = 0;; waited++) {
        int64_t n = __atomic_load_n(&dh_inflight, __ATOMIC_SEQ_CST);
        if (n <= 0 || waited >= wait_ms) return n;
        nanosleep(&step, NULL);
    }
}

/* ---- shims into Python ------------------------------------------------- */

static char *dh_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static const char DH_GONE[] = "drasi host is shutting down";

/* DH_SHIM(call, gone): enter Python through `call` when the host is alive,
 * else answer `gone`; the call is counted as in flight while inside. */
#define DH_SHIM(type, call, gone)      \
    do {                               \
        if (!dh_enter()) return (gone); \
        type dh_r_ = (call);           \
        dh_leave();                    \
        return dh_r_;                  \
    } while (0)
#define DH_SHIM_VOID(call)  \
    do {                    \
        if (!dh_enter()) return; \
        call;               \
        dh_leave();         \
    } while (0)

void dh_log_shim(void *ctx, const FfiLogEntry *entry) {
    if (entry) DH_SHIM_VOID(dh_py_log(ctx, entry));
}

void dh_lifecycle_shim(void *ctx, const FfiLifecycleEvent *event) {
    if (event) DH_SHIM_VOID(dh_py_lifecycle(ctx, event));
}

static FfiResult dh_gone_result(void) {
    FfiResult r = {1, dh_strdup(DH_GONE)};
    return r;
}

static FfiGetResult dh_gone_get(void) {
    FfiGetResult r = {(uint8_t *)1, 0, 0, false, 1, dh_strdup(DH_GONE)};
    return r;
}

static FfiStringArray dh_gone_array(void) {
    FfiStringArray a = {(FfiOwnedStr *)8, 0, 0};
    return a;
}

/* The failure values are built only when needed (they allocate). */
#define DH_SHIM_R(call) DH_SHIM(FfiResult, call, dh_gone_result())

static FfiGetResult dh_ss_get(void *st, FfiStr store, FfiStr key) {
    DH_SHIM(FfiGetResult, dh_py_ss_get(st, store, key), dh_gone_get());
}
static FfiResult dh_ss_set(void *st, FfiStr store, FfiStr key, const uint8_t *v, size_t n) {
    DH_SHIM_R(dh_py_ss_set(st, store, key, v, n));
}
static FfiResult dh_ss_delete(void *st, FfiStr store, FfiStr key) {
    DH_SHIM_R(dh_py_ss_delete(st, store, key));
}
static FfiResult dh_ss_contains_key(void *st, FfiStr store, FfiStr key) {
    DH_SHIM_R(dh_py_ss_contains_key(st, store, key));
}
static FfiResult dh_ss_get_many(void *st, FfiStr store, const FfiStr *keys, size_t n,
                                FfiGetResult *out) {
    DH_SHIM_R(dh_py_ss_get_many(st, store, keys, n, out));
}
static FfiResult dh_ss_set_many(void *st, FfiStr store, const FfiStr *keys,
                                const uint8_t *const *values, const size_t *lens, size_t n) {
    DH_SHIM_R(dh_py_ss_set_many(st, store, keys, values, lens, n));
}
static int64_t dh_ss_delete_many(void *st, FfiStr store, const FfiStr *keys, size_t n) {
    DH_SHIM(int64_t, dh_py_ss_delete_many(st, store, keys, n), -1);
}
static int64_t dh_ss_clear_store(void *st, FfiStr store) {
    DH_SHIM(int64_t, dh_py_ss_clear_store(st, store), -1);
}
static FfiStringArray dh_ss_list_keys(void *st, FfiStr store) {
    DH_SHIM(FfiStringArray, dh_py_ss_list_keys(st, store), dh_gone_array());
}
static FfiResult dh_ss_store_exists(void *st, FfiStr store) {
    DH_SHIM_R(dh_py_ss_store_exists(st, store));
}
static int64_t dh_ss_key_count(void *st, FfiStr store) {
    DH_SHIM(int64_t, dh_py_ss_key_count(st, store), -1);
}
static FfiResult dh_ss_sync(void *st) { DH_SHIM_R(dh_py_ss_sync(st)); }
static void dh_ss_drop(void *st) { DH_SHIM_VOID(dh_py_ss_drop(st)); }

/* Fill a host-owned StateStoreVtable whose state is a table key. */
void dh_state_store_vtable_init(StateStoreVtable *vt, void *state) {
    vt->state = state;
    vt->get_fn = dh_ss_get;
    vt->set_fn = dh_ss_set;
    vt->delete_fn = dh_ss_delete;
    vt->contains_key_fn = dh_ss_contains_key;
    vt->get_many_fn = dh_ss_get_many;
    vt->set_many_fn = dh_ss_set_many;
    vt->delete_many_fn = dh_ss_delete_many;
    vt->clear_store_fn = dh_ss_clear_store;
    vt->list_keys_fn = dh_ss_list_keys;
    vt->store_exists_fn = dh_ss_store_exists;
    vt->key_count_fn = dh_ss_key_count;
    vt->sync_fn = dh_ss_sync;
    vt->drop_fn = dh_ss_drop;
}

static FfiCredentialsResult dh_gone_credentials(void) {
    FfiCredentialsResult r;
    memset(&r, 0, sizeof r);
    r.error_code = 1;
    r.error_msg = dh_strdup(DH_GONE);
    return r;
}
static FfiCredentialsResult dh_id_get(const void *st) {
    DH_SHIM(FfiCredentialsResult, dh_py_id_get_credentials(st), dh_gone_credentials());
}
static void *dh_id_clone(const void *st) { DH_SHIM(void *, dh_py_id_clone(st), NULL); }
static void dh_id_drop(void *st) { DH_SHIM_VOID(dh_py_id_drop(st)); }

void dh_identity_vtable_init(IdentityProviderVtable *vt, void *state) {
    vt->state = state;
    vt->get_credentials_fn = dh_id_get;
    vt->clone_fn = dh_id_clone;
    vt->drop_fn = dh_id_drop;
}

static void *dh_null_executor(void *future) {
    (void)future;
    return NULL;
}

static int64_t dh_bp_bootstrap(void *st, FfiStr query_id, const FfiStr *nodes, size_t n_nodes,
                               const FfiStr *rels, size_t n_rels, FfiStr request_id,
                               FfiStr server_id, FfiStr source_id, FfiBootstrapSender *sender) {
    DH_SHIM(int64_t,
            dh_py_bootstrap(st, query_id, nodes, n_nodes, rels, n_rels, request_id, server_id,
                            source_id, sender),
            -1);
}
static void dh_bp_drop(void *st) { DH_SHIM_VOID(dh_py_provider_drop(st)); }

/* A heap BootstrapProviderVtable (malloc) backed by a Python provider; the
 * plugin that receives it owns and frees it. */
BootstrapProviderVtable *dh_bootstrap_provider_vtable_new(void *state) {
    BootstrapProviderVtable *vt = malloc(sizeof *vt);
    if (!vt) return NULL;
    vt->state = state;
    vt->executor = dh_null_executor;
    vt->bootstrap_fn = dh_bp_bootstrap;
    vt->drop_fn = dh_bp_drop;
    return vt;
}

/* Exposed as function pointers so Python can hand them to plugins. */
LogCallbackFn dh_log_callback_ptr(void) { return dh_log_shim; }
LifecycleCallbackFn dh_lifecycle_callback_ptr(void) { return dh_lifecycle_shim; }

/* ---- libraries ---------------------------------------------------------- */

/* Open a plugin library (never closed: plugin threads may still run its
 * code).  On failure returns NULL and copies dlerror() into err. */
void *dh_dlopen(const char *path, char *err, size_t errlen) {
    dlerror();
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h && err && errlen) {
        const char *e = dlerror();
        snprintf(err, errlen, "%s", e ? e : "dlopen failed");
    }
    return h;
}

void *dh_dlsym(void *handle, const char *name) {
    dlerror();
    return dlsym(handle, name);
}
