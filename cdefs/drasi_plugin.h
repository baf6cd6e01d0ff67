/*
 * drasi_plugin.h - the Drasi plugin C ABI (plugin SDK 0.4 layout).
 *
 * This file is the single written form of the contract between a Drasi host
 * and a plugin shared library.  It is included unchanged by C plugins and is
 * read by the drasi-host cffi build, which strips the preprocessor lines
 * marked below before handing the declarations to cffi.
 *
 * Ownership in one paragraph: memory that crosses the boundary comes from the
 * process C heap (malloc) and is released by its receiver with free().  An
 * owned buffer whose cap is 0 was never allocated and is never freed (its
 * pointer may be a dangling non-NULL value such as 0x1).  Objects carrying a
 * state pointer and a drop_fn are released exactly once with drop_fn(state).
 * FfiStr values are borrowed, UTF-8, and never NUL-terminated.
 *
 * See docs/abi.md for the plugin author's guide.
 */
#ifndef DRASI_PLUGIN_H
#define DRASI_PLUGIN_H

/* cffi-strip-begin */
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif
/* cffi-strip-end */

/* ---- 1. Strings, results ------------------------------------------------ */

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

/* ---- 2. Enums (4-byte C ints) ------------------------------------------- */

typedef enum FfiComponentStatus {
    FFI_COMPONENT_STATUS_STOPPED = 0,
    FFI_COMPONENT_STATUS_STARTING = 1,
    FFI_COMPONENT_STATUS_RUNNING = 2,
    FFI_COMPONENT_STATUS_STOPPING = 3,
    FFI_COMPONENT_STATUS_RECONFIGURING = 4,
    FFI_COMPONENT_STATUS_ERROR = 5
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

/* ---- 3. Metadata ---------------------------------------------------------- */

typedef struct PluginMetadata {
    FfiStr sdk_version;
    FfiStr core_version;
    FfiStr lib_version;
    FfiStr plugin_version;
    FfiStr target_triple;
    FfiStr git_commit;
    FfiStr build_timestamp;
} PluginMetadata;

/* ---- 4. Log and lifecycle callbacks ------------------------------------- */

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

/* Rust-internal; the host never calls it.  C plugins may leave it NULL. */
typedef void *(*AsyncExecutorFn)(void *future);

/* ---- 6. Events and receivers --------------------------------------------- */

typedef struct FfiSourceEvent {
    void *opaque;
    FfiStr source_id;
    int64_t timestamp_us;
    FfiChangeOp op;
    FfiStr label;
    FfiStr entity_id;
    void (*drop_fn)(void *opaque);
} FfiSourceEvent;

typedef struct FfiBootstrapEvent {
    void *opaque;
    FfiStr source_id;
    int64_t timestamp_us;
    uint64_t sequence;
    FfiStr label;
    FfiStr entity_id;
    void (*drop_fn)(void *opaque);
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

typedef struct FfiSubscriptionResponse {
    FfiOwnedStr query_id;
    FfiOwnedStr source_id;
    FfiChangeReceiver *receiver;
    FfiBootstrapReceiver *bootstrap_receiver;
} FfiSubscriptionResponse;

/* ---- 8. Host services: state store, identity, bootstrap ----------------- */

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

typedef struct IdentityProviderVtable {
    void *state;
    FfiCredentialsResult (*get_credentials_fn)(const void *state);
    void *(*clone_fn)(const void *state);
    void (*drop_fn)(void *state);
} IdentityProviderVtable;

typedef struct FfiBootstrapSender {
    void *state;
    int32_t (*send_fn)(void *state, FfiBootstrapEvent *event);
    void (*drop_fn)(void *state);
} FfiBootstrapSender;

typedef struct BootstrapProviderVtable {
    void *state;
    AsyncExecutorFn executor;
    int64_t (*bootstrap_fn)(void *state, FfiStr query_id,
                            const FfiStr *node_labels, size_t node_labels_count,
                            const FfiStr *relation_labels, size_t relation_labels_count,
                            FfiStr request_id, FfiStr server_id, FfiStr source_id,
                            FfiBootstrapSender *sender);
    void (*drop_fn)(void *state);
} BootstrapProviderVtable;

/* ---- 6. Source ------------------------------------------------------------ */

typedef struct FfiRuntimeContext {
    FfiStr instance_id;
    FfiStr component_id;
    const StateStoreVtable *state_store;              /* nullable */
    LogCallbackFn log_callback;                       /* nullable */
    void *log_ctx;
    LifecycleCallbackFn lifecycle_callback;           /* nullable */
    void *lifecycle_ctx;
    const IdentityProviderVtable *identity_provider;  /* nullable */
} FfiRuntimeContext;

typedef struct SourceVtable {
    void *state;
    AsyncExecutorFn executor;
    FfiStr (*id_fn)(const void *state);
    FfiStr (*type_name_fn)(const void *state);
    bool (*auto_start_fn)(const void *state);
    FfiDispatchMode (*dispatch_mode_fn)(const void *state);
    FfiResult (*start_fn)(void *state);
    FfiResult (*stop_fn)(void *state);
    FfiComponentStatus (*status_fn)(const void *state);
    FfiResult (*deprovision_fn)(void *state);
    void (*initialize_fn)(void *state, const FfiRuntimeContext *ctx);
    FfiSubscriptionResponse *(*subscribe_fn)(void *state, FfiStr source_id,
                                             bool enable_bootstrap, FfiStr query_id,
                                             FfiStr nodes_json, FfiStr relations_json);
    void (*set_bootstrap_provider_fn)(void *state, BootstrapProviderVtable *provider);
    void (*drop_fn)(void *state);
} SourceVtable;

/* ---- 7. Reaction ---------------------------------------------------------- */

typedef void *(*FfiResultPushCallbackFn)(void *ctx, void *unused);

typedef struct ReactionVtable {
    void *state;
    AsyncExecutorFn executor;
    FfiStr (*id_fn)(const void *state);
    FfiStr (*type_name_fn)(const void *state);
    bool (*auto_start_fn)(const void *state);
    FfiStringArray (*query_ids_fn)(const void *state);
    FfiResult (*start_fn)(void *state);
    FfiResult (*stop_fn)(void *state);
    FfiComponentStatus (*status_fn)(const void *state);
    FfiResult (*deprovision_fn)(void *state);
    void (*initialize_fn)(void *state, const FfiRuntimeContext *ctx);
    void (*start_result_push_fn)(void *state, FfiResultPushCallbackFn cb, void *cb_ctx);
    void (*drop_fn)(void *state);
} ReactionVtable;

/* ---- 5. Factory vtables --------------------------------------------------- */

typedef struct SourcePluginVtable {
    void *state;
    AsyncExecutorFn executor;
    FfiStr (*kind_fn)(const void *state);
    FfiStr (*config_version_fn)(const void *state);
    FfiOwnedStr (*config_schema_json_fn)(const void *state);
    FfiStr (*config_schema_name_fn)(const void *state);
    SourceVtable *(*create_source_fn)(void *state, FfiStr id, FfiStr config_json,
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
    ReactionVtable *(*create_reaction_fn)(void *state, FfiStr id, FfiStr query_ids_json,
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
    BootstrapProviderVtable *(*create_bootstrap_provider_fn)(void *state,
                                                             FfiStr config_json,
                                                             FfiStr source_config_json);
    void (*drop_fn)(void *state);
} BootstrapPluginVtable;

/* ---- 3. Registration ------------------------------------------------------ */

typedef struct FfiPluginRegistration {
    SourcePluginVtable *source_plugins;
    size_t source_plugin_count;
    ReactionPluginVtable *reaction_plugins;
    size_t reaction_plugin_count;
    BootstrapPluginVtable *bootstrap_plugins;
    size_t bootstrap_plugin_count;
    void (*set_log_callback)(void *ctx, LogCallbackFn cb);
    void (*set_lifecycle_callback)(void *ctx, LifecycleCallbackFn cb);
} FfiPluginRegistration;

/* ---- 9. Extension: language-neutral payloads ---------------------------- */

typedef struct DrasiPayload {
    const uint8_t *data;
    size_t len;
    void (*drop_fn)(struct DrasiPayload *self);
} DrasiPayload;

/* ---- Exported symbols (types of the functions a plugin exports) ---------- */

typedef const PluginMetadata *(*DrasiPluginMetadataFn)(void);
typedef FfiPluginRegistration *(*DrasiPluginInitFn)(void);
typedef FfiStr (*DrasiPluginPayloadFormatFn)(void);

/* cffi-strip-begin */
#ifndef DRASI_HOST_BUILD
/* What a plugin exports.  drasi_plugin_init is required; the others are optional. */
const PluginMetadata *drasi_plugin_metadata(void);
FfiPluginRegistration *drasi_plugin_init(void);
FfiStr drasi_plugin_payload_format(void);
#endif

#define DRASI_SDK_VERSION "0.4.2"

#ifdef __cplusplus
}
#endif
/* cffi-strip-end */

#endif /* DRASI_PLUGIN_H */
