/*
 * channels.c - the channels of drasi_host._ffi: plugin events to Python and
 * query results to plugins, without the GIL.
 *
 * A plugin never sees a channel's address: its callback context is a 64-bit
 * key (slot index + generation) looked up in a slot table whose memory is
 * never freed, so a late call naming a released channel is recognised,
 * refused and its event released here.
 *
 * Event channels (source and bootstrap events) copy on push.  The plugin's
 * thread, inside the push callback, reads every field of the envelope and
 * every length exactly once, copies the routing hints and the payload bytes
 * into the channel's fill buffer (fixed-size records plus one byte arena),
 * and releases the event right there: drop_fn(opaque), free(envelope).  The
 * event loop takes the whole fill buffer in O(1) (dh_events_take swaps it
 * with the buffer it took last time) and builds Python objects from it.
 * The fill buffer is bounded by events and by bytes; a push that does not
 * fit blocks the plugin's thread (never a Python thread) until the consumer
 * takes the buffer or the channel closes.  Records that break the ABI
 * (NULL payload, oversize payload, bad hint) are queued as flagged records,
 * in order, so Python reports them where they occurred.
 *
 * Result channels are bounded rings of host-built DrasiPayloads that a
 * reaction plugin's thread pulls (blocking).  A push from Python does not
 * wake a sleeping puller for every result: it wakes it once enough results
 * are queued, and otherwise tells the caller to wake it at the end of its
 * event-loop tick (dh_results_wake), so no result is left unannounced.
 *
 * Python waits on a socket a channel writes one byte to when an armed
 * consumer (or a producer waiting for space) should look again.
 *
 * Channels of FFI 0.13 components (DH_CHAN_ABI013) work the same way.  Their
 * events come in through the entries of chanops.h, called by the 0.13
 * callbacks of drasi_host._ffi013 (which alone know the 0.13 envelopes):
 * the MessagePack payload is copied as the record's payload, with no routing
 * hints; Python decodes it.  A 0.13 bootstrap channel also keeps the
 * end-of-bootstrap result (dh_bootstrap_outcome).  A 0.13 result channel
 * queues 0.13 FfiQueryResult envelopes made by the function
 * dh_results_set_envelope013 installed, and records the exit sentinel of the
 * reaction's forwarder (dh_result_pull013, dh_results_wait_exited).
 */
#define DRASI_HOST_BUILD 1
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* PTHREAD_MUTEX_ADAPTIVE_NP */
#endif
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "drasi_plugin.h"
#include "chanops.h"
#include "host.h"

#define DH_CHUNK_SLOTS 1024u
#define DH_MAX_CHUNKS 256u

/* Slot states. */
#define DH_FREE 0
#define DH_OPEN 1
#define DH_CLOSED 2

/* Upper bound of a channel's byte bound and payload size, so that an arena
 * (bytes queued + one event) stays below 4 GiB and record offsets fit. */
#define DH_MAX_CHANNEL_BYTES ((size_t)1 << 30)

/* Records preallocated per event buffer (grown up to the capacity). */
#define DH_INITIAL_RECORDS 256u

typedef struct dh_evbuf {
    DhEventRecord *recs;
    size_t nrec, rec_cap;
    uint8_t *hints;
    size_t nhints, hints_cap;
    uint8_t *payloads;
    size_t npayloads, payloads_cap;
    size_t flagged;
} dh_evbuf;

typedef struct dh_slot {
    pthread_mutex_t mu;
    pthread_cond_t not_empty; /* result pullers wait here */
    pthread_cond_t not_full;  /* event producers wait here */
    uint32_t generation;
    int state;
    int kind;
    int flags;
    size_t cap;          /* events or results */
    size_t max_bytes;    /* event bytes queued (hints + payloads) */
    uint64_t max_payload;
    /* results */
    void **ring;
    size_t head, count;
    size_t wake_at;      /* results queued before a sleeping puller is woken */
    int pullers_waiting;
    /* events */
    dh_evbuf fill, taken;
    int eos;
    int notify_fd;
    int consumer_waiting;
    int producer_waiting;
    uint64_t pushed;
    uint64_t rejected;
    /* 0.13 results: the forwarder's exit sentinel has arrived */
    int exited;
    /* 0.13 bootstrap: the end-of-bootstrap result (DH_OUTCOME_*) */
    int outcome_state;
    int64_t outcome_count;
    uint8_t *outcome_position;
    size_t outcome_position_len;
    uint8_t *outcome_error;
    size_t outcome_error_len;
    int outcome_position_dropped;
    int outcome_error_truncated;
} dh_slot;

/* The 0.13 result envelope functions (dh_results_set_envelope013). */
static DhResultMakeFn dh_result013_make;
static DhResultFreeFn dh_result013_free;

static pthread_mutex_t dh_table_mu = PTHREAD_MUTEX_INITIALIZER;
static dh_slot *dh_chunks[DH_MAX_CHUNKS];
static uint32_t *dh_free_list;
static size_t dh_free_count, dh_free_cap, dh_slot_total;

static dh_slot *dh_slot_at(uint32_t index) {
    dh_slot *chunk = __atomic_load_n(&dh_chunks[index / DH_CHUNK_SLOTS], __ATOMIC_ACQUIRE);
    return chunk ? &chunk[index % DH_CHUNK_SLOTS] : NULL;
}

