/* host.h - the host helpers of drasi_host._ffi (see host.c).  Read both by
 * the C compiler and by cffi's cdef, so it holds only integer #defines,
 * structs and prototypes.  chanops.h comes first. */

#define DH_KIND_SOURCE_EVENTS 1
#define DH_KIND_BOOTSTRAP_EVENTS 2
#define DH_KIND_RESULTS 3

/* Channel flags (dh_chan_new). */
#define DH_CHAN_DRASI_PAYLOAD 1 /* event opaques are DrasiPayload * */
/* A channel of FFI 0.13 components.  Event channels: records hold the
 * MessagePack payload and no routing hints (only DhPushBytesFn fills them).
 * Result channels: queued items are 0.13 FfiQueryResult envelopes (made and
 * freed by the functions dh_results_set_envelope013 installed), pulled with
 * dh_result_pull013, which honours the forwarder's exit sentinel. */
#define DH_CHAN_ABI013 2
/* MAX_FFI_PAYLOAD_BYTES of FFI 0.13: the payload maximum of a 0.13 channel. */
#define DH_MAX_FFI_PAYLOAD_BYTES 268435456
/* The longest end-of-bootstrap position and error text a channel keeps. */
#define DH_MAX_OUTCOME_BYTES 16777216

/* Return codes of the channel functions. */
#define DH_OK 0
#define DH_FULL 1              /* dh_results_push: not taken, producer armed */
#define DH_WAKE_OWED 2         /* dh_results_push: taken; call dh_results_wake this tick */
#define DH_CLOSED_OR_UNKNOWN -1
#define DH_UNKNOWN -1
#define DH_NO_MEMORY -2
#define DH_ARMED 0             /* dh_chan_arm_consumer: wait for the notify socket */
#define DH_READY 1             /* dh_chan_arm_consumer: look again now */
#define DH_NO_CHANNEL 0        /* dh_chan_new: no channel could be created */
#define DH_SEND_TAKEN 0        /* bootstrap sender: the record was taken */
#define DH_SEND_CLOSED 1       /* bootstrap sender: the receiving side is closed */
#define DH_SEND_FAILED -1      /* bootstrap sender: no event */
#define DH_OUTCOME_PENDING 0   /* dh_bootstrap_outcome: no result callback yet */
#define DH_OUTCOME_SET 1       /* dh_bootstrap_outcome: a result was delivered */
#define DH_OUTCOME_NONE 2      /* dh_bootstrap_outcome: ended without a result */

/* Record flags. */
#define DH_REC_HAS_PAYLOAD 1
#define DH_REC_OVERSIZE 2
#define DH_REC_NULL_PAYLOAD 4
#define DH_REC_BAD_HINT 8
#define DH_REC_NO_MEMORY 16
#define DH_REC_BAD_OP 32
/* Any of these makes a record an error report rather than an event. */
#define DH_REC_ERRORS 62

#define DH_MAX_HINT_LEN 1048576

/* One queued event: 56 bytes, all fixed-width, read in bulk by Python.  Its
 * routing hints lie in the batch's hint arena from hint_offset on, each
 * followed by a NUL byte (source id, label, entity id); its payload lies in
 * the payload arena (arenas stay below 4 GiB). */
typedef struct DhEventRecord {
    int64_t timestamp_us;
    uint64_t sequence;
    int32_t op;
    uint32_t flags;
    uint32_t source_id_len;
    uint32_t label_len;
    uint32_t entity_id_len;
    uint32_t hint_offset;
    uint32_t payload_offset;
    uint32_t reserved;
    uint64_t payload_len; /* for DH_REC_OVERSIZE: the length the plugin gave */
} DhEventRecord;

/* What dh_events_take hands over (valid until the next take or release). */
typedef struct DhEventBatch {
    const DhEventRecord *records;
    size_t count;
    const uint8_t *hints;
    size_t nhints;
    const uint8_t *payloads;
    size_t npayloads;
    size_t flagged;   /* records with DH_REC_ERRORS flags */
    int ended;
} DhEventBatch;

