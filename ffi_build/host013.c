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

void dh13_bootstrap_result_release(FfiBootstrapResult *result)
{
    if (result == NULL)
        return;
    if (result->source_position_ptr != NULL && result->source_position_len > 0
        && result->source_position_drop_fn != NULL)
        result->source_position_drop_fn((uint8_t *)result->source_position_ptr,
                                         result->source_position_len);
    if (result->error_ptr != NULL && result->error_len > 0 && result->error_drop_fn != NULL)
        result->error_drop_fn((uint8_t *)result->error_ptr, result->error_len);
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
    if (r.source_position_ptr != NULL && r.source_position_len > 0
        && r.source_position_drop_fn != NULL)
        r.source_position_drop_fn((uint8_t *)r.source_position_ptr, r.source_position_len);
    if (r.error_ptr != NULL && r.error_len > 0 && r.error_drop_fn != NULL)
        r.error_drop_fn((uint8_t *)r.error_ptr, r.error_len);
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