/* Lock and return the slot a key names, or NULL when the key is stale. */
static dh_slot *dh_lookup(uint64_t key, uint32_t *gen_out) {
    uint32_t index = (uint32_t)(key & 0xffffffffu);
    uint32_t gen = (uint32_t)(key >> 32);
    if (index == 0 || index > DH_CHUNK_SLOTS * DH_MAX_CHUNKS) return NULL;
    dh_slot *s = dh_slot_at(index - 1);
    if (!s) return NULL;
    pthread_mutex_lock(&s->mu);
    if (s->generation != gen || s->state == DH_FREE) {
        pthread_mutex_unlock(&s->mu);
        return NULL;
    }
    if (gen_out) *gen_out = gen;
    return s;
}

static void dh_notify(dh_slot *s) {
    if (s->notify_fd >= 0) {
        char b = 1;
        ssize_t r;
        do { r = send(s->notify_fd, &b, 1, MSG_DONTWAIT); } while (r < 0 && errno == EINTR);
    }
}

static void dh_evbuf_free(dh_evbuf *b) {
    free(b->recs);
    free(b->hints);
    free(b->payloads);
    memset(b, 0, sizeof *b);
}

uint64_t dh_chan_new(int kind, int flags, size_t capacity, size_t max_bytes,
                     uint64_t max_payload, int notify_fd) {
    if (kind != DH_KIND_SOURCE_EVENTS && kind != DH_KIND_BOOTSTRAP_EVENTS &&
        kind != DH_KIND_RESULTS)
        return DH_NO_CHANNEL;
    if (capacity == 0) capacity = 1;
    if (max_bytes == 0) max_bytes = 1;
    if (max_bytes > DH_MAX_CHANNEL_BYTES) max_bytes = DH_MAX_CHANNEL_BYTES;
    if (max_payload > DH_MAX_CHANNEL_BYTES) max_payload = DH_MAX_CHANNEL_BYTES;
    void **ring = NULL;
    if (flags & DH_CHAN_ABI013) {
        if (kind == DH_KIND_RESULTS &&
            (!__atomic_load_n(&dh_result013_make, __ATOMIC_ACQUIRE) ||
             !__atomic_load_n(&dh_result013_free, __ATOMIC_ACQUIRE)))
            return DH_NO_CHANNEL; /* drasi_host._abi013 not imported */
        if (max_payload > DH_MAX_FFI_PAYLOAD_BYTES) max_payload = DH_MAX_FFI_PAYLOAD_BYTES;
    }
    if (kind == DH_KIND_RESULTS) {
        ring = calloc(capacity, sizeof(void *));
        if (!ring) return DH_NO_CHANNEL;
    }
    pthread_mutex_lock(&dh_table_mu);
    uint32_t index;
    if (dh_free_count > 0) {
        index = dh_free_list[--dh_free_count];
    } else {
        if (dh_slot_total >= (size_t)DH_CHUNK_SLOTS * DH_MAX_CHUNKS) {
            pthread_mutex_unlock(&dh_table_mu);
            free(ring);
            return DH_NO_CHANNEL;
        }
        index = (uint32_t)dh_slot_total;
        if (index % DH_CHUNK_SLOTS == 0) {
            dh_slot *chunk = calloc(DH_CHUNK_SLOTS, sizeof(dh_slot));
            if (!chunk) {
                pthread_mutex_unlock(&dh_table_mu);
                free(ring);
                return DH_NO_CHANNEL;
            }
            /* Both sides hold a channel's lock for a few dozen instructions:
             * spin a little before sleeping, where the platform can. */
            pthread_mutexattr_t attr;
            pthread_mutexattr_init(&attr);
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
            pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
            for (size_t i = 0; i < DH_CHUNK_SLOTS; i++) {
                pthread_mutex_init(&chunk[i].mu, &attr);
                pthread_cond_init(&chunk[i].not_empty, NULL);
                pthread_cond_init(&chunk[i].not_full, NULL);
                chunk[i].notify_fd = -1;
            }
            pthread_mutexattr_destroy(&attr);
            __atomic_store_n(&dh_chunks[index / DH_CHUNK_SLOTS], chunk, __ATOMIC_RELEASE);
        }
        dh_slot_total++;
    }
    pthread_mutex_unlock(&dh_table_mu);

    dh_slot *s = dh_slot_at(index);
    pthread_mutex_lock(&s->mu);
    s->generation++;
    if (s->generation == 0) s->generation = 1;
    s->state = DH_OPEN;
    s->kind = kind;
    s->flags = flags;
    s->cap = capacity;
    s->max_bytes = max_bytes;
    s->max_payload = max_payload;
    s->ring = ring;
    s->head = s->count = 0;
    s->wake_at = (capacity + 3) / 4; /* a quarter full: few wake-ups, room to spare */
    s->pullers_waiting = 0;
    memset(&s->fill, 0, sizeof s->fill);
    memset(&s->taken, 0, sizeof s->taken);
    s->eos = 0;
    s->notify_fd = notify_fd;
    s->consumer_waiting = s->producer_waiting = 0;
    s->pushed = s->rejected = 0;
    s->exited = 0;
    s->outcome_state = DH_OUTCOME_PENDING;
    s->outcome_count = 0;
    s->outcome_position = s->outcome_error = NULL;
    s->outcome_position_len = s->outcome_error_len = 0;
    s->outcome_position_dropped = s->outcome_error_truncated = 0;
    uint64_t key = ((uint64_t)s->generation << 32) | (uint64_t)(index + 1);
    pthread_mutex_unlock(&s->mu);
    return key;
}

