/*
 * drasi_plugin_0_13.h - the Drasi plugin C ABI, FFI generation 0.13.
 *
 * The layout spoken by plugins built with drasi-plugin-sdk 0.11, whose
 * metadata reports sdk_version "0.13.0".  This file is the single written
 * form of that generation in the project: C plugins include it, the
 * drasi-host cffi build of drasi_host._ffi013 reads it with the blocks marked
 * cffi-strip removed.  The 0.4 generation lives in drasi_plugin.h; the two
 * headers declare the same type names with different layouts and must never
 * be included in one translation unit.
 *
 * Ownership is that of the 0.4 ABI: memory crossing the boundary comes from
 * the C heap (malloc) and its receiver releases it with free(); an owned
 * buffer with cap 0 was never allocated; a state with a drop_fn is dropped
 * exactly once.  New in 0.13: event, bootstrap and query-result payloads are
 * MessagePack bytes carried with the drop function of their producer
 * (FfiBytesDropFn), called exactly once by the consumer.
 */
#ifndef DRASI_PLUGIN_0_13_H
#define DRASI_PLUGIN_0_13_H

/* cffi-strip-begin */
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif
/* cffi-strip-end */

/* ---- Constants ------------------------------------------------------------ */

enum {
    /* Payloads longer than this are rejected unread (their drop fn still runs). */
    DRASI_MAX_FFI_PAYLOAD_BYTES = 268435456,
    /* subscribe_fn ignores resume positions longer than this. */
    DRASI_MAX_RESUME_POSITION_BYTES = 65536,
    /* FfiCreateResult.error_code */
    DRASI_CREATE_OK = 0,
    DRASI_CREATE_ERROR = 1,
    /* ReactionVtable.default_recovery_policy_fn (unknown values mean Strict) */
    DRASI_RECOVERY_STRICT = 0,
    DRASI_RECOVERY_AUTO_RESET = 1,
    DRASI_RECOVERY_AUTO_SKIP_GAP = 2,
    /* WalProviderVtable.register_fn capacity_policy */
    DRASI_WAL_REJECT_INCOMING = 0,
    DRASI_WAL_OVERWRITE_OLDEST = 1,
    /* FfiWalAppendResult.error_code */
    DRASI_WAL_APPEND_CAPACITY_EXHAUSTED = 1,
    DRASI_WAL_APPEND_OTHER_ERROR = 2
};

/* ---- Strings, results (unchanged from 0.4) -------------------------------- */

typedef struct FfiStr {
    const char *ptr;
    size_t len;
} FfiStr;

typedef struct FfiOwnedStr {
    char *ptr;
    size_t len;
    size_t cap;
} FfiOwnedStr;

typedef struct FfiStringArray {
    FfiOwnedStr *data;
    size_t len;
    size_t cap;
} FfiStringArray;

typedef struct FfiResult {
    int32_t error_code;
    char *error_msg;
} FfiResult;

typedef struct FfiGetResult {
    uint8_t *data;
    size_t len;
    size_t cap;
    bool found;
    int32_t error_code;
    char *error_msg;
} FfiGetResult;

/* Frees a byte buffer with its producer's allocator.  Nullable where noted. */
typedef void (*FfiBytesDropFn)(uint8_t *ptr, size_t len);

/* New: create_* result with the plugin's error text (free()d by the receiver). */
typedef struct FfiCreateResult {
    void *ptr;
    int32_t error_code;
    char *error_msg;
} FfiCreateResult;

/* New: a secret lookup; the receiver free()s whichever string is non-NULL. */
typedef struct FfiGetSecretResult {
    int32_t error_code;
    char *error_msg;
    char *value;
} FfiGetSecretResult;

/* ---- Enums (4-byte C ints) ------------------------------------------------ */

typedef enum FfiComponentStatus {
    FFI_COMPONENT_STATUS_STOPPED = 0,
    FFI_COMPONENT_STATUS_STARTING = 1,
    FFI_COMPONENT_STATUS_RUNNING = 2,
    FFI_COMPONENT_STATUS_STOPPING = 3,
    FFI_COMPONENT_STATUS_RECONFIGURING = 4,
    FFI_COMPONENT_STATUS_ERROR = 5,
    FFI_COMPONENT_STATUS_ADDED = 6,
    FFI_COMPONENT_STATUS_REMOVED = 7
} FfiComponentStatus;

