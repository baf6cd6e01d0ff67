/* host.h - the host helpers of drasi_host._ffi (see host.c).  Read both by
 * the C compiler and by cffi's cdef, so it holds only integer #defines,
 * structs and prototypes. */

#define DH_KIND_SOURCE_EVENTS 1
#define DH_KIND_BOOTSTRAP_EVENTS 2
#define DH_KIND_RESULTS 3

#define DH_REC_HAS_PAYLOAD 1
#define DH_REC_OVERSIZE 2
#define DH_REC_NULL_PAYLOAD 4
#define DH_REC_BAD_HINT 8

#define DH_MAX_HINT_LEN 1048576

/* One drained event: 48 bytes, all fixed-width, read in bulk by Python. */
typedef struct DhEventRecord {
    int64_t timestamp_us;
    uint64_t sequence;
    int32_t op;
    uint32_t flags;
    uint32_t source_id_len;
    uint32_t label_len;
    uint32_t entity_id_len;
    uint32_t reserved;
    uint64_t payload_len;
} DhEventRecord;

typedef struct DhChanStats {
    uint64_t queued;
    uint64_t capacity;
    uint64_t pushed;
    uint64_t rejected;
    int eos;
    int closed;
} DhChanStats;

void *dh_dlopen(const char *path, char *err, size_t errlen);
void *dh_dlsym(void *handle, const char *name);

int dh_host_alive(void);
int64_t dh_host_inflight(void);
int64_t dh_host_shutdown(uint32_t wait_ms);

uint64_t dh_chan_new(int kind, size_t capacity, int notify_fd);
void dh_chan_close(uint64_t key);
void dh_chan_release(uint64_t key);
int dh_chan_stats(uint64_t key, DhChanStats *out);
int dh_chan_arm_consumer(uint64_t key);

bool dh_change_push(void *ctx, FfiSourceEvent *event);
bool dh_bootstrap_push(void *ctx, FfiBootstrapEvent *event);
int32_t dh_bootstrap_sender_send(void *state, FfiBootstrapEvent *event);
void dh_bootstrap_sender_drop(void *state);
int64_t dh_events_drain(uint64_t key, DhEventRecord *records, size_t max_records,
                        uint8_t **arena_out, size_t *arena_len, int payload_is_drasi,
                        uint64_t max_payload, size_t max_batch_bytes, int *ended);

DrasiPayload *dh_payload_new(const uint8_t *data, size_t len);
void dh_payload_event_drop(void *opaque);
int dh_results_push(uint64_t key, const uint8_t *data, size_t len);
void *dh_result_pull(void *ctx, void *unused);

void dh_log_shim(void *ctx, const FfiLogEntry *entry);
void dh_lifecycle_shim(void *ctx, const FfiLifecycleEvent *event);
void dh_state_store_vtable_init(StateStoreVtable *vt, void *state);
void dh_identity_vtable_init(IdentityProviderVtable *vt, void *state);
BootstrapProviderVtable *dh_bootstrap_provider_vtable_new(void *state);
void dh_bootstrap_sender_init(FfiBootstrapSender *sender, uint64_t key);

LogCallbackFn dh_log_callback_ptr(void);
LifecycleCallbackFn dh_lifecycle_callback_ptr(void);
FfiChangePushCallbackFn dh_change_push_ptr(void);
FfiBootstrapPushCallbackFn dh_bootstrap_push_ptr(void);
FfiResultPushCallbackFn dh_result_pull_ptr(void);