static void dh_result_free(void *item) {
    DrasiPayload *p = item;
    if (p && p->drop_fn) p->drop_fn(p);
}

/* Close: refuse further pushes (blocked producers return false at once),
 * make pulls return NULL, and wake the consumer. */
void dh_chan_close(uint64_t key) {
    dh_slot *s = dh_lookup(key, NULL);
    if (!s) return;
    s->state = DH_CLOSED;
    pthread_cond_broadcast(&s->not_full);
    pthread_cond_broadcast(&s->not_empty);
    dh_notify(s);
    pthread_mutex_unlock(&s->mu);
}

/* Close (as dh_chan_close does), free what is queued, and free the slot
 * for reuse.  Any later call naming this key is treated as unknown, and the
 * notify descriptor is never written again once this returns. */
void dh_chan_release(uint64_t key) {
    dh_slot *s = dh_lookup(key, NULL);
    if (!s) return;
    s->state = DH_CLOSED; /* woken producers are refused from here on */
    pthread_cond_broadcast(&s->not_full);
    pthread_cond_broadcast(&s->not_empty);
    void **ring = s->ring;
    size_t head = s->head, count = s->count, cap = s->cap;
    dh_evbuf fill = s->fill, taken = s->taken;
    int abi013 = (s->flags & DH_CHAN_ABI013) != 0;
    uint8_t *outcome_position = s->outcome_position, *outcome_error = s->outcome_error;
    s->outcome_position = s->outcome_error = NULL;
    s->ring = NULL;
    s->cap = s->count = s->head = 0;
    memset(&s->fill, 0, sizeof s->fill);
    memset(&s->taken, 0, sizeof s->taken);
    s->state = DH_FREE;
    s->notify_fd = -1;
    s->generation++;
    if (s->generation == 0) s->generation = 1;
    uint32_t index = (uint32_t)(key & 0xffffffffu) - 1;
    pthread_mutex_unlock(&s->mu);

    /* The slot no longer refers to these: release them outside the lock. */
    if (abi013) {
        DhResultFreeFn free_item = __atomic_load_n(&dh_result013_free, __ATOMIC_ACQUIRE);
        for (size_t i = 0; i < count; i++) free_item(ring[(head + i) % cap]);
    } else {
        for (size_t i = 0; i < count; i++) dh_result_free(ring[(head + i) % cap]);
    }
    free(ring);
    free(outcome_position);
    free(outcome_error);
    dh_evbuf_free(&fill);
    dh_evbuf_free(&taken);

    pthread_mutex_lock(&dh_table_mu);
    if (dh_free_count == dh_free_cap) {
        size_t ncap = dh_free_cap ? dh_free_cap * 2 : 64;
        uint32_t *nl = realloc(dh_free_list, ncap * sizeof(uint32_t));
        if (nl) {
            dh_free_list = nl;
            dh_free_cap = ncap;
        }
    }
    if (dh_free_count < dh_free_cap) dh_free_list[dh_free_count++] = index;
    pthread_mutex_unlock(&dh_table_mu);
}

static size_t dh_queued(const dh_slot *s) {
    return s->kind == DH_KIND_RESULTS ? s->count : s->fill.nrec;
}

int dh_chan_stats(uint64_t key, DhChanStats *out) {
    dh_slot *s = dh_lookup(key, NULL);
    if (!s) return DH_UNKNOWN;
    out->queued = dh_queued(s);
    out->capacity = s->cap;
    out->queued_bytes = s->kind == DH_KIND_RESULTS ? 0 : s->fill.nhints + s->fill.npayloads;
    out->max_bytes = s->kind == DH_KIND_RESULTS ? 0 : s->max_bytes;
    out->pushed = s->pushed;
    out->rejected = s->rejected;
    out->eos = s->eos;
    out->closed = s->state != DH_OPEN;
    pthread_mutex_unlock(&s->mu);
    return DH_OK;
}

/* Ask to be woken through the notify socket when there is something to take.
 * DH_READY when the caller should not wait (events queued, ended, closed or
 * unknown), DH_ARMED otherwise. */
int dh_chan_arm_consumer(uint64_t key) {
    dh_slot *s = dh_lookup(key, NULL);
    if (!s) return DH_READY;
    int ready = dh_queued(s) > 0 || s->eos || s->state != DH_OPEN;
    if (!ready) s->consumer_waiting = 1;
    pthread_mutex_unlock(&s->mu);
    return ready ? DH_READY : DH_ARMED;
}

/* ---- plugin -> host events: copy on push -------------------------------- */

/* One pushed event, read out of its envelope exactly once. */
typedef struct dh_incoming {
    FfiStr hints[3]; /* source_id, label, entity_id */
    int64_t timestamp_us;
    uint64_t sequence;
    int32_t op;
    void *opaque;
    void (*drop_fn)(void *);
    /* 0.13: the MessagePack payload, borrowed (raw set; opaque, drop_fn NULL) */
    int raw;
    const uint8_t *raw_data;
    size_t raw_len;
} dh_incoming;