typedef enum FfiChangeOp {
    FFI_CHANGE_OP_INSERT = 0,
    FFI_CHANGE_OP_UPDATE = 1,
    FFI_CHANGE_OP_DELETE = 2
} FfiChangeOp;

typedef enum FfiDispatchMode {
    FFI_DISPATCH_MODE_BROADCAST = 0,
    FFI_DISPATCH_MODE_CHANNEL = 1
} FfiDispatchMode;

typedef enum FfiLogLevel {
    FFI_LOG_LEVEL_ERROR = 0,
    FFI_LOG_LEVEL_WARN = 1,
    FFI_LOG_LEVEL_INFO = 2,
    FFI_LOG_LEVEL_DEBUG = 3,
    FFI_LOG_LEVEL_TRACE = 4
} FfiLogLevel;

/* New: a record of level L passes filter F when L + 1 <= F. */
typedef enum FfiLogLevelFilter {
    FFI_LOG_FILTER_OFF = 0,
    FFI_LOG_FILTER_ERROR = 1,
    FFI_LOG_FILTER_WARN = 2,
    FFI_LOG_FILTER_INFO = 3,
    FFI_LOG_FILTER_DEBUG = 4,
    FFI_LOG_FILTER_TRACE = 5
} FfiLogLevelFilter;

typedef enum FfiLifecycleEventType {
    FFI_LIFECYCLE_STARTING = 0,
    FFI_LIFECYCLE_STARTED = 1,
    FFI_LIFECYCLE_STOPPING = 2,
    FFI_LIFECYCLE_STOPPED = 3,
    FFI_LIFECYCLE_ERROR = 4
} FfiLifecycleEventType;

typedef enum FfiCredentialType {
    FFI_CREDENTIAL_USERNAME_PASSWORD = 0,
    FFI_CREDENTIAL_TOKEN = 1,
    FFI_CREDENTIAL_CERTIFICATE = 2
} FfiCredentialType;

/* ---- Metadata, log and lifecycle (unchanged) ------------------------------ */

typedef struct PluginMetadata {
    FfiStr sdk_version;
    FfiStr core_version;
    FfiStr lib_version;
    FfiStr plugin_version;
    FfiStr target_triple;
    FfiStr git_commit;
    FfiStr build_timestamp;
} PluginMetadata;

typedef struct FfiLogEntry {
    FfiLogLevel level;
    FfiStr plugin_id;
    FfiStr target;
    FfiStr message;
    int64_t timestamp_us;
    FfiStr instance_id;
    FfiStr component_id;
} FfiLogEntry;

typedef struct FfiLifecycleEvent {
    FfiStr component_id;
    FfiStr component_type;
    FfiLifecycleEventType event_type;
    FfiStr message;
    int64_t timestamp_us;
} FfiLifecycleEvent;

typedef void (*LogCallbackFn)(void *ctx, const FfiLogEntry *entry);
typedef void (*LifecycleCallbackFn)(void *ctx, const FfiLifecycleEvent *event);

/* Rust-internal; never called across the boundary.  C plugins leave it NULL. */
typedef void *(*AsyncExecutorFn)(void *future);

/* ---- Events and receivers -------------------------------------------------- */

/* payload: MessagePack SourceEventPayload; op and timestamp_us are hints. */
typedef struct FfiSourceEvent {
    const uint8_t *payload_ptr;
    size_t payload_len;
    FfiBytesDropFn payload_drop_fn;
    FfiChangeOp op;
    int64_t timestamp_us;
} FfiSourceEvent;

/* payload: MessagePack BootstrapEventPayload; timestamp_us and sequence are hints. */
typedef struct FfiBootstrapEvent {
    const uint8_t *payload_ptr;
    size_t payload_len;
    FfiBytesDropFn payload_drop_fn;
    int64_t timestamp_us;
    uint64_t sequence;
} FfiBootstrapEvent;

typedef bool (*FfiChangePushCallbackFn)(void *ctx, FfiSourceEvent *event);
typedef bool (*FfiBootstrapPushCallbackFn)(void *ctx, FfiBootstrapEvent *event);

typedef struct FfiChangeReceiver {
    void *state;
    AsyncExecutorFn executor;
    void (*start_push_fn)(void *state, FfiChangePushCallbackFn cb, void *cb_ctx);
    void (*drop_fn)(void *state);
} FfiChangeReceiver;

typedef struct FfiBootstrapReceiver {
    void *state;
    void (*start_push_fn)(void *state, FfiBootstrapPushCallbackFn cb, void *cb_ctx);
    void (*drop_fn)(void *state);
} FfiBootstrapReceiver;

