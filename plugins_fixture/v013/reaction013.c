/* reaction013.c - the reaction factory FX13_PREFIX "-reaction".
 *
 * The reaction's forwarder pulls FfiQueryResult blocks from the host's
 * result-push callback, checks each MessagePack QueryResult (section 12.4)
 * with a strict reader, counts results and diffs, frees each payload with
 * its drop fn and the envelope with free(), and after the loop makes the
 * final call with the (void*)1 sentinel.  Config: {"mode": M}; modes
 * "fail" (create error text), "nullptr" (create succeeds with NULL),
 * "nosentinel" (never makes the final sentinel call).
 */
#define _POSIX_C_SOURCE 200809L
#include "fx013.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct Fx13Reaction {
    _Atomic int refs;
    char *id;
    char *query_ids_json;
    char mode[32];
    bool auto_start;
    _Atomic int status;
    _Atomic bool push_started;
    Fx13Callbacks cbs;
    const SnapshotFetcherVtable *fetcher;
    IdentityProviderVtable identity;
    bool has_identity;
    FfiResultPushCallbackFn cb;
    void *cb_ctx;
    uint64_t fnv; /* FNV-1a 64 over the decoded results' payload bytes, in order */
} Fx13Reaction;

static void rx_unref(Fx13Reaction *r)
{
    if (atomic_fetch_sub(&r->refs, 1) == 1) {
        free(r->id);
        free(r->query_ids_json);
        free(r);
    }
}