/* The end-of-bootstrap result of a 0.13 bootstrap channel (dh_bootstrap_outcome).
 * position / error point into the channel (valid until its release); a
 * NULL position means none was given; position_dropped / error_truncated
 * say the plugin's buffer exceeded DH_MAX_OUTCOME_BYTES. */
typedef struct DhBootstrapOutcome {
    int64_t event_count;
    const uint8_t *position;
    size_t position_len;
    const uint8_t *error;
    size_t error_len;
    int position_dropped;
    int error_truncated;
} DhBootstrapOutcome;

typedef struct DhChanStats {
    uint64_t queued;
    uint64_t capacity;
    uint64_t queued_bytes;
    uint64_t max_bytes;
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

uint64_t dh_chan_new(int kind, int flags, size_t capacity, size_t max_bytes,
                     uint64_t max_payload, int notify_fd);
void dh_chan_close(uint64_t key);
void dh_chan_release(uint64_t key);
int dh_chan_stats(uint64_t key, DhChanStats *out);
int dh_chan_arm_consumer(uint64_t key);

bool dh_change_push(void *ctx, FfiSourceEvent *event);
bool dh_bootstrap_push(void *ctx, FfiBootstrapEvent *event);
int32_t dh_bootstrap_sender_send(void *state, FfiBootstrapEvent *event);
void dh_bootstrap_sender_drop(void *state);
void dh_bootstrap_sender_init(FfiBootstrapSender *sender, uint64_t key);
int64_t dh_events_take(uint64_t key, DhEventBatch *out);

DrasiPayload *dh_payload_new(const uint8_t *data, size_t len);
void dh_payload_event_drop(void *opaque);
int dh_results_push(uint64_t key, const uint8_t *data, size_t len);
int64_t dh_results_push_many(uint64_t key, const uint8_t *data, const uint64_t *lens, size_t n);
void dh_results_wake(uint64_t key);
void *dh_result_pull(void *ctx, void *unused);

void dh_log_shim(void *ctx, const FfiLogEntry *entry);
void dh_lifecycle_shim(void *ctx, const FfiLifecycleEvent *event);
void dh_state_store_vtable_init(StateStoreVtable *vt, void *state);
void dh_identity_vtable_init(IdentityProviderVtable *vt, void *state);
BootstrapProviderVtable *dh_bootstrap_provider_vtable_new(void *state);
LogCallbackFn dh_log_callback_ptr(void);
LifecycleCallbackFn dh_lifecycle_callback_ptr(void);
FfiChangePushCallbackFn dh_change_push_ptr(void);
FfiBootstrapPushCallbackFn dh_bootstrap_push_ptr(void);
FfiResultPushCallbackFn dh_result_pull_ptr(void);

/* FFI 0.13 (DH_CHAN_ABI013 channels; see chanops.h). */
bool dh_event_push_source_bytes(uint64_t key, const uint8_t *data, size_t len,
                                int64_t timestamp_us, uint64_t sequence, int32_t op);
bool dh_event_push_bootstrap_bytes(uint64_t key, const uint8_t *data, size_t len,
                                   int64_t timestamp_us, uint64_t sequence, int32_t op);
void dh_event_end_stream(uint64_t key);
void dh_bootstrap_outcome_store(uint64_t key, int has_result, int64_t event_count,
                                const uint8_t *position, size_t position_len,
                                const uint8_t *error, size_t error_len);
int dh_bootstrap_outcome(uint64_t key, DhBootstrapOutcome *out);
void dh_results_set_envelope013(DhResultMakeFn make, DhResultFreeFn free_item);
void *dh_result_pull013(void *ctx, void *sentinel);
int dh_results_exited(uint64_t key);
int dh_results_wait_exited(uint64_t key, uint32_t timeout_ms);
DhPushBytesFn dh_event_push_source_bytes_ptr(void);
DhPushBytesFn dh_event_push_bootstrap_bytes_ptr(void);
DhEndStreamFn dh_event_end_stream_ptr(void);
DhStoreOutcomeFn dh_bootstrap_outcome_store_ptr(void);
FfiResultPushCallbackFn dh_result_pull013_ptr(void);