/* End of a bootstrap: event_count >= 0 on success, -1 on failure with error text. */
typedef struct FfiBootstrapResult {
    int64_t event_count;
    const uint8_t *source_position_ptr;
    size_t source_position_len;
    FfiBytesDropFn source_position_drop_fn;
    const uint8_t *error_ptr;
    size_t error_len;
    FfiBytesDropFn error_drop_fn;
} FfiBootstrapResult;

typedef void (*FfiBootstrapResultCallbackFn)(void *ctx, FfiBootstrapResult *result);

typedef struct FfiBootstrapResultReceiver {
    void *state;
    void (*start_fn)(void *state, FfiBootstrapResultCallbackFn cb, void *ctx);
    void (*drop_fn)(void *state);
} FfiBootstrapResultReceiver;

typedef struct FfiBootstrapStream {
    FfiBootstrapReceiver *events;
    FfiBootstrapResultReceiver *result;
} FfiBootstrapStream;

typedef struct FfiSubscriptionResponse {
    FfiOwnedStr query_id;
    FfiOwnedStr source_id;
    FfiChangeReceiver *receiver;
    FfiBootstrapReceiver *bootstrap_receiver;                /* nullable */
    const void *position_handle_ptr;                         /* nullable */
    FfiBootstrapResultReceiver *bootstrap_result_receiver;   /* nullable */
} FfiSubscriptionResponse;

/* ---- Host services -------------------------------------------------------- */

typedef struct StateStoreVtable {
    void *state;
    FfiGetResult (*get_fn)(void *state, FfiStr store_id, FfiStr key);
    FfiResult (*set_fn)(void *state, FfiStr store_id, FfiStr key,
                        const uint8_t *value, size_t value_len);
    FfiResult (*delete_fn)(void *state, FfiStr store_id, FfiStr key);
    FfiResult (*contains_key_fn)(void *state, FfiStr store_id, FfiStr key);
    FfiResult (*get_many_fn)(void *state, FfiStr store_id, const FfiStr *keys,
                             size_t n, FfiGetResult *out_values);
    FfiResult (*set_many_fn)(void *state, FfiStr store_id, const FfiStr *keys,
                             const uint8_t *const *values, const size_t *value_lens,
                             size_t n);
    int64_t (*delete_many_fn)(void *state, FfiStr store_id, const FfiStr *keys, size_t n);
    int64_t (*clear_store_fn)(void *state, FfiStr store_id);
    FfiStringArray (*list_keys_fn)(void *state, FfiStr store_id);
    FfiResult (*store_exists_fn)(void *state, FfiStr store_id);
    int64_t (*key_count_fn)(void *state, FfiStr store_id);
    FfiResult (*sync_fn)(void *state);
    void (*drop_fn)(void *state);
} StateStoreVtable;

typedef struct FfiCredentials {
    FfiCredentialType credential_type;
    char *field1;
    char *field2;
    char *field3;
} FfiCredentials;

typedef struct FfiCredentialsResult {
    int32_t error_code;
    char *error_msg;
    FfiCredentials credentials;
} FfiCredentialsResult;

/* The plugin copies this block by value during initialize_fn. */
typedef struct IdentityProviderVtable {
    void *state;
    FfiCredentialsResult (*get_credentials_fn)(const void *state,
                                               const uint8_t *context_json,
                                               size_t context_len);
    void *(*clone_fn)(const void *state);
    void (*drop_fn)(void *state);
} IdentityProviderVtable;

typedef struct SecretStoreProviderVtable {
    void *state;
    FfiGetSecretResult (*get_secret_fn)(const void *state, FfiStr name);
    void (*drop_fn)(void *state);
} SecretStoreProviderVtable;

/* Push-based: returns at once, NULL when the provider could not start. */
typedef struct BootstrapProviderVtable {
    void *state;
    AsyncExecutorFn executor;
    FfiBootstrapStream *(*bootstrap_fn)(void *state, FfiStr query_id,
                                        const FfiStr *node_labels, size_t node_labels_count,
                                        const FfiStr *relation_labels,
                                        size_t relation_labels_count,
                                        FfiStr request_id, FfiStr server_id, FfiStr source_id);
    void (*drop_fn)(void *state);
} BootstrapProviderVtable;

/* ---- Reaction recovery and snapshots --------------------------------------- */

typedef struct FfiCheckpoint {
    uint64_t sequence;
    uint64_t config_hash;
} FfiCheckpoint;

