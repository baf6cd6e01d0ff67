/*
 * bootstrap.c - the generic fixture bootstrap provider (kinds "fixture",
 * "multi-b1", "multi-b2").
 *
 * bootstrap_fn sends `count` insert records of nodes through the caller's
 * sender.  The envelope lives on this function's stack (send_fn borrows it);
 * the payload is always taken by the receiver (ABI: send_fn takes the
 * payload, also when it answers non-zero because the receiving side is
 * closed; the host releases a refused payload).  On non-zero the count sent
 * so far is returned.
 */
#include "fixture.h"

typedef struct FxProvider {
    const FxBootstrapKind *kind;
    int64_t count;
    bool fail;
    char *label; /* NULL: first requested node label, else "Person" */
    size_t label_len;
} FxProvider;

static int64_t fx_p_bootstrap(void *state, FfiStr query_id, const FfiStr *node_labels,
                              size_t node_labels_count, const FfiStr *relation_labels,
                              size_t relation_labels_count, FfiStr request_id, FfiStr server_id,
                              FfiStr source_id, FfiBootstrapSender *sender) {
    FxProvider *p = state;
    (void)relation_labels;
    fx_global_log(FFI_LOG_LEVEL_INFO, p->kind->kind, "fixture::bootstrap",
                  "bootstrap query '%.*s' request '%.*s' server '%.*s' source '%.*s' "
                  "(%zu node labels, %zu relation labels)",
                  (int)query_id.len, query_id.len ? query_id.ptr : "", (int)request_id.len,
                  request_id.len ? request_id.ptr : "", (int)server_id.len,
                  server_id.len ? server_id.ptr : "", (int)source_id.len,
                  source_id.len ? source_id.ptr : "", node_labels_count, relation_labels_count);
    if (p->fail) {
        fx_global_log(FFI_LOG_LEVEL_ERROR, p->kind->kind, "fixture::bootstrap",
                      "bootstrap failed: 'fail' is set");
        return -1;
    }
    FfiStr label;
    if (p->label)
        label = fx_strn(p->label, p->label_len);
    else if (node_labels_count > 0)
        label = node_labels[0];
    else
        label = fx_str("Person");
    int64_t sent = 0;
    for (int64_t i = 0; i < p->count; i++) {
        FxEventSpec spec;
        spec.index = (uint64_t)i;
        spec.op = FFI_CHANGE_OP_INSERT;
        spec.source_id = source_id;
        spec.label = label;
        spec.allow_relation = false;
        spec.opaque = false;
        FfiBootstrapEvent ev;
        fx_bootstrap_event_fill(&ev, &spec, (uint64_t)i);
        if (sender->send_fn(sender->state, &ev) != 0) {
            /* the payload was taken (and released) by the receiver */
            fx_global_log(FFI_LOG_LEVEL_INFO, p->kind->kind, "fixture::bootstrap",
                          "receiver closed after %" PRId64 " records", sent);
            return sent;
        }
        sent++;
    }
    return sent;
}

static void fx_p_drop(void *state) {
    FxProvider *p = state;
    free(p->label);
    free(p);
    FX_STAT(providers_dropped);
}

/* ---- factory ------------------------------------------------------------------ */

static FfiStr fx_bf_kind(const void *state) {
    return fx_str(((const FxBootstrapKind *)state)->kind);
}
static FfiStr fx_bf_version(const void *state) {
    (void)state;
    return fx_str("1.0.0");
}
static FfiStr fx_bf_schema_name(const void *state) {
    return fx_str(((const FxBootstrapKind *)state)->schema_name);
}

static FfiOwnedStr fx_bf_schema(const void *state) {
    const FxBootstrapKind *k = state;
    FxBuf b = {0};
    fx_buf_puts(&b, "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"title\":");
    fx_buf_json_str(&b, k->schema_name, strlen(k->schema_name));
    fx_buf_puts(&b, ",\"type\":\"object\",\"properties\":{"
                    "\"count\":{\"type\":\"integer\",\"minimum\":0,\"default\":5,"
                    "\"description\":\"number of insert records sent per bootstrap\"},"
                    "\"fail\":{\"type\":\"boolean\",\"default\":false},"
                    "\"label\":{\"type\":\"string\","
                    "\"description\":\"node label (default: first requested label, else Person)\"}"
                    "}}");
    FfiOwnedStr s = fx_owned(b.p, b.len);
    fx_buf_free(&b);
    return s;
}

static BootstrapProviderVtable *fx_bf_create(void *state, FfiStr config_json,
                                             FfiStr source_config_json) {
    const FxBootstrapKind *k = state;
    char err[256] = {0};
    FxProvider *p = fx_xcalloc(1, sizeof *p);
    p->kind = k;
    FxJson *cfg = fx_config_parse(config_json, err, sizeof err);
    bool ok = cfg && fx_cfg_int(cfg, "count", 5, 0, &p->count, err, sizeof err) &&
              fx_cfg_bool(cfg, "fail", false, &p->fail, err, sizeof err) &&
              fx_cfg_str(cfg, "label", NULL, &p->label, &p->label_len, err, sizeof err);
    fx_json_free(cfg);
    if (!ok) {
        fx_global_log(FFI_LOG_LEVEL_ERROR, k->kind, "fixture::bootstrap",
                      "invalid configuration for bootstrap provider: %s", err);
        FX_STAT(config_errors);
        free(p->label);
        free(p);
        return NULL;
    }
    BootstrapProviderVtable *vt = fx_xmalloc(sizeof *vt);
    vt->state = p;
    vt->executor = NULL;
    vt->bootstrap_fn = fx_p_bootstrap;
    vt->drop_fn = fx_p_drop;
    FX_STAT(providers_created);
    fx_global_log(FFI_LOG_LEVEL_INFO, k->kind, "fixture::bootstrap",
                  "created bootstrap provider (count %" PRId64 ", source config %zu bytes)",
                  p->count, source_config_json.len);
    return vt;
}

static void fx_bf_drop(void *state) {
    (void)state;
    FX_STAT(factories_dropped);
}

BootstrapPluginVtable fx_bootstrap_factory(const FxBootstrapKind *kind) {
    BootstrapPluginVtable f;
    f.state = (void *)kind;
    f.executor = NULL;
    f.kind_fn = fx_bf_kind;
    f.config_version_fn = fx_bf_version;
    f.config_schema_json_fn = fx_bf_schema;
    f.config_schema_name_fn = fx_bf_schema_name;
    f.create_bootstrap_provider_fn = fx_bf_create;
    f.drop_fn = fx_bf_drop;
    return f;
}
