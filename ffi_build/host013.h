/* host013.h - the host helpers of drasi_host._ffi013 (see host013.c).  Read
 * both by the C compiler and by cffi's cdef, so it holds only prototypes. */

/* Frees a host-made byte buffer: the FfiBytesDropFn of every payload the host
 * hands to a 0.13 plugin (called on a plugin thread, needs no interpreter). */
void dh13_bytes_free(uint8_t *ptr, size_t len);

/* A malloc'd FfiQueryResult owning a malloc'd copy of data[0..len), with
 * dh13_bytes_free as its payload_drop_fn; what the host returns from the
 * reaction's result-push callback.  NULL when out of memory. */
FfiQueryResult *dh13_query_result_new(const uint8_t *data, size_t len);

/* Release a pushed event the host owns: payload_drop_fn(payload_ptr,
 * payload_len) once when payload_ptr is non-NULL, then free() the envelope.
 * Returns 1 when the payload had to be leaked (NULL drop fn), else 0. */
int dh13_source_event_release(FfiSourceEvent *event);
int dh13_bootstrap_event_release(FfiBootstrapEvent *event);

/* Release an FfiBootstrapResult the host owns: each buffer with ptr != NULL
 * and len > 0 goes to its drop fn (when non-NULL), then the block is freed. */
void dh13_bootstrap_result_release(FfiBootstrapResult *result);

/* Clamp any integer into the FfiLogLevelFilter range 0..5. */
FfiLogLevelFilter dh13_log_filter_clamp(int level);
