/* host013.c - C helpers compiled into drasi_host._ffi013 (declared in host013.h).
 *
 * Only what must not run under the Python interpreter lock lives here: the
 * drop function of host-made payloads (called from plugin threads), the
 * release of plugin-made envelopes and buffers, and the callbacks 0.13
 * plugins call from their threads (event pushes, the end-of-bootstrap
 * result), which read the 0.13 envelopes and hand their contents to the
 * channels of drasi_host._ffi through the entries of chanops.h. */

void dh13_bytes_free(uint8_t *ptr, size_t len)
{
    (void)len;
    free(ptr);
}

FfiQueryResult *dh13_query_result_new(const uint8_t *data, size_t len)
{
    FfiQueryResult *result = malloc(sizeof *result);
    uint8_t *copy = malloc(len > 0 ? len : 1);
    if (result == NULL || copy == NULL) {
        free(result);
        free(copy);
        return NULL;
    }
    if (len > 0)
        memcpy(copy, data, len);
    result->payload_ptr = copy;
    result->payload_len = len;
    result->payload_drop_fn = dh13_bytes_free;
    return result;
}

static int dh13_payload_release(const uint8_t *ptr, size_t len, FfiBytesDropFn drop)
{
    if (ptr == NULL)
        return 0;
    if (drop == NULL)
        return 1;
    drop((uint8_t *)ptr, len);
    return 0;
}

int dh13_source_event_release(FfiSourceEvent *event)
{
    int leaked;
    if (event == NULL)
        return 0;
    leaked = dh13_payload_release(event->payload_ptr, event->payload_len,
                                  event->payload_drop_fn);
    free(event);
    return leaked;
}

int dh13_bootstrap_event_release(FfiBootstrapEvent *event)
{
    int leaked;
    if (event == NULL)
        return 0;
    leaked = dh13_payload_release(event->payload_ptr, event->payload_len,
                                  event->payload_drop_fn);
    free(event);
    return leaked;
}

/* The two buffers of an end-of-bootstrap result, from a copy of its block:
 * each with ptr != NULL and len > 0 goes to its drop fn (when non-NULL). */
static void dh13_bootstrap_buffers_release(const FfiBootstrapResult *r)
{
    if (r->source_position_ptr != NULL && r->source_position_len > 0
        && r->source_position_drop_fn != NULL)
        r->source_position_drop_fn((uint8_t *)r->source_position_ptr, r->source_position_len);
    if (r->error_ptr != NULL && r->error_len > 0 && r->error_drop_fn != NULL)
        r->error_drop_fn((uint8_t *)r->error_ptr, r->error_len);
}

void dh13_bootstrap_result_release(FfiBootstrapResult *result)
{
    if (result == NULL)
        return;
    dh13_bootstrap_buffers_release(result);
    free(result);
}

FfiLogLevelFilter dh13_log_filter_clamp(int level)
{
    if (level <= (int)FFI_LOG_FILTER_OFF)
        return FFI_LOG_FILTER_OFF;
    if (level >= (int)FFI_LOG_FILTER_TRACE)
        return FFI_LOG_FILTER_TRACE;
    return (FfiLogLevelFilter)level;
}

/* ---- the host's life, as the 0.13 shims see it (see dh_enter in host.c) ---- */

static int dh13_alive = 1;
static int64_t dh13_inflight;

static int dh13_enter(void)
{
    __atomic_add_fetch(&dh13_inflight, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&dh13_alive, __ATOMIC_SEQ_CST))
        return 1;
    __atomic_sub_fetch(&dh13_inflight, 1, __ATOMIC_SEQ_CST);
    return 0;
}

static void dh13_leave(void) { __atomic_sub_fetch(&dh13_inflight, 1, __ATOMIC_SEQ_CST); }

int64_t dh13_host_inflight(void) { return __atomic_load_n(&dh13_inflight, __ATOMIC_SEQ_CST); }