typedef struct FfiCheckpointResult {
    bool found;
    FfiCheckpoint checkpoint;
    FfiOwnedStr error;          /* empty (len 0) = no error */
} FfiCheckpointResult;

/* next_fn returns one JSON entry, or an empty string when exhausted;
 * drop_fn is called exactly once. */
typedef struct FfiSnapshotIterator {
    void *iter_ctx;
    FfiOwnedStr (*next_fn)(void *iter_ctx);
    void (*drop_fn)(void *iter_ctx);
} FfiSnapshotIterator;

typedef struct FfiOutboxIterator {
    void *iter_ctx;
    FfiOwnedStr (*next_fn)(void *iter_ctx);
    void (*drop_fn)(void *iter_ctx);
} FfiOutboxIterator;

typedef struct FfiSnapshotIteratorResponse {
    FfiSnapshotIterator iterator;
    uint64_t as_of_sequence;
    uint64_t config_hash;
    FfiOwnedStr error;          /* non-empty = failure; iterator ignored */
} FfiSnapshotIteratorResponse;

typedef struct FfiOutboxIteratorResponse {
    FfiOutboxIterator iterator;
    uint64_t latest_sequence;
    uint64_t config_hash;
    FfiOwnedStr error;          /* "OutboxGap:<n>" or any other failure text */
} FfiOutboxIteratorResponse;

typedef FfiSnapshotIteratorResponse (*FfiBootstrapFetchSnapshotFn)(void *callback_ctx);
typedef FfiOutboxIteratorResponse (*FfiBootstrapFetchOutboxFn)(void *callback_ctx,
                                                               uint64_t after_sequence);
typedef FfiCheckpointResult (*FfiBootstrapReadCheckpointFn)(void *callback_ctx);
typedef FfiResult (*FfiBootstrapWriteCheckpointFn)(void *callback_ctx, FfiCheckpoint cp);

/* Borrowed for the duration of ReactionVtable.bootstrap_fn. */
typedef struct FfiBootstrapContext {
    FfiStr query_id;
    bool is_reset;
    void *callback_ctx;
    FfiBootstrapFetchSnapshotFn fetch_snapshot_fn;
    FfiBootstrapFetchOutboxFn fetch_outbox_fn;
    FfiBootstrapReadCheckpointFn read_checkpoint_fn;
    FfiBootstrapWriteCheckpointFn write_checkpoint_fn;
} FfiBootstrapContext;

typedef struct SnapshotFetcherVtable {
    void *state;
    FfiSnapshotIteratorResponse (*fetch_snapshot_fn)(void *state, FfiStr query_id);
    void (*drop_fn)(void *state);
} SnapshotFetcherVtable;

/* ---- Write-ahead log provider (a non-Rust host always passes NULL) --------- */

typedef struct FfiWalAppendResult {
    uint64_t sequence;
    int32_t error_code;
    char *error_msg;
} FfiWalAppendResult;

typedef struct FfiWalU64Result {
    uint64_t value;
    int32_t error_code;
    char *error_msg;
} FfiWalU64Result;

typedef struct FfiWalOptionalU64Result {
    uint64_t value;
    bool has_value;
    int32_t error_code;
    char *error_msg;
} FfiWalOptionalU64Result;

/* event: a Rust SourceChange (repr(Rust)); opaque to any other host. */
typedef struct FfiWalEntry {
    uint64_t sequence;
    void *event;
} FfiWalEntry;

typedef struct FfiWalReadResult {
    FfiWalEntry *entries;
    size_t count;
    size_t capacity;
    int32_t error_code;
    char *error_msg;
} FfiWalReadResult;

typedef struct WalProviderVtable {
    void *state;
    FfiResult (*register_fn)(void *state, FfiStr source_id, uint64_t max_events,
                             uint8_t capacity_policy);
    FfiWalAppendResult (*append_fn)(void *state, FfiStr source_id, const void *event);
    FfiWalReadResult (*read_from_fn)(void *state, FfiStr source_id, uint64_t sequence);
    FfiWalU64Result (*prune_up_to_fn)(void *state, FfiStr source_id, uint64_t sequence);
    FfiWalU64Result (*head_sequence_fn)(void *state, FfiStr source_id);
    FfiWalOptionalU64Result (*oldest_sequence_fn)(void *state, FfiStr source_id);
    FfiWalU64Result (*event_count_fn)(void *state, FfiStr source_id);
    FfiResult (*delete_wal_fn)(void *state, FfiStr source_id);
    void (*free_read_result_fn)(FfiWalEntry *entries, size_t count, size_t capacity);
    void (*drop_fn)(void *state);
} WalProviderVtable;