static void dh_incoming_release(dh_incoming *in) {
    if (in->drop_fn) in->drop_fn(in->opaque);
}

static int dh_grow(void **p, size_t *cap, size_t need, size_t unit) {
    if (need <= *cap) return 1;
    size_t ncap = *cap ? *cap : 1;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / unit) return 0;
        ncap *= 2;
    }
    void *np = realloc(*p, ncap * unit);
    if (!np) return 0;
    *p = np;
    *cap = ncap;
    return 1;
}

/* Copy one event into the channel (blocking while it does not fit) and
 * release it.  Returns true when the channel took it. */
static bool dh_event_push(uint64_t key, int kind, dh_incoming *in) {
    uint32_t gen;
    dh_slot *s = dh_lookup(key, &gen);
    if (!s) goto refused;
    if (s->kind != kind || ((s->flags & DH_CHAN_ABI013) != 0) != (in->raw != 0)) {
        s->rejected++;
        pthread_mutex_unlock(&s->mu);
        goto refused;
    }
    /* Validate and measure, reading each plugin-provided length once. */
    DhEventRecord rec;
    memset(&rec, 0, sizeof rec);
    rec.timestamp_us = in->timestamp_us;
    rec.sequence = in->sequence;
    rec.op = in->op;
    if (kind == DH_KIND_SOURCE_EVENTS && (rec.op < 0 || rec.op > 2)) rec.flags |= DH_REC_BAD_OP;
    size_t hl[3];
    for (int h = 0; h < 3; h++) {
        size_t len = in->hints[h].len;
        if (len > DH_MAX_HINT_LEN || (len && !in->hints[h].ptr)) {
            rec.flags |= DH_REC_BAD_HINT;
            len = 0;
        }
        hl[h] = len;
    }
    rec.source_id_len = (uint32_t)hl[0];
    rec.label_len = (uint32_t)hl[1];
    rec.entity_id_len = (uint32_t)hl[2];
    const uint8_t *pdata = NULL;
    size_t plen = 0;
    if (s->flags & DH_CHAN_DRASI_PAYLOAD) {
        DrasiPayload *p = in->opaque;
        if (!p) {
            rec.flags |= DH_REC_NULL_PAYLOAD;
        } else {
            size_t len = __atomic_load_n(&p->len, __ATOMIC_RELAXED);
            const uint8_t *data = __atomic_load_n(&p->data, __ATOMIC_RELAXED);
            if ((uint64_t)len > s->max_payload) {
                rec.flags |= DH_REC_OVERSIZE;
                rec.payload_len = len;
            } else if (len && !data) {
                rec.flags |= DH_REC_NULL_PAYLOAD;
            } else {
                rec.flags |= DH_REC_HAS_PAYLOAD;
                pdata = data;
                plen = len;
                rec.payload_len = len;
            }
        }
    } else if (in->raw) {
        size_t len = in->raw_len;
        if (!in->raw_data || len == 0) {
            rec.flags |= DH_REC_NULL_PAYLOAD;
            rec.payload_len = len;
        } else if ((uint64_t)len > s->max_payload) {
            rec.flags |= DH_REC_OVERSIZE;
            rec.payload_len = len;
        } else {
            rec.flags |= DH_REC_HAS_PAYLOAD;
            pdata = in->raw_data;
            plen = len;
            rec.payload_len = len;
        }
    }
    size_t hneed = hl[0] + hl[1] + hl[2] + 3; /* each hint ends with a NUL */
    size_t need = hneed + plen;

    /* Wait for room: by events, and by bytes unless the buffer is empty (an
     * event larger than the byte bound still passes alone). */
    while (s->state == DH_OPEN && !s->eos &&
           (s->fill.nrec >= s->cap ||
            (s->fill.nrec > 0 && s->fill.nhints + s->fill.npayloads + need > s->max_bytes))) {
        s->producer_waiting++;
        pthread_cond_wait(&s->not_full, &s->mu);
        if (s->generation != gen) { /* released while waiting: the slot is not ours */
            pthread_mutex_unlock(&s->mu);
            goto refused;
        }
        s->producer_waiting--;
    }
    if (s->state != DH_OPEN || s->eos) {
        s->rejected++;
        pthread_mutex_unlock(&s->mu);
        goto refused;
    }
    dh_evbuf *b = &s->fill;
    size_t want_recs = b->nrec + 1;
    if (want_recs < DH_INITIAL_RECORDS && s->cap >= DH_INITIAL_RECORDS)
        want_recs = DH_INITIAL_RECORDS;
    if (!dh_grow((void **)&b->recs, &b->rec_cap, want_recs, sizeof(DhEventRecord)) ||
        !dh_grow((void **)&b->hints, &b->hints_cap, b->nhints + hneed, 1) ||
        !dh_grow((void **)&b->payloads, &b->payloads_cap, b->npayloads + plen, 1)) {
        /* Out of memory: keep the record, flagged, without its hints or payload. */
        rec.flags = (rec.flags & ~(uint32_t)DH_REC_HAS_PAYLOAD) | DH_REC_NO_MEMORY;
        hl[0] = hl[1] = hl[2] = plen = 0;
        rec.source_id_len = rec.label_len = rec.entity_id_len = 0;
        hneed = 3;
        if (!dh_grow((void **)&b->recs, &b->rec_cap, b->nrec + 1, sizeof(DhEventRecord)) ||
            !dh_grow((void **)&b->hints, &b->hints_cap, b->nhints + hneed, 1)) {
            s->rejected++;
            pthread_mutex_unlock(&s->mu);
            goto refused;
        }
    }
    rec.hint_offset = (uint32_t)b->nhints;
    rec.payload_offset = (uint32_t)b->npayloads;
    /* Hints are copied as they are: the consumer finds NUL bytes inside
     * them (more NULs than three per record) off the plugin's thread. */
    uint8_t *dst = b->hints + b->nhints;
    for (int h = 0; h < 3; h++) {
        if (hl[h]) memcpy(dst, in->hints[h].ptr, hl[h]);
        dst[hl[h]] = 0;
        dst += hl[h] + 1;
    }
    if (plen) memcpy(b->payloads + b->npayloads, pdata, plen);
    b->nhints += hneed;
    b->npayloads += plen;
    if (rec.flags & DH_REC_ERRORS) b->flagged++;
    b->recs[b->nrec++] = rec;
    s->pushed++;
    if (s->consumer_waiting) {
        s->consumer_waiting = 0;
        dh_notify(s);
    }
    pthread_mutex_unlock(&s->mu);
    dh_incoming_release(in);
    return true;

refused:
    dh_incoming_release(in);
    return false;
}