int64_t dh13_host_shutdown(uint32_t wait_ms)
{
    __atomic_store_n(&dh13_alive, 0, __ATOMIC_SEQ_CST);
    struct timespec step = {0, 1000000};
    for (uint32_t waited = 0;; waited++) {
        int64_t n = __atomic_load_n(&dh13_inflight, __ATOMIC_SEQ_CST);
        if (n <= 0 || waited >= wait_ms)
            return n;
        nanosleep(&step, NULL);
    }
}

static const char DH13_GONE[] = "drasi host is shutting down";
/* Non-NULL pointer of every empty FfiOwnedStr the host hands out (cap 0). */
static char dh13_empty[1] = "";

char *dh13_strndup(const char *data, size_t len)
{
    char *out = malloc(len + 1);
    if (out == NULL)
        return NULL;
    if (len > 0)
        memcpy(out, data, len);
    out[len] = '\0';
    return out;
}

/* ---- config resolver ---- */

static FfiGetSecretResult dh13_resolver_shim(const void *ctx, FfiStr json)
{
    if (!dh13_enter()) {
        FfiGetSecretResult r = {1, dh13_strndup(DH13_GONE, sizeof DH13_GONE - 1), NULL};
        return r;
    }
    FfiGetSecretResult r = dh13_py_resolve(ctx, json);
    dh13_leave();
    return r;
}

ConfigResolverFn dh13_config_resolver_ptr(void) { return dh13_resolver_shim; }

/* ---- identity provider ---- */

static FfiCredentialsResult dh13_id_get(const void *st, const uint8_t *ctx, size_t len)
{
    if (!dh13_enter()) {
        FfiCredentialsResult r;
        memset(&r, 0, sizeof r);
        r.error_code = 1;
        r.error_msg = dh13_strndup(DH13_GONE, sizeof DH13_GONE - 1);
        return r;
    }
    FfiCredentialsResult r = dh13_py_id_get_credentials(st, ctx, len);
    dh13_leave();
    return r;
}

static void *dh13_id_clone(const void *st)
{
    if (!dh13_enter())
        return NULL;
    void *r = dh13_py_id_clone(st);
    dh13_leave();
    return r;
}

static void dh13_id_drop(void *st)
{
    if (!dh13_enter())
        return;
    dh13_py_id_drop(st);
    dh13_leave();
}

void dh13_identity_vtable_init(IdentityProviderVtable *vt, void *state)
{
    vt->state = state;
    vt->get_credentials_fn = dh13_id_get;
    vt->clone_fn = dh13_id_clone;
    vt->drop_fn = dh13_id_drop;
}

/* ---- snapshot fetcher and its row iterator ---- */

typedef struct Dh13RowIter {
    char **rows;
    size_t *lens;
    size_t count;
    size_t next;
} Dh13RowIter;

static FfiOwnedStr dh13_owned_empty(void)
{
    FfiOwnedStr s = {dh13_empty, 0, 0};
    return s;
}

/* next_fn: hands over one row (the plugin frees it), then "" when exhausted. */
static FfiOwnedStr dh13_iter_next(void *raw)
{
    Dh13RowIter *it = raw;
    if (it == NULL || it->next >= it->count)
        return dh13_owned_empty();
    size_t i = it->next++;
    FfiOwnedStr s = {it->rows[i], it->lens[i], it->lens[i] + 1};
    it->rows[i] = NULL;
    return s;
}

/* drop_fn: exactly once, exhausted or not; frees the rows not handed over. */
static void dh13_iter_drop(void *raw)
{
    Dh13RowIter *it = raw;
    if (it == NULL)
        return;
    for (size_t i = it->next; i < it->count; i++)
        free(it->rows[i]);
    free(it->rows);
    free(it->lens);
    free(it);
}