/* ---- Runtime context ------------------------------------------------------- */

typedef struct FfiRuntimeContext {
    FfiStr instance_id;
    FfiStr component_id;
    const StateStoreVtable *state_store;               /* nullable */
    LogCallbackFn log_callback;                        /* nullable */
    void *log_ctx;
    LifecycleCallbackFn lifecycle_callback;            /* nullable */
    void *lifecycle_ctx;
    const IdentityProviderVtable *identity_provider;   /* nullable; copied by value */
    const SnapshotFetcherVtable *snapshot_fetcher;     /* nullable; reactions only */
    const WalProviderVtable *wal_provider;             /* nullable; sources only */
} FfiRuntimeContext;

/* ---- Source ---------------------------------------------------------------- */

typedef struct SourceVtable {
    void *state;
    AsyncExecutorFn executor;
    FfiStr (*id_fn)(const void *state);
    FfiStr (*type_name_fn)(const void *state);
    bool (*auto_start_fn)(const void *state);
    FfiDispatchMode (*dispatch_mode_fn)(const void *state);
    FfiOwnedStr (*properties_fn)(const void *state);
    FfiOwnedStr (*describe_schema_fn)(const void *state);
    FfiResult (*start_fn)(void *state);
    FfiResult (*stop_fn)(void *state);
    FfiComponentStatus (*status_fn)(const void *state);
    FfiResult (*deprovision_fn)(void *state);
    void (*initialize_fn)(void *state, const FfiRuntimeContext *ctx);
    FfiSubscriptionResponse *(*subscribe_fn)(void *state, FfiStr source_id,
                                             bool enable_bootstrap, FfiStr query_id,
                                             FfiStr nodes_json, FfiStr relations_json,
                                             const uint8_t *resume_from_ptr,
                                             uint32_t resume_from_len,
                                             bool request_position_handle);
    void (*set_bootstrap_provider_fn)(void *state, BootstrapProviderVtable *provider);
    bool (*supports_replay_fn)(const void *state);
    FfiResult (*remove_position_handle_fn)(void *state, FfiStr query_id);
    void (*drop_fn)(void *state);
} SourceVtable;

/* ---- Reaction -------------------------------------------------------------- */

/* sentinel is NULL while the forwarder loops; non-NULL ((void*)1) once at exit,
 * when the host must return NULL without dereferencing it. */
typedef void *(*FfiResultPushCallbackFn)(void *ctx, void *sentinel);

/* Host-owned MessagePack QueryResult; the plugin calls payload_drop_fn once. */
typedef struct FfiQueryResult {
    const uint8_t *payload_ptr;
    size_t payload_len;
    FfiBytesDropFn payload_drop_fn;
} FfiQueryResult;

typedef struct ReactionVtable {
    void *state;
    AsyncExecutorFn executor;
    FfiStr (*id_fn)(const void *state);
    FfiStr (*type_name_fn)(const void *state);
    bool (*auto_start_fn)(const void *state);
    FfiStringArray (*query_ids_fn)(const void *state);
    FfiOwnedStr (*properties_fn)(const void *state);
    FfiResult (*start_fn)(void *state);
    FfiResult (*stop_fn)(void *state);
    FfiComponentStatus (*status_fn)(const void *state);
    FfiResult (*deprovision_fn)(void *state);
    void (*initialize_fn)(void *state, const FfiRuntimeContext *ctx);
    void (*start_result_push_fn)(void *state, FfiResultPushCallbackFn cb, void *cb_ctx);
    bool (*is_durable_fn)(const void *state);
    bool (*needs_snapshot_on_fresh_start_fn)(const void *state);
    uint8_t (*default_recovery_policy_fn)(const void *state);
    FfiResult (*bootstrap_fn)(void *state, const FfiBootstrapContext *ctx);
    void (*drop_fn)(void *state);
} ReactionVtable;

/* ---- Factory vtables (64 bytes each) ---------------------------------------- */

typedef struct SourcePluginVtable {
    void *state;
    AsyncExecutorFn executor;
    FfiStr (*kind_fn)(const void *state);
    FfiStr (*config_version_fn)(const void *state);
    FfiOwnedStr (*config_schema_json_fn)(const void *state);
    FfiStr (*config_schema_name_fn)(const void *state);
    FfiCreateResult (*create_source_fn)(void *state, FfiStr id, FfiStr config_json,
                                        bool auto_start);
    void (*drop_fn)(void *state);
} SourcePluginVtable;

