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

/* ---- host services of the 0.13 generation (ABI-0.13.md sections 4, 6, 8, 10) ----
 *
 * Every function a plugin calls into Python goes through a shim that counts
 * the call as in flight and answers a failure value once the host is shutting
 * down (dh13_host_shutdown), exactly like the 0.4 shims of host.c. */

/* Refuse later calls into Python, wait up to wait_ms for those inside;
 * returns how many were still inside when it gave up. */
int64_t dh13_host_shutdown(uint32_t wait_ms);
int64_t dh13_host_inflight(void);

/* The config resolver callback handed to set_config_resolver. */
ConfigResolverFn dh13_config_resolver_ptr(void);

/* A host-built 0.13 IdentityProviderVtable whose state is a table key. */
void dh13_identity_vtable_init(IdentityProviderVtable *vt, void *state);

/* A host-built SnapshotFetcherVtable whose state is a table key. */
void dh13_snapshot_fetcher_vtable_init(SnapshotFetcherVtable *vt, void *state);

/* Fill a successful FfiSnapshotIteratorResponse: a C iterator owning malloc'd
 * copies of the n rows data[off_i .. off_i + lens[i]) (rows laid end to end);
 * next_fn and drop_fn are C functions that need no interpreter.  Returns 0,
 * or -1 when out of memory (nothing allocated, the response is untouched). */
int dh13_snapshot_response_rows(FfiSnapshotIteratorResponse *out, const char *data,
                                const size_t *lens, size_t n);

/* Fill a failed FfiSnapshotIteratorResponse: a malloc'd copy of the message
 * (an empty message becomes "snapshot fetch failed"), no iterator state. */
void dh13_snapshot_response_error(FfiSnapshotIteratorResponse *out, const char *msg, size_t len);

/* A malloc'd NUL-terminated copy of data[0..len) (NULL when out of memory). */
char *dh13_strndup(const char *data, size_t len);
/* ---- callbacks handed to 0.13 plugins, feeding drasi_host._ffi's channels -- */

/* Install the channel entries of drasi_host._ffi (once, at import of
 * drasi_host._abi013).  Until then the callbacks below release what they are
 * given and refuse it. */
void dh13_set_channel_ops(DhPushBytesFn push_source, DhPushBytesFn push_bootstrap,
                          DhEndStreamFn end_stream, DhStoreOutcomeFn store_outcome);

/* FfiChangePushCallbackFn / FfiBootstrapPushCallbackFn; ctx is a channel key.
 * The envelope is read once and free()d; the payload is copied into the
 * channel (or refused unread) and then given to payload_drop_fn exactly once
 * when payload_ptr is non-NULL (a NULL drop fn leaks it, counted).  A NULL
 * event ends the stream.  Returns whether the channel took the event. */
bool dh13_change_push(void *ctx, FfiSourceEvent *event);
bool dh13_bootstrap_push(void *ctx, FfiBootstrapEvent *event);

/* FfiBootstrapResultCallbackFn; ctx is the key of a 0.13 bootstrap channel.
 * Copies the result into the channel (first call only; a NULL result means
 * "ended without a result"), then releases it as
 * dh13_bootstrap_result_release does. */
void dh13_bootstrap_result(void *ctx, FfiBootstrapResult *result);

/* Payload buffers leaked because their drop fn was NULL (process-wide). */
uint64_t dh13_leaked_payloads(void);

/* The 0.13 result envelope functions installed into drasi_host._ffi
 * (DhResultMakeFn / DhResultFreeFn): dh13_query_result_new, and the release
 * of an envelope the plugin never received (payload_drop_fn, then free). */
void *dh13_result_make(const uint8_t *data, size_t len);
void dh13_result_free(void *item);

FfiChangePushCallbackFn dh13_change_push_ptr(void);
FfiBootstrapPushCallbackFn dh13_bootstrap_push_ptr(void);
FfiBootstrapResultCallbackFn dh13_bootstrap_result_ptr(void);
DhResultMakeFn dh13_result_make_ptr(void);
DhResultFreeFn dh13_result_free_ptr(void);
