/* payloads013.c - the MessagePack documents the FFI 0.13 fixtures send
 * (ABI-0.13.md sections 12.2 and 12.3), written field by field. */
#include "fx013.h"

#include <stdio.h>
#include <stdlib.h>

static void w_ref(Mpw *w, const char *source_id, const char *element_id)
{
    mpw_map(w, 2);
    mpw_str(w, "source_id");
    mpw_str(w, source_id);
    mpw_str(w, "element_id");
    mpw_str(w, element_id);
}

static void w_meta(Mpw *w, const char *source_id, const char *id, const char *label,
                   uint64_t effective_from)
{
    mpw_map(w, 3);
    mpw_str(w, "reference");
    w_ref(w, source_id, id);
    mpw_str(w, "labels");
    mpw_array(w, 1);
    mpw_str(w, label);
    mpw_str(w, "effective_from");
    mpw_uint(w, effective_from);
}

static void w_tagged_str(Mpw *w, const char *tag, const char *value)
{
    mpw_map(w, 1);
    mpw_str(w, tag);
    mpw_str(w, value);
}

static void w_integer(Mpw *w, int64_t v, bool wrong_tags)
{
    mpw_map(w, 1);
    mpw_str(w, "Integer");
    if (wrong_tags)
        mpw_f64(w, (double)v + 0.25);
    else
        mpw_int(w, v);
}

/* {"values": {addr, age, name, score, tags, when}} - keys sorted */
static void w_person(Mpw *w, int64_t i, bool wrong_tags)
{
    char name[32];
    snprintf(name, sizeof name, "p%lld", (long long)i);
    mpw_map(w, 1);
    mpw_str(w, "values");
    mpw_map(w, 6);
    mpw_str(w, "addr");
    mpw_map(w, 1);
    mpw_str(w, "Object");
    mpw_map(w, 1);
    mpw_str(w, "values");
    mpw_map(w, 1);
    mpw_str(w, "city");
    w_tagged_str(w, "String", "Oslo");
    mpw_str(w, "age");
    w_integer(w, i, wrong_tags);
    mpw_str(w, "name");
    w_tagged_str(w, "String", name);
    mpw_str(w, "score");
    mpw_map(w, 1);
    mpw_str(w, "Float");
    mpw_f64(w, (double)i + 0.5);
    mpw_str(w, "tags");
    mpw_map(w, 1);
    mpw_str(w, "List");
    mpw_array(w, 2);
    w_integer(w, 1, false);
    mpw_str(w, "Null");
    mpw_str(w, "when");
    w_tagged_str(w, "LocalDateTime", "2024-06-15T13:45:30");
}

static void w_node(Mpw *w, const char *source_id, const char *id, const char *label,
                   int64_t i, bool wrong_tags)
{
    mpw_map(w, 1);
    mpw_str(w, "Node");
    mpw_map(w, 2);
    mpw_str(w, "metadata");
    w_meta(w, source_id, id, label, 1700000000000ULL + (uint64_t)i);
    mpw_str(w, "properties");
    w_person(w, i, wrong_tags);
}

static void w_change(Mpw *w, const char *source_id, int64_t i, bool wrong_tags)
{
    char id[32], other[32];
    int64_t phase = i % 4;
    int64_t base = i - phase;
    snprintf(id, sizeof id, "n%lld", (long long)base);
    mpw_map(w, 1);
    if (phase == 0 || phase == 1) {
        mpw_str(w, phase == 0 ? "Insert" : "Update");
        mpw_map(w, 1);
        mpw_str(w, "element");
        w_node(w, source_id, id, "Person", i, wrong_tags);
    } else if (phase == 2) {
        snprintf(other, sizeof other, "r%lld", (long long)i);
        mpw_str(w, "Insert");
        mpw_map(w, 1);
        mpw_str(w, "element");
        mpw_map(w, 1);
        mpw_str(w, "Relation");
        mpw_map(w, 4);
        mpw_str(w, "metadata");
        w_meta(w, source_id, other, "KNOWS", 1700000000000ULL + (uint64_t)i);
        mpw_str(w, "in_node");
        w_ref(w, source_id, id);
        mpw_str(w, "out_node");
        w_ref(w, source_id, id);
        mpw_str(w, "properties");
        mpw_map(w, 1);
        mpw_str(w, "values");
        mpw_map(w, 1);
        mpw_str(w, "since");
        w_tagged_str(w, "ZonedDateTime", "2024-06-15T13:45:30+02:00");
    } else {
        mpw_str(w, "Delete");
        mpw_map(w, 1);
        mpw_str(w, "metadata");
        w_meta(w, source_id, id, "Person", 1700000000000ULL + (uint64_t)i);
    }
}