typedef struct ReactionPluginVtable {
    void *state;
    AsyncExecutorFn executor;
    FfiStr (*kind_fn)(const void *state);
    FfiStr (*config_version_fn)(const void *state);
    FfiOwnedStr (*config_schema_json_fn)(const void *state);
    FfiStr (*config_schema_name_fn)(const void *state);
    FfiCreateResult (*create_reaction_fn)(void *state, FfiStr id, FfiStr query_ids_json,
                                          FfiStr config_json, bool auto_start);
    void (*drop_fn)(void *state);
} ReactionPluginVtable;

typedef struct BootstrapPluginVtable {
    void *state;
    AsyncExecutorFn executor;
    FfiStr (*kind_fn)(const void *state);
    FfiStr (*config_version_fn)(const void *state);
    FfiOwnedStr (*config_schema_json_fn)(const void *state);
    FfiStr (*config_schema_name_fn)(const void *state);
    FfiCreateResult (*create_bootstrap_provider_fn)(void *state, FfiStr config_json,
                                                    FfiStr source_config_json);
    void (*drop_fn)(void *state);
} BootstrapPluginVtable;

/* create_* of the two new kinds return a bare heap block, NULL on failure. */
typedef struct IdentityProviderPluginVtable {
    void *state;
    AsyncExecutorFn executor;
    FfiStr (*kind_fn)(const void *state);
    FfiStr (*config_version_fn)(const void *state);
    FfiOwnedStr (*config_schema_json_fn)(const void *state);
    FfiStr (*config_schema_name_fn)(const void *state);
    IdentityProviderVtable *(*create_identity_provider_fn)(void *state, FfiStr config_json);
    void (*drop_fn)(void *state);
} IdentityProviderPluginVtable;

typedef struct SecretStorePluginVtable {
    void *state;
    AsyncExecutorFn executor;
    FfiStr (*kind_fn)(const void *state);
    FfiStr (*config_version_fn)(const void *state);
    FfiOwnedStr (*config_schema_json_fn)(const void *state);
    FfiStr (*config_schema_name_fn)(const void *state);
    SecretStoreProviderVtable *(*create_secret_store_fn)(void *state, FfiStr config_json);
    void (*drop_fn)(void *state);
} SecretStorePluginVtable;

/* ---- Registration (112 bytes) ---------------------------------------------- */

/* Called synchronously by the plugin with {"kind":"Secret","name":"..."}. */
typedef FfiGetSecretResult (*ConfigResolverFn)(const void *ctx, FfiStr config_value_json);

typedef struct FfiPluginRegistration {
    SourcePluginVtable *source_plugins;
    size_t source_plugin_count;
    ReactionPluginVtable *reaction_plugins;
    size_t reaction_plugin_count;
    BootstrapPluginVtable *bootstrap_plugins;
    size_t bootstrap_plugin_count;
    void (*set_log_callback)(void *ctx, LogCallbackFn cb);
    void (*set_lifecycle_callback)(void *ctx, LifecycleCallbackFn cb);
    IdentityProviderPluginVtable *identity_provider_plugins;
    size_t identity_provider_plugin_count;
    SecretStorePluginVtable *secret_store_plugins;
    size_t secret_store_plugin_count;
    void (*set_config_resolver)(void *ctx, ConfigResolverFn cb);
    void (*set_log_level)(FfiLogLevelFilter level);
} FfiPluginRegistration;

/* ---- Exported symbols (types of the functions a plugin exports) ------------ */

typedef const PluginMetadata *(*DrasiPluginMetadataFn)(void);
typedef FfiPluginRegistration *(*DrasiPluginInitFn)(void);
/* Exported by SDK plugins; a host must never call it. */
typedef void (*DrasiPluginShutdownFn)(void);

/* cffi-strip-begin */
#ifndef DRASI_HOST_BUILD
/* What a plugin exports.  Both are required for 0.13. */
const PluginMetadata *drasi_plugin_metadata(void);
FfiPluginRegistration *drasi_plugin_init(void);
void drasi_plugin_shutdown(void);
#endif

#define DRASI_SDK_VERSION_0_13 "0.13.0"
#define DRASI_RESULT_PUSH_EXIT_SENTINEL ((void *)1)

#ifdef __cplusplus
}
#endif
/* cffi-strip-end */

#endif /* DRASI_PLUGIN_0_13_H */
