/* host013.c - C helpers compiled into drasi_host._ffi013 (declared in host013.h).
 *
 * Only what must not run under the Python interpreter lock lives here: the
 * drop function of host-made payloads (called from plugin threads) and the
 * release of plugin-made envelopes and buffers. */

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