/* Checks one QueryResult document; returns the number of diffs or -1. */
static int64_t fx13_check_query_result(const uint8_t *p, size_t len)
{
    Mpr r = {p, p + len};
    uint32_t n, m, k, sn;
    const char *s;
    int64_t diffs = 0;
    bool have_query = false, have_ts = false, have_results = false, have_meta = false;
    if (mpr_map(&r, &n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        if (mpr_str(&r, &s, &sn))
            return -1;
        if (mpr_key_is(s, sn, "query_id") || mpr_key_is(s, sn, "timestamp")) {
            bool query = s[0] == 'q';
            if (mpr_str(&r, &s, &sn))
                return -1;
            if (query)
                have_query = true;
            else
                have_ts = sn >= 20 && s[4] == '-' && s[10] == 'T';
        } else if (mpr_key_is(s, sn, "sequence")) {
            uint64_t seq;
            if (mpr_uint(&r, &seq))
                return -1;
        } else if (mpr_key_is(s, sn, "results")) {
            if (mpr_array(&r, &m))
                return -1;
            for (uint32_t j = 0; j < m; j++) {
                bool typed = false;
                if (mpr_map(&r, &k))
                    return -1;
                for (uint32_t q = 0; q < k; q++) {
                    if (mpr_str(&r, &s, &sn))
                        return -1;
                    if (mpr_key_is(s, sn, "type")) {
                        if (mpr_str(&r, &s, &sn))
                            return -1;
                        typed = mpr_key_is(s, sn, "ADD") || mpr_key_is(s, sn, "DELETE")
                                || mpr_key_is(s, sn, "UPDATE") || mpr_key_is(s, sn, "aggregation")
                                || mpr_key_is(s, sn, "noop");
                    } else if (mpr_skip(&r)) {
                        return -1;
                    }
                }
                if (!typed)
                    return -1;
                diffs++;
            }
            have_results = true;
        } else if (mpr_key_is(s, sn, "metadata")) {
            if (mpr_map(&r, &k))
                return -1;
            for (uint32_t q = 0; q < 2 * k; q++)
                if (mpr_skip(&r))
                    return -1;
            have_meta = true;
        } else if (mpr_skip(&r)) {
            return -1;
        }
    }
    if (r.p != r.end || !have_query || !have_ts || !have_results || !have_meta)
        return -1;
    return diffs;
}

static void *rx_forwarder(void *raw)
{
    Fx13Reaction *r = raw;
    for (;;) {
        FfiQueryResult *res = r->cb(r->cb_ctx, NULL);
        if (res == NULL)
            break;
        FX13_ADD(results_received, 1);
        int64_t diffs = -1;
        if (res->payload_ptr != NULL && res->payload_len <= DRASI_MAX_FFI_PAYLOAD_BYTES)
            diffs = fx13_check_query_result(res->payload_ptr, res->payload_len);
        if (diffs < 0) {
            FX13_ADD(results_invalid, 1);
        } else {
            FX13_ADD(results_decoded, 1);
            FX13_ADD(result_diffs, diffs);
            FX13_ADD(result_bytes, (int64_t)res->payload_len);
            for (size_t i = 0; i < res->payload_len; i++)
                r->fnv = (r->fnv ^ res->payload_ptr[i]) * 0x100000001b3ULL;
            FX13_SET(result_fnv1a, (int64_t)r->fnv);
        }
        if (res->payload_ptr != NULL && res->payload_drop_fn != NULL)
            res->payload_drop_fn((uint8_t *)res->payload_ptr, res->payload_len);
        free(res);
    }
    if (!FX13_MODE_IS(r->mode, "nosentinel")) {
        FX13_ADD(exit_sentinels_sent, 1);
        r->cb(r->cb_ctx, DRASI_RESULT_PUSH_EXIT_SENTINEL);
    }
    rx_unref(r);
    return NULL;
}

static FfiStr rx_id(const void *st) { return fx13_str(((const Fx13Reaction *)st)->id); }
static FfiStr rx_type(const void *st) { (void)st; return fx13_str(FX13_PREFIX "-reaction"); }
static bool rx_auto_start(const void *st) { return ((const Fx13Reaction *)st)->auto_start; }
static FfiOwnedStr rx_properties(const void *st) { (void)st; return fx13_owned("{}"); }
static bool rx_false(const void *st) { (void)st; return false; }
static uint8_t rx_policy(const void *st) { (void)st; return DRASI_RECOVERY_STRICT; }

static FfiStringArray rx_query_ids(const void *st)
{
    const Fx13Reaction *r = st;
    FfiStringArray out = {(FfiOwnedStr *)(uintptr_t)8, 0, 0};
    size_t n = 0;
    const char *p = r->query_ids_json;
    for (const char *q = p; *q; q++)
        n += *q == '"';
    n /= 2;
    if (n == 0)
        return out;
    FfiOwnedStr *data = calloc(n, sizeof *data);
    if (data == NULL)
        return out;
    size_t k = 0;
    while (k < n && (p = strchr(p, '"')) != NULL) {
        const char *end = strchr(p + 1, '"');
        if (end == NULL)
            break;
        char *s = fx13_strndup(p + 1, (size_t)(end - p - 1));
        data[k++] = fx13_owned(s ? s : "");
        free(s);
        p = end + 1;
    }
    out.data = data;
    out.len = k;
    out.cap = n;
    return out;
}

static FfiResult rx_start(void *st)
{
    Fx13Reaction *r = st;
    atomic_store(&r->status, FFI_COMPONENT_STATUS_RUNNING);
    fx13_lifecycle(&r->cbs, r->id, "reaction", FFI_LIFECYCLE_STARTED);
    return fx13_ok();
}

static FfiResult rx_stop(void *st)
{
    Fx13Reaction *r = st;
    atomic_store(&r->status, FFI_COMPONENT_STATUS_STOPPED);
    fx13_lifecycle(&r->cbs, r->id, "reaction", FFI_LIFECYCLE_STOPPED);
    return fx13_ok();
}

static FfiComponentStatus rx_status(const void *st)
{
    return (FfiComponentStatus)atomic_load(&((const Fx13Reaction *)st)->status);
}

static FfiResult rx_deprovision(void *st)
{
    atomic_store(&((Fx13Reaction *)st)->status, FFI_COMPONENT_STATUS_REMOVED);
    return fx13_ok();
}

static void rx_initialize(void *st, const FfiRuntimeContext *ctx)
{
    Fx13Reaction *r = st;
    r->cbs.lifecycle = ctx->lifecycle_callback;
    r->cbs.lifecycle_ctx = ctx->lifecycle_ctx;
    r->fetcher = ctx->snapshot_fetcher;
    if (ctx->identity_provider != NULL && !r->has_identity) {
        r->identity = *ctx->identity_provider;
        r->has_identity = true;
    }
    atomic_store(&r->status, FFI_COMPONENT_STATUS_ADDED);
}

static void rx_start_push(void *st, FfiResultPushCallbackFn cb, void *cb_ctx)
{
    Fx13Reaction *r = st;
    if (atomic_exchange(&r->push_started, true))
        return;
    r->cb = cb;
    r->cb_ctx = cb_ctx;
    atomic_fetch_add(&r->refs, 1);
    if (!fx13_spawn(rx_forwarder, r)) {
        FX13_ADD(exit_sentinels_sent, 1);
        cb(cb_ctx, DRASI_RESULT_PUSH_EXIT_SENTINEL);
        rx_unref(r);
    }
}

static FfiResult rx_bootstrap(void *st, const FfiBootstrapContext *ctx)
{
    (void)st, (void)ctx;
    return fx13_err(FX13_PREFIX "-reaction: no recovery support");
}

static void rx_drop(void *st)
{
    Fx13Reaction *r = st;
    if (r->fetcher != NULL && r->fetcher->drop_fn != NULL)
        r->fetcher->drop_fn(r->fetcher->state);
    if (r->has_identity) {
        r->identity.drop_fn(r->identity.state);
        FX13_ADD(foreign_identity_dropped, 1);
    }
    FX13_ADD(objects_dropped, 1);
    rx_unref(r);
}

static FfiCreateResult fx13_create_reaction(void *state, FfiStr id, FfiStr query_ids_json,
                                            FfiStr config_json, bool auto_start)
{
    char mode[32] = "normal";
    (void)state;
    fx13_cfg_str(config_json, "mode", mode, sizeof mode);
    if (FX13_MODE_IS(mode, "fail"))
        return fx13_create_error(FX13_PREFIX "-reaction: create refused: %s", "mode fail");
    if (FX13_MODE_IS(mode, "nullptr"))
        return fx13_created(NULL);
    Fx13Reaction *r = calloc(1, sizeof *r);
    ReactionVtable *vt = calloc(1, sizeof *vt);
    char *rid = fx13_strndup(id.ptr ? id.ptr : "", id.len);
    char *qids = fx13_strndup(query_ids_json.ptr ? query_ids_json.ptr : "", query_ids_json.len);
    if (r == NULL || vt == NULL || rid == NULL || qids == NULL) {
        free(r);
        free(vt);
        free(rid);
        free(qids);
        return fx13_create_error("%s", "out of memory");
    }
    atomic_init(&r->refs, 1);
    r->fnv = 0xcbf29ce484222325ULL;
    r->id = rid;
    r->query_ids_json = qids;
    r->auto_start = auto_start;
    snprintf(r->mode, sizeof r->mode, "%s", mode);
    atomic_init(&r->status, FFI_COMPONENT_STATUS_STOPPED);
    vt->state = r;
    vt->id_fn = rx_id;
    vt->type_name_fn = rx_type;
    vt->auto_start_fn = rx_auto_start;
    vt->query_ids_fn = rx_query_ids;
    vt->properties_fn = rx_properties;
    vt->start_fn = rx_start;
    vt->stop_fn = rx_stop;
    vt->status_fn = rx_status;
    vt->deprovision_fn = rx_deprovision;
    vt->initialize_fn = rx_initialize;
    vt->start_result_push_fn = rx_start_push;
    vt->is_durable_fn = rx_false;
    vt->needs_snapshot_on_fresh_start_fn = rx_false;
    vt->default_recovery_policy_fn = rx_policy;
    vt->bootstrap_fn = rx_bootstrap;
    vt->drop_fn = rx_drop;
    FX13_ADD(objects_created, 1);
    fx13_log(FFI_LOG_LEVEL_INFO, rid, "reaction created");
    return fx13_created(vt);
}

static FfiStr rf_kind(const void *s) { (void)s; return fx13_str(FX13_PREFIX "-reaction"); }
static FfiStr rf_version(const void *s) { (void)s; return fx13_str("1.0.0"); }
static FfiOwnedStr rf_schema(const void *s) { (void)s; return fx13_owned("{\"type\":\"object\"}"); }
static FfiStr rf_schema_name(const void *s) { (void)s; return fx13_str("fixture013.ReactionConfig"); }
static void rf_drop(void *s) { (void)s; FX13_ADD(factories_dropped, 1); }

void fx13_reaction_factory(ReactionPluginVtable *vt)
{
    vt->kind_fn = rf_kind;
    vt->config_version_fn = rf_version;
    vt->config_schema_json_fn = rf_schema;
    vt->config_schema_name_fn = rf_schema_name;
    vt->create_reaction_fn = fx13_create_reaction;
    vt->drop_fn = rf_drop;
}