static void dh_mark_eos(uint64_t key) {
    dh_slot *s = dh_lookup(key, NULL);
    if (!s) return;
    s->eos = 1;
    pthread_cond_broadcast(&s->not_full);
    dh_notify(s);
    s->consumer_waiting = 0;
    pthread_mutex_unlock(&s->mu);
}

static void dh_read_source_event(dh_incoming *in, const FfiSourceEvent *event) {
    FfiSourceEvent ev;
    memcpy(&ev, event, sizeof ev);
    in->hints[0] = ev.source_id;
    in->hints[1] = ev.label;
    in->hints[2] = ev.entity_id;
    in->timestamp_us = ev.timestamp_us;
    in->sequence = 0;
    in->op = (int32_t)ev.op;
    in->opaque = ev.opaque;
    in->drop_fn = ev.drop_fn;
    in->raw = 0;
}

static void dh_read_bootstrap_event(dh_incoming *in, const FfiBootstrapEvent *event) {
    FfiBootstrapEvent ev;
    memcpy(&ev, event, sizeof ev);
    in->hints[0] = ev.source_id;
    in->hints[1] = ev.label;
    in->hints[2] = ev.entity_id;
    in->timestamp_us = ev.timestamp_us;
    in->sequence = ev.sequence;
    in->op = 0;
    in->opaque = ev.opaque;
    in->drop_fn = ev.drop_fn;
    in->raw = 0;
}

/* FfiChangePushCallbackFn: the envelope becomes the host's and is freed
 * here, whatever the answer. */
bool dh_change_push(void *ctx, FfiSourceEvent *event) {
    uint64_t key = (uint64_t)(uintptr_t)ctx;
    if (!event) {
        dh_mark_eos(key);
        return false;
    }
    dh_incoming in;
    dh_read_source_event(&in, event);
    free(event);
    return dh_event_push(key, DH_KIND_SOURCE_EVENTS, &in);
}

bool dh_bootstrap_push(void *ctx, FfiBootstrapEvent *event) {
    uint64_t key = (uint64_t)(uintptr_t)ctx;
    if (!event) {
        dh_mark_eos(key);
        return false;
    }
    dh_incoming in;
    dh_read_bootstrap_event(&in, event);
    free(event);
    return dh_event_push(key, DH_KIND_BOOTSTRAP_EVENTS, &in);
}

/* FfiBootstrapSender.send_fn built by the host: borrows the envelope, takes
 * the payload (released here too when the receiving side is closed). */
int32_t dh_bootstrap_sender_send(void *state, FfiBootstrapEvent *event) {
    if (!event) return DH_SEND_FAILED;
    dh_incoming in;
    dh_read_bootstrap_event(&in, event);
    return dh_event_push((uint64_t)(uintptr_t)state, DH_KIND_BOOTSTRAP_EVENTS, &in)
               ? DH_SEND_TAKEN
               : DH_SEND_CLOSED;
}

void dh_bootstrap_sender_drop(void *state) { (void)state; }

/* A host-built FfiBootstrapSender whose state is a channel key. */
void dh_bootstrap_sender_init(FfiBootstrapSender *sender, uint64_t key) {
    sender->state = (void *)(uintptr_t)key;
    sender->send_fn = dh_bootstrap_sender_send;
    sender->drop_fn = dh_bootstrap_sender_drop;
}

/* ---- FFI 0.13 events (chanops.h) --------------------------------------- */

