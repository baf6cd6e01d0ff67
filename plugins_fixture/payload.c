/*
 * payload.c - event payloads of the fixture plugins.
 *
 * A DrasiPayload is one malloc'd block: the public struct, a magic word that
 * is cleared on release (so a second release is detected and counted instead
 * of freeing twice), the routing hints, and the bytes they point to (the JSON
 * document, source id, label, entity id).  The routing hints of an event point
 * into that block, so they stay valid until the event's drop_fn(opaque).
 *
 * Opaque-payload plugins use an FxOpaqueBlob instead: a block that is not a
 * DrasiPayload, released by the event's drop_fn.
 */
#include "fixture.h"

#define FX_PAYLOAD_MAGIC UINT64_C(0x445241534950414c)
#define FX_OPAQUE_MAGIC UINT64_C(0x4f50415155454221)

typedef struct FxPayload {
    DrasiPayload pub; /* first: a DrasiPayload* is an FxPayload* */
    uint64_t magic;
    size_t storage_len;
    char storage[];
} FxPayload;

typedef struct FxOpaqueBlob {
    uint64_t magic;
    uint64_t index;
    char storage[];
} FxOpaqueBlob;

static void fx_payload_release(DrasiPayload *self) {
    FxPayload *p = (FxPayload *)self;
    if (__atomic_exchange_n(&p->magic, 0, __ATOMIC_SEQ_CST) != FX_PAYLOAD_MAGIC) {
        FX_STAT(double_release_detected);
        return;
    }
    FX_STAT(payloads_released);
    free(p);
}

void fx_event_drop_payload(void *opaque) {
    FX_STAT(events_released);
    DrasiPayload *d = opaque;
    d->drop_fn(d);
}

static void fx_event_drop_opaque(void *opaque) {
    FX_STAT(events_released);
    FxOpaqueBlob *b = opaque;
    if (__atomic_exchange_n(&b->magic, 0, __ATOMIC_SEQ_CST) != FX_OPAQUE_MAGIC) {
        FX_STAT(double_release_detected);
        return;
    }
    FX_STAT(payloads_released);
    free(b);
}

/* Copies the three hint strings after `at`, pointing *out at the copies. */
static void fx_copy_hints(char *at, const FxHints *in, FxHints *out) {
    const FfiStr *src[3] = {&in->source_id, &in->label, &in->entity_id};
    FfiStr *dst[3] = {&out->source_id, &out->label, &out->entity_id};
    for (int k = 0; k < 3; k++) {
        if (src[k]->len) memcpy(at, src[k]->ptr, src[k]->len);
        dst[k]->ptr = at;
        dst[k]->len = src[k]->len;
        at += src[k]->len;
    }
}

static size_t fx_hints_len(const FxHints *h) {
    return h->source_id.len + h->label.len + h->entity_id.len;
}

DrasiPayload *fx_raw_payload(const char *data, size_t len, const FxHints *in, FxHints *hints) {
    size_t n = len + fx_hints_len(in);
    FxPayload *p = fx_xmalloc(sizeof(FxPayload) + n + 1);
    p->magic = FX_PAYLOAD_MAGIC;
    p->storage_len = n;
    if (len) memcpy(p->storage, data, len);
    fx_copy_hints(p->storage + len, in, hints);
    p->storage[n] = '\0';
    p->pub.data = (const uint8_t *)p->storage;
    p->pub.len = len;
    p->pub.drop_fn = fx_payload_release;
    FX_STAT(payloads_created);
    return &p->pub;
}

static const char *const fx_op_names[3] = {"insert", "update", "delete"};

static void fx_ref(FxBuf *b, FfiStr source_id, const char *element_id) {
    fx_buf_puts(b, "{\"source_id\":");
    fx_buf_json_str(b, source_id.ptr, source_id.len);
    fx_buf_puts(b, ",\"element_id\":");
    fx_buf_json_str(b, element_id, strlen(element_id));
    fx_buf_puts(b, "}");
}