int dh13_snapshot_response_rows(FfiSnapshotIteratorResponse *out, const char *data,
                                const size_t *lens, size_t n)
{
    Dh13RowIter *it = calloc(1, sizeof *it);
    if (it == NULL)
        return -1;
    it->rows = calloc(n > 0 ? n : 1, sizeof *it->rows);
    it->lens = calloc(n > 0 ? n : 1, sizeof *it->lens);
    if (it->rows == NULL || it->lens == NULL) {
        dh13_iter_drop(it);
        return -1;
    }
    size_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        it->rows[i] = dh13_strndup(data + offset, lens[i]);
        if (it->rows[i] == NULL) {
            it->count = i;
            dh13_iter_drop(it);
            return -1;
        }
        it->lens[i] = lens[i];
        offset += lens[i];
    }
    it->count = n;
    out->iterator.iter_ctx = it;
    out->iterator.next_fn = dh13_iter_next;
    out->iterator.drop_fn = dh13_iter_drop;
    out->error = dh13_owned_empty();
    return 0;
}

void dh13_snapshot_response_error(FfiSnapshotIteratorResponse *out, const char *msg, size_t len)
{
    static const char fallback[] = "snapshot fetch failed";
    if (msg == NULL || len == 0) {
        msg = fallback;
        len = sizeof fallback - 1;
    }
    out->iterator.iter_ctx = NULL;
    out->iterator.next_fn = NULL;
    out->iterator.drop_fn = NULL;
    char *copy = dh13_strndup(msg, len);
    if (copy == NULL) {
        /* Out of memory: the error must still be non-empty; a static text
         * with cap 0 is never freed by the plugin. */
        out->error.ptr = (char *)fallback;
        out->error.len = sizeof fallback - 1;
        out->error.cap = 0;
        return;
    }
    out->error.ptr = copy;
    out->error.len = len;
    out->error.cap = len + 1;
}

static FfiSnapshotIteratorResponse dh13_sf_fetch(void *st, FfiStr query_id)
{
    FfiSnapshotIteratorResponse r;
    memset(&r, 0, sizeof r);
    r.error = dh13_owned_empty();
    if (!dh13_enter()) {
        dh13_snapshot_response_error(&r, DH13_GONE, sizeof DH13_GONE - 1);
        return r;
    }
    int rc = dh13_py_snapshot_fetch(st, query_id, &r);
    dh13_leave();
    if (rc != 0 && r.error.len == 0) {
        /* The host failed without saying why: no iterator may survive. */
        if (r.iterator.iter_ctx != NULL)
            dh13_iter_drop(r.iterator.iter_ctx);
        dh13_snapshot_response_error(&r, NULL, 0);
    }
    return r;
}

static void dh13_sf_drop(void *st)
{
    if (!dh13_enter())
        return;
    dh13_py_snapshot_drop(st);
    dh13_leave();
}

void dh13_snapshot_fetcher_vtable_init(SnapshotFetcherVtable *vt, void *state)
{
    vt->state = state;
    vt->fetch_snapshot_fn = dh13_sf_fetch;
    vt->drop_fn = dh13_sf_drop;
}
/* ---- callbacks handed to 0.13 plugins ------------------------------------ */

/* The channel entries of drasi_host._ffi, installed by dh13_set_channel_ops. */
static DhPushBytesFn dh13_push_source;
static DhPushBytesFn dh13_push_bootstrap;
static DhEndStreamFn dh13_end_stream;
static DhStoreOutcomeFn dh13_store_outcome;
static uint64_t dh13_leaked;

void dh13_set_channel_ops(DhPushBytesFn push_source, DhPushBytesFn push_bootstrap,
                          DhEndStreamFn end_stream, DhStoreOutcomeFn store_outcome)
{
    __atomic_store_n(&dh13_push_source, push_source, __ATOMIC_RELEASE);
    __atomic_store_n(&dh13_push_bootstrap, push_bootstrap, __ATOMIC_RELEASE);
    __atomic_store_n(&dh13_end_stream, end_stream, __ATOMIC_RELEASE);
    __atomic_store_n(&dh13_store_outcome, store_outcome, __ATOMIC_RELEASE);
}