static bool dh_event_push_bytes(uint64_t key, int kind, const uint8_t *data, size_t len,
                                int64_t timestamp_us, uint64_t sequence, int32_t op) {
    dh_incoming in;
    memset(&in, 0, sizeof in);
    in.timestamp_us = timestamp_us;
    in.sequence = sequence;
    in.op = op;
    in.raw = 1;
    in.raw_data = data;
    in.raw_len = len;
    return dh_event_push(key, kind, &in);
}

/* DhPushBytesFn of source events: `sequence` is not kept (the payload has it). */
bool dh_event_push_source_bytes(uint64_t key, const uint8_t *data, size_t len,
                                int64_t timestamp_us, uint64_t sequence, int32_t op) {
    (void)sequence;
    return dh_event_push_bytes(key, DH_KIND_SOURCE_EVENTS, data, len, timestamp_us, 0, op);
}

/* DhPushBytesFn of bootstrap events: `op` is not kept (always 0). */
bool dh_event_push_bootstrap_bytes(uint64_t key, const uint8_t *data, size_t len,
                                   int64_t timestamp_us, uint64_t sequence, int32_t op) {
    (void)op;
    return dh_event_push_bytes(key, DH_KIND_BOOTSTRAP_EVENTS, data, len, timestamp_us,
                               sequence, 0);
}

/* DhEndStreamFn. */
void dh_event_end_stream(uint64_t key) { dh_mark_eos(key); }

static uint8_t *dh_copy_bytes(const uint8_t *data, size_t len) {
    uint8_t *copy = malloc(len ? len : 1);
    if (copy && len) memcpy(copy, data, len);
    return copy;
}

/* DhStoreOutcomeFn: the first call for a live 0.13 bootstrap channel is
 * kept (later ones, and calls naming a released channel, are ignored); the
 * consumer is woken through the notify socket. */
void dh_bootstrap_outcome_store(uint64_t key, int has_result, int64_t event_count,
                                const uint8_t *position, size_t position_len,
                                const uint8_t *error, size_t error_len) {
    /* Copy before taking the lock (the bytes are the plugin's until we return). */
    int position_dropped = 0, error_truncated = 0;
    uint8_t *pos = NULL, *err = NULL;
    if (has_result && position && position_len) {
        if (position_len > DH_MAX_OUTCOME_BYTES) {
            position_dropped = 1;
            position_len = 0;
        } else if (!(pos = dh_copy_bytes(position, position_len))) {
            position_dropped = 1;
            position_len = 0;
        }
    } else {
        position_len = 0;
    }
    if (has_result && error && error_len) {
        if (error_len > DH_MAX_OUTCOME_BYTES) {
            error_truncated = 1;
            error_len = DH_MAX_OUTCOME_BYTES;
        }
        if (!(err = dh_copy_bytes(error, error_len))) {
            error_truncated = 1;
            error_len = 0;
        }
    } else {
        error_len = 0;
    }
    dh_slot *s = dh_lookup(key, NULL);
    if (s && s->kind == DH_KIND_BOOTSTRAP_EVENTS && (s->flags & DH_CHAN_ABI013) &&
        s->outcome_state == DH_OUTCOME_PENDING) {
        s->outcome_state = has_result ? DH_OUTCOME_SET : DH_OUTCOME_NONE;
        s->outcome_count = has_result ? event_count : 0;
        s->outcome_position = pos;
        s->outcome_position_len = position_len;
        s->outcome_position_dropped = position_dropped;
        s->outcome_error = err;
        s->outcome_error_len = error_len;
        s->outcome_error_truncated = error_truncated;
        pos = err = NULL;
        dh_notify(s);
    }
    if (s) pthread_mutex_unlock(&s->mu);
    free(pos);
    free(err);
}

/* The end-of-bootstrap result of channel `key`: DH_OUTCOME_PENDING,
 * DH_OUTCOME_SET (out filled; its pointers stay valid until the release),
 * DH_OUTCOME_NONE or DH_UNKNOWN. */
int dh_bootstrap_outcome(uint64_t key, DhBootstrapOutcome *out) {
    memset(out, 0, sizeof *out);
    dh_slot *s = dh_lookup(key, NULL);
    if (!s) return DH_UNKNOWN;
    int state = s->outcome_state;
    if (state == DH_OUTCOME_SET) {
        out->event_count = s->outcome_count;
        out->position = s->outcome_position;
        out->position_len = s->outcome_position_len;
        out->error = s->outcome_error;
        out->error_len = s->outcome_error_len;
        out->position_dropped = s->outcome_position_dropped;
        out->error_truncated = s->outcome_error_truncated;
    }
    pthread_mutex_unlock(&s->mu);
    return state;
}

/* Take every queued event in O(1): the fill buffer becomes the consumer's
 * (valid until its next take or the release) and the buffer it held before
 * is reused for filling.  Returns the number of records (0 when nothing is
 * queued) or DH_UNKNOWN; out->ended is set once the stream has ended (or the
 * channel is closed) and nothing is left. */