static uint8_t *fx13_finish(Mpw *w, size_t *len)
{
    uint8_t *out = mpw_take(w, len);
    if (out != NULL)
        FX13_ADD(payloads_created, 1);
    return out;
}

uint8_t *fx13_event_payload(const char *source_id, int64_t i, char kind, bool wrong_tags,
                            size_t *len)
{
    Mpw w;
    mpw_init(&w);
    mpw_map(&w, 5);
    mpw_str(&w, "source_id");
    mpw_str(&w, source_id);
    mpw_str(&w, "event");
    mpw_map(&w, 1);
    if (kind == 'd') {
        mpw_str(&w, "Control");
        mpw_str(&w, "FuturesDue");
    } else if (kind == 'f') {
        mpw_str(&w, "Change");
        mpw_map(&w, 1);
        mpw_str(&w, "Future");
        mpw_map(&w, 1);
        mpw_str(&w, "future_ref");
        mpw_map(&w, 4);
        mpw_str(&w, "element_ref");
        w_ref(&w, source_id, "n0");
        mpw_str(&w, "original_time");
        mpw_uint(&w, 1700000000000ULL);
        mpw_str(&w, "due_time");
        mpw_uint(&w, 1700000060000ULL);
        mpw_str(&w, "group_signature");
        mpw_uint(&w, 0xfeedfacecafebeefULL);
    } else {
        mpw_str(&w, "Change");
        w_change(&w, source_id, i, wrong_tags);
    }
    mpw_str(&w, "timestamp_us");
    mpw_int(&w, 1700000000000000LL + i);
    mpw_str(&w, "sequence");
    mpw_uint(&w, (uint64_t)i + 1);
    mpw_str(&w, "source_position");
    if (i % 2 == 0) {
        mpw_nil(&w);
    } else {
        mpw_array(&w, 2);
        mpw_uint(&w, (uint64_t)(i & 0xff));
        mpw_uint(&w, 0xff);
    }
    return fx13_finish(&w, len);
}

uint8_t *fx13_bootstrap_payload(const char *source_id, int64_t i, bool wrong_tags, size_t *len)
{
    char id[32];
    snprintf(id, sizeof id, "b%lld", (long long)i);
    Mpw w;
    mpw_init(&w);
    mpw_map(&w, 4);
    mpw_str(&w, "source_id");
    mpw_str(&w, source_id);
    mpw_str(&w, "change");
    mpw_map(&w, 1);
    mpw_str(&w, "Insert");
    mpw_map(&w, 1);
    mpw_str(&w, "element");
    mpw_map(&w, 1);
    mpw_str(&w, "Node");
    mpw_map(&w, 2);
    mpw_str(&w, "metadata");
    w_meta(&w, source_id, id, "Boot", 0);
    mpw_str(&w, "properties");
    mpw_map(&w, 1);
    mpw_str(&w, "values");
    mpw_map(&w, 1);
    mpw_str(&w, "i");
    w_integer(&w, i, wrong_tags);
    mpw_str(&w, "timestamp_us");
    mpw_int(&w, 1700000000000000LL);
    mpw_str(&w, "sequence");
    mpw_uint(&w, (uint64_t)i + 1);
    return fx13_finish(&w, len);
}

static const uint8_t fx13_static_junk[4] = {0x93, 0x01, 0x02, 0x03};

bool fx13_hostile_payload(const char *mode, const uint8_t **ptr, size_t *len,
                          FfiBytesDropFn *drop)
{
    if (FX13_MODE_IS(mode, "badmsgpack") || FX13_MODE_IS(mode, "oversize")) {
        uint8_t *buf = malloc(16);
        if (buf == NULL)
            return false;
        memset(buf, 0, 16);
        buf[0] = 0xc1; /* never used by MessagePack */
        buf[1] = 0xdf; /* a map32 header cut short */
        FX13_ADD(payloads_created, 1);
        *ptr = buf;
        *len = FX13_MODE_IS(mode, "oversize") ? (size_t)DRASI_MAX_FFI_PAYLOAD_BYTES + 1 : 2;
        *drop = fx13_payload_drop;
        return true;
    }
    if (FX13_MODE_IS(mode, "nulldrop")) {
        *ptr = fx13_static_junk; /* static: "leaking" it is harmless */
        *len = sizeof fx13_static_junk;
        *drop = NULL;
        return true;
    }
    if (FX13_MODE_IS(mode, "nullpayload")) {
        *ptr = NULL;
        *len = 0;
        *drop = fx13_payload_drop;
        return true;
    }
    return false;
}