void fx_change_doc(FxBuf *b, const FxEventSpec *spec, char *element_id, size_t idlen,
                   bool *is_relation) {
    uint64_t i = spec->index;
    bool rel = spec->allow_relation && i % 4 == 3;
    int op = spec->op >= 0 && spec->op <= 2 ? spec->op : 0;
    snprintf(element_id, idlen, "%c%" PRIu64, rel ? 'r' : 'n', i);
    *is_relation = rel;
    fx_buf_puts(b, "{\"op\":\"");
    fx_buf_puts(b, fx_op_names[op]);
    fx_buf_puts(b, "\",\"element\":{\"type\":\"");
    fx_buf_puts(b, rel ? "relation" : "node");
    fx_buf_puts(b, "\",\"reference\":");
    fx_ref(b, spec->source_id, element_id);
    fx_buf_puts(b, ",\"labels\":[");
    if (rel)
        fx_buf_puts(b, "\"KNOWS\"");
    else
        fx_buf_json_str(b, spec->label.ptr, spec->label.len);
    fx_buf_printf(b, "],\"effective_from\":%" PRIu64, i);
    if (rel) {
        char in_id[32], out_id[32];
        snprintf(in_id, sizeof in_id, "n%" PRIu64, i - 1);
        snprintf(out_id, sizeof out_id, "n%" PRIu64, i - 2);
        fx_buf_puts(b, ",\"in_node\":");
        fx_ref(b, spec->source_id, in_id);
        fx_buf_puts(b, ",\"out_node\":");
        fx_ref(b, spec->source_id, out_id);
    }
    if (op != FFI_CHANGE_OP_DELETE) {
        fx_buf_printf(b,
                      ",\"properties\":{\"i\":%" PRIu64 ",\"name\":\"node-%" PRIu64
                      "\",\"even\":%s,\"score\":%.1f,\"tags\":[\"t%" PRIu64
                      "\"],\"nested\":{\"k\":\"v%" PRIu64 "\"}}",
                      i, i, i % 2 == 0 ? "true" : "false", (double)i / 2.0, i % 5, i);
    }
    fx_buf_puts(b, "}}");
}

void *fx_event_payload(const FxEventSpec *spec, FxHints *hints, void (**drop)(void *)) {
    char element_id[32];
    bool rel;
    FxBuf doc = {0};
    fx_change_doc(&doc, spec, element_id, sizeof element_id, &rel);
    FxHints in;
    in.source_id = spec->source_id;
    in.label = rel ? fx_str("KNOWS") : spec->label;
    in.entity_id = fx_str(element_id);
    void *opaque;
    if (spec->opaque) {
        size_t n = fx_hints_len(&in);
        FxOpaqueBlob *blob = fx_xmalloc(sizeof(FxOpaqueBlob) + n + 1);
        blob->magic = FX_OPAQUE_MAGIC;
        blob->index = spec->index;
        fx_copy_hints(blob->storage, &in, hints);
        blob->storage[n] = '\0';
        FX_STAT(payloads_created);
        opaque = blob;
        *drop = fx_event_drop_opaque;
    } else {
        opaque = fx_raw_payload(doc.p, doc.len, &in, hints);
        *drop = fx_event_drop_payload;
    }
    fx_buf_free(&doc);
    return opaque;
}

FfiSourceEvent *fx_source_event_new(const FxEventSpec *spec, int64_t timestamp_us) {
    FfiSourceEvent *ev = fx_xmalloc(sizeof *ev);
    FxHints h;
    ev->opaque = fx_event_payload(spec, &h, &ev->drop_fn);
    ev->source_id = h.source_id;
    ev->timestamp_us = timestamp_us;
    ev->op = (FfiChangeOp)spec->op;
    ev->label = h.label;
    ev->entity_id = h.entity_id;
    FX_STAT(events_created);
    return ev;
}

void fx_bootstrap_event_fill(FfiBootstrapEvent *ev, const FxEventSpec *spec, uint64_t sequence) {
    FxHints h;
    ev->opaque = fx_event_payload(spec, &h, &ev->drop_fn);
    ev->source_id = h.source_id;
    ev->timestamp_us = fx_now_us();
    ev->sequence = sequence;
    ev->label = h.label;
    ev->entity_id = h.entity_id;
    FX_STAT(events_created);
}

FfiOwnedStr fx_schema_owned(FxSchemaMode mode, const char *json) {
    FfiOwnedStr s;
    switch (mode) {
    case FX_SCHEMA_INVALID_JSON: return fx_owned("{not json", 9);
    case FX_SCHEMA_EMPTY:
        s.ptr = FX_DANGLING_1;
        s.len = 0;
        s.cap = 0;
        return s;
    case FX_SCHEMA_NORMAL: break;
    }
    return fx_owned(json, strlen(json));
}