int64_t dh_events_take(uint64_t key, DhEventBatch *out) {
    memset(out, 0, sizeof *out);
    dh_slot *s = dh_lookup(key, NULL);
    if (!s) {
        out->ended = 1;
        return DH_UNKNOWN;
    }
    int64_t n = 0;
    if (s->fill.nrec > 0) {
        dh_evbuf done = s->taken;
        done.nrec = done.nhints = done.npayloads = done.flagged = 0;
        s->taken = s->fill;
        s->fill = done;
        n = (int64_t)s->taken.nrec;
        out->records = s->taken.recs;
        out->count = s->taken.nrec;
        out->hints = s->taken.hints;
        out->nhints = s->taken.nhints;
        out->payloads = s->taken.payloads;
        out->npayloads = s->taken.npayloads;
        out->flagged = s->taken.flagged;
        if (s->producer_waiting) pthread_cond_broadcast(&s->not_full);
    }
    if (s->fill.nrec == 0 && (s->eos || s->state != DH_OPEN)) out->ended = 1;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ---- host -> plugin query results (the reaction's blocking pull) -------- */

static void dh_payload_free(DrasiPayload *self) { free(self); }

/* Copy a document into a DrasiPayload from the C heap (struct and bytes in
 * one block; its drop_fn frees both). */
DrasiPayload *dh_payload_new(const uint8_t *data, size_t len) {
    DrasiPayload *p = malloc(sizeof(DrasiPayload) + (len ? len : 1));
    if (!p) return NULL;
    uint8_t *bytes = (uint8_t *)(p + 1);
    if (len) memcpy(bytes, data, len);
    p->data = bytes;
    p->len = len;
    p->drop_fn = dh_payload_free;
    return p;
}

/* FfiBootstrapEvent.drop_fn of host-built bootstrap events: `opaque` is a
 * DrasiPayload (from dh_payload_new) that also holds the event's routing
 * hints after the document, so releasing it releases everything. */
void dh_payload_event_drop(void *opaque) {
    DrasiPayload *p = opaque;
    if (p && p->drop_fn) p->drop_fn(p);
}

static int dh_results_slot(uint64_t key, dh_slot **out) {
    dh_slot *s = dh_lookup(key, NULL);
    if (!s) return DH_CLOSED_OR_UNKNOWN;
    if (s->state != DH_OPEN || s->kind != DH_KIND_RESULTS) {
        pthread_mutex_unlock(&s->mu);
        return DH_CLOSED_OR_UNKNOWN;
    }
    *out = s;
    return DH_OK;
}

/* After results were queued: wake a sleeping puller now when enough are
 * queued (or `force`), else report that a wake-up is owed. */
static int dh_results_announce(dh_slot *s, int force) {
    if (!s->pullers_waiting) return DH_OK;
    if (force || s->count >= s->wake_at) {
        pthread_cond_signal(&s->not_empty);
        return DH_OK;
    }
    return DH_WAKE_OWED;
}

static void dh_results_arm_producer(dh_slot *s) {
    s->producer_waiting = 1;
    /* A full ring must not stay unannounced either. */
    if (s->pullers_waiting) pthread_cond_signal(&s->not_empty);
}

/* Non-blocking push from Python.  DH_OK taken; DH_WAKE_OWED taken, and the
 * caller must call dh_results_wake before its event loop sleeps; DH_FULL not
 * taken (the producer is armed: the notify socket is written once a pull
 * frees a place); DH_CLOSED_OR_UNKNOWN; DH_NO_MEMORY. */
int dh_results_push(uint64_t key, const uint8_t *data, size_t len) {
    dh_slot *s;
    int rc = dh_results_slot(key, &s);
    if (rc != DH_OK) return rc;
    if (s->count == s->cap) {
        dh_results_arm_producer(s);
        pthread_mutex_unlock(&s->mu);
        return DH_FULL;
    }
    void *p = (s->flags & DH_CHAN_ABI013) ? dh_result013_make(data, len)
                                          : (void *)dh_payload_new(data, len);
    if (!p) {
        pthread_mutex_unlock(&s->mu);
        return DH_NO_MEMORY;
    }
    s->ring[(s->head + s->count) % s->cap] = p;
    s->count++;
    s->pushed++;
    rc = dh_results_announce(s, 0);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Push documents back to back in `data` (lengths in `lens`) under one lock
 * with at most one wake-up.  Returns how many were taken (fewer than n when
 * the ring filled up: the producer is then armed), or DH_CLOSED_OR_UNKNOWN /
 * DH_NO_MEMORY when none was. */
int64_t dh_results_push_many(uint64_t key, const uint8_t *data, const uint64_t *lens, size_t n) {
    dh_slot *s;
    int rc = dh_results_slot(key, &s);
    if (rc != DH_OK) return rc;
    size_t i = 0, off = 0;
    int nomem = 0;
    int abi013 = (s->flags & DH_CHAN_ABI013) != 0;
    for (; i < n && s->count < s->cap; i++) {
        size_t len = (size_t)lens[i];
        void *p = abi013 ? dh_result013_make(data + off, len)
                         : (void *)dh_payload_new(data + off, len);
        if (!p) {
            nomem = 1;
            break;
        }
        off += len;
        s->ring[(s->head + s->count) % s->cap] = p;
        s->count++;
        s->pushed++;
    }
    if (i < n && !nomem) dh_results_arm_producer(s); /* stopped by a full ring */
    if (i > 0) dh_results_announce(s, 1);
    pthread_mutex_unlock(&s->mu);
    if (i == 0 && nomem) return DH_NO_MEMORY;
    return (int64_t)i;
}

/* The end-of-tick wake-up owed after DH_WAKE_OWED. */
void dh_results_wake(uint64_t key) {
    dh_slot *s = dh_lookup(key, NULL);
    if (!s) return;
    if (s->pullers_waiting && s->count > 0) pthread_cond_signal(&s->not_empty);
    pthread_mutex_unlock(&s->mu);
}

/* Block until the next queued item of the result channel `key` (of the given
 * generation: abi013 or not); NULL at once when it is closed, released,
 * unknown or of the other generation. */
static void *dh_result_take(uint64_t key, int abi013) {
    uint32_t gen;
    dh_slot *s = dh_lookup(key, &gen);
    if (!s) return NULL;
    if (s->kind != DH_KIND_RESULTS || ((s->flags & DH_CHAN_ABI013) != 0) != abi013) {
        pthread_mutex_unlock(&s->mu);
        return NULL;
    }
    while (s->state == DH_OPEN && s->count == 0) {
        s->pullers_waiting++;
        pthread_cond_wait(&s->not_empty, &s->mu);
        if (s->generation != gen) { /* released while waiting: the slot is not ours */
            pthread_mutex_unlock(&s->mu);
            return NULL;
        }
        s->pullers_waiting--;
    }
    void *item = NULL;
    if (s->state == DH_OPEN) {
        item = s->ring[s->head];
        s->head = (s->head + 1) % s->cap;
        s->count--;
        if (s->producer_waiting) {
            s->producer_waiting = 0;
            dh_notify(s);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return item;
}

/* FfiResultPushCallbackFn: blocks until the next result, or returns NULL at
 * once when the channel is closed, released or unknown. */
void *dh_result_pull(void *ctx, void *unused) {
    (void)unused;
    return dh_result_take((uint64_t)(uintptr_t)ctx, 0);
}

/* ---- FFI 0.13 results ---------------------------------------------------- */

/* Install the 0.13 result envelope functions (once, from drasi_host._abi013). */
void dh_results_set_envelope013(DhResultMakeFn make, DhResultFreeFn free_item) {
    __atomic_store_n(&dh_result013_free, free_item, __ATOMIC_RELEASE);
    __atomic_store_n(&dh_result013_make, make, __ATOMIC_RELEASE);
}

/* The 0.13 FfiResultPushCallbackFn.  sentinel == NULL: as dh_result_pull
 * (blocks for the next envelope; NULL once closed).  sentinel != NULL: the
 * forwarder has exited; it is recorded, whoever waits for it is woken, and
 * NULL is returned at once (the argument is never read). */
void *dh_result_pull013(void *ctx, void *sentinel) {
    uint64_t key = (uint64_t)(uintptr_t)ctx;
    if (sentinel != NULL) {
        dh_slot *s = dh_lookup(key, NULL);
        if (!s) return NULL;
        if (s->kind == DH_KIND_RESULTS && (s->flags & DH_CHAN_ABI013)) {
            s->exited = 1;
            pthread_cond_broadcast(&s->not_full);
            dh_notify(s);
        }
        pthread_mutex_unlock(&s->mu);
        return NULL;
    }
    return dh_result_take(key, 1);
}

/* 1 once the exit sentinel of channel `key` has arrived, 0 before, DH_UNKNOWN
 * for a released channel. */
int dh_results_exited(uint64_t key) {
    dh_slot *s = dh_lookup(key, NULL);
    if (!s) return DH_UNKNOWN;
    int exited = s->exited;
    pthread_mutex_unlock(&s->mu);
    return exited;
}

/* Block (never on the event loop) until the exit sentinel of channel `key`
 * arrives or timeout_ms pass: 1, 0 on timeout, DH_UNKNOWN when the channel is
 * (or gets) released. */
int dh_results_wait_exited(uint64_t key, uint32_t timeout_ms) {
    uint32_t gen;
    dh_slot *s = dh_lookup(key, &gen);
    if (!s) return DH_UNKNOWN;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    while (!s->exited) {
        int w = pthread_cond_timedwait(&s->not_full, &s->mu, &deadline);
        if (s->generation != gen || s->state == DH_FREE) {
            pthread_mutex_unlock(&s->mu);
            return DH_UNKNOWN;
        }
        if (w == ETIMEDOUT) break;
    }
    rc = s->exited;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Exposed as function pointers so Python can hand them to plugins. */
FfiChangePushCallbackFn dh_change_push_ptr(void) { return dh_change_push; }
FfiBootstrapPushCallbackFn dh_bootstrap_push_ptr(void) { return dh_bootstrap_push; }
FfiResultPushCallbackFn dh_result_pull_ptr(void) { return dh_result_pull; }
FfiResultPushCallbackFn dh_result_pull013_ptr(void) { return dh_result_pull013; }
DhPushBytesFn dh_event_push_source_bytes_ptr(void) { return dh_event_push_source_bytes; }
DhPushBytesFn dh_event_push_bootstrap_bytes_ptr(void) { return dh_event_push_bootstrap_bytes; }
DhEndStreamFn dh_event_end_stream_ptr(void) { return dh_event_end_stream; }
DhStoreOutcomeFn dh_bootstrap_outcome_store_ptr(void) { return dh_bootstrap_outcome_store; }