uint64_t dh13_leaked_payloads(void)
{
    return __atomic_load_n(&dh13_leaked, __ATOMIC_RELAXED);
}

static void dh13_end(uint64_t key)
{
    DhEndStreamFn end = __atomic_load_n(&dh13_end_stream, __ATOMIC_ACQUIRE);
    if (end != NULL)
        end(key);
}

/* Push the payload (borrowed) into the channel, then release it. */
static bool dh13_push_payload(DhPushBytesFn push, uint64_t key, const uint8_t *ptr, size_t len,
                              FfiBytesDropFn drop, int64_t timestamp_us, uint64_t sequence,
                              int32_t op)
{
    bool taken = push != NULL && push(key, ptr, len, timestamp_us, sequence, op);
    if (dh13_payload_release(ptr, len, drop))
        __atomic_add_fetch(&dh13_leaked, 1, __ATOMIC_RELAXED);
    return taken;
}

bool dh13_change_push(void *ctx, FfiSourceEvent *event)
{
    uint64_t key = (uint64_t)(uintptr_t)ctx;
    FfiSourceEvent ev;
    if (event == NULL) {
        dh13_end(key);
        return false;
    }
    memcpy(&ev, event, sizeof ev); /* every field read exactly once */
    free(event);
    return dh13_push_payload(__atomic_load_n(&dh13_push_source, __ATOMIC_ACQUIRE), key,
                             ev.payload_ptr, ev.payload_len, ev.payload_drop_fn,
                             ev.timestamp_us, 0, (int32_t)ev.op);
}

bool dh13_bootstrap_push(void *ctx, FfiBootstrapEvent *event)
{
    uint64_t key = (uint64_t)(uintptr_t)ctx;
    FfiBootstrapEvent ev;
    if (event == NULL) {
        dh13_end(key);
        return false;
    }
    memcpy(&ev, event, sizeof ev);
    free(event);
    return dh13_push_payload(__atomic_load_n(&dh13_push_bootstrap, __ATOMIC_ACQUIRE), key,
                             ev.payload_ptr, ev.payload_len, ev.payload_drop_fn,
                             ev.timestamp_us, ev.sequence, 0);
}

void dh13_bootstrap_result(void *ctx, FfiBootstrapResult *result)
{
    uint64_t key = (uint64_t)(uintptr_t)ctx;
    DhStoreOutcomeFn store = __atomic_load_n(&dh13_store_outcome, __ATOMIC_ACQUIRE);
    FfiBootstrapResult r;
    if (result == NULL) {
        if (store != NULL)
            store(key, 0, 0, NULL, 0, NULL, 0);
        return;
    }
    memcpy(&r, result, sizeof r);
    if (store != NULL)
        store(key, 1, r.event_count, r.source_position_ptr, r.source_position_len,
              r.error_ptr, r.error_len);
    /* Released from the values read above (the block is read once). */
    dh13_bootstrap_buffers_release(&r);
    free(result);
}

void *dh13_result_make(const uint8_t *data, size_t len)
{
    return dh13_query_result_new(data, len);
}

void dh13_result_free(void *item)
{
    FfiQueryResult *result = item;
    if (result == NULL)
        return;
    if (result->payload_ptr != NULL && result->payload_drop_fn != NULL)
        result->payload_drop_fn((uint8_t *)result->payload_ptr, result->payload_len);
    free(result);
}

FfiChangePushCallbackFn dh13_change_push_ptr(void) { return dh13_change_push; }
FfiBootstrapPushCallbackFn dh13_bootstrap_push_ptr(void) { return dh13_bootstrap_push; }
FfiBootstrapResultCallbackFn dh13_bootstrap_result_ptr(void) { return dh13_bootstrap_result; }
DhResultMakeFn dh13_result_make_ptr(void) { return dh13_result_make; }
DhResultFreeFn dh13_result_free_ptr(void) { return dh13_result_free; }
