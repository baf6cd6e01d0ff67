/*
 * channel013_helper.c - real C threads playing FFI 0.13 plugins for the
 * channel tests of the 0.13 data paths (tests/test_channels013.py).
 *
 * A Producer thread pushes FfiSourceEvent or FfiBootstrapEvent envelopes
 * (malloc'd) through a host push callback, each payload a malloc'd copy of
 * one of the documents it was given, freed by a drop function that counts
 * its calls per event.  Some events can be made to carry a NULL drop
 * function (the buffer is then kept and freed by producer_free), an
 * oversize length (the bytes behind it are never that long: a host that
 * read them would fault) or a NULL payload.  At the end it may push the
 * NULL sentinel.
 *
 * A Puller thread plays a 0.13 reaction's forwarder: it calls the host's
 * result-push callback with a NULL sentinel until it returns NULL, records
 * each payload (4-byte length, then the bytes), calls payload_drop_fn and
 * frees the envelope, and finally makes the exit call with (void *)1.
 *
 * result_fire() delivers an FfiBootstrapResult (or NULL) from a thread of
 * its own, with counting drop functions.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drasi_plugin_0_13.h"

#define MODE_SOURCE 1
#define MODE_BOOTSTRAP 2

/* cdef-begin */
typedef struct Producer013 {
    int mode;
    uintptr_t push; /* FfiChangePushCallbackFn or FfiBootstrapPushCallbackFn */
    uintptr_t ctx;
    int64_t count;
    const uint8_t *docs; /* documents back to back */
    const uint64_t *doc_lens;
    int64_t ndocs;
    int64_t null_drop_every;
    int64_t oversize_every;
    uint64_t oversize_len;
    int64_t null_payload_every;
    int send_eos;
    uint32_t *drops;
    int64_t accepted;
    int64_t refused;
    int done;
    void *thread;
    void **leaked; /* buffers given with a NULL drop fn */
    int64_t nleaked;
} Producer013;

typedef struct Puller013 {
    uintptr_t pull;
    uintptr_t ctx;
    int64_t got;
    uint8_t *out;
    uint64_t out_cap;
    uint64_t out_len;
    uintptr_t sentinel_answer;
    int skip_sentinel;
    int done;
    void *thread;
} Puller013;
/* cdef-end */

/* A payload block: the event's index and owner, then the document. */
typedef struct Block {
    Producer013 *owner;
    int64_t id;
    uint8_t bytes[];
} Block;

static void counting_drop(uint8_t *ptr, size_t len) {
    (void)len;
    Block *b = (Block *)(ptr - offsetof(Block, bytes));
    __atomic_fetch_add(&b->owner->drops[b->id], 1u, __ATOMIC_SEQ_CST);
    free(b);
}

static int every(int64_t k, int64_t id) { return k > 0 && id % k == 0; }

static void *producer_main(void *arg) {
    Producer013 *pr = arg;
    uint64_t doc_off = 0;
    for (int64_t i = 0; i < pr->count; i++) {
        int64_t d = i % pr->ndocs;
        if (d == 0) doc_off = 0;
        uint64_t len = pr->doc_lens[d];
        const uint8_t *doc = pr->docs + doc_off;
        doc_off += len;
        Block *b = malloc(sizeof(Block) + (len ? len : 1));
        if (!b) abort();
        b->owner = pr;
        b->id = i;
        memcpy(b->bytes, doc, len);
        const uint8_t *ptr = b->bytes;
        size_t plen = len;
        FfiBytesDropFn drop = counting_drop;
        if (every(pr->oversize_every, i)) plen = (size_t)pr->oversize_len;
        if (every(pr->null_payload_every, i)) {
            free(b);
            ptr = NULL;
            drop = counting_drop; /* must not be called for a NULL pointer */
        }
        if (ptr && every(pr->null_drop_every, i)) {
            drop = NULL;
            pr->leaked[pr->nleaked++] = b;
        }
        bool ok;
        if (pr->mode == MODE_SOURCE) {
            FfiSourceEvent *ev = malloc(sizeof *ev);
            if (!ev) abort();
            ev->payload_ptr = ptr;
            ev->payload_len = plen;
            ev->payload_drop_fn = drop;
            ev->op = FFI_CHANGE_OP_UPDATE;
            ev->timestamp_us = 1000 + i;
            ok = ((FfiChangePushCallbackFn)pr->push)((void *)pr->ctx, ev);
        } else {
            FfiBootstrapEvent *ev = malloc(sizeof *ev);
            if (!ev) abort();
            ev->payload_ptr = ptr;
            ev->payload_len = plen;
            ev->payload_drop_fn = drop;
            ev->timestamp_us = 1000 + i;
            ev->sequence = (uint64_t)i;
            ok = ((FfiBootstrapPushCallbackFn)pr->push)((void *)pr->ctx, ev);
        }
        if (ok)
            pr->accepted++;
        else
            pr->refused++;
    }
    if (pr->send_eos) {
        if (pr->mode == MODE_SOURCE)
            ((FfiChangePushCallbackFn)pr->push)((void *)pr->ctx, NULL);
        else
            ((FfiBootstrapPushCallbackFn)pr->push)((void *)pr->ctx, NULL);
    }
    __atomic_store_n(&pr->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

Producer013 *producer013_new(int mode, uintptr_t push, uintptr_t ctx, int64_t count,
                             const uint8_t *docs, const uint64_t *doc_lens, int64_t ndocs) {
    Producer013 *pr = calloc(1, sizeof *pr);
    if (!pr) return NULL;
    pr->mode = mode;
    pr->push = push;
    pr->ctx = ctx;
    pr->count = count;
    pr->docs = docs;
    pr->doc_lens = doc_lens;
    pr->ndocs = ndocs;
    pr->drops = calloc((size_t)(count ? count : 1), sizeof(uint32_t));
    pr->leaked = calloc((size_t)(count ? count : 1), sizeof(void *));
    pr->thread = malloc(sizeof(pthread_t));
    if (!pr->drops || !pr->leaked || !pr->thread) abort();
    return pr;
}

int producer013_start(Producer013 *pr) {
    return pthread_create((pthread_t *)pr->thread, NULL, producer_main, pr);
}

/* Run on the calling thread instead. */
void producer013_run(Producer013 *pr) { producer_main(pr); }

int producer013_done(Producer013 *pr) { return __atomic_load_n(&pr->done, __ATOMIC_SEQ_CST); }

uint32_t producer013_drops(Producer013 *pr, int64_t i) {
    return __atomic_load_n(&pr->drops[i], __ATOMIC_SEQ_CST);
}

void producer013_join(Producer013 *pr) { pthread_join(*(pthread_t *)pr->thread, NULL); }

void producer013_free(Producer013 *pr) {
    for (int64_t i = 0; i < pr->nleaked; i++) free(pr->leaked[i]);
    free(pr->leaked);
    free(pr->drops);
    free(pr->thread);
    free(pr);
}

/* ---- the reaction's forwarder ------------------------------------------- */

static void *puller_main(void *arg) {
    Puller013 *pu = arg;
    FfiResultPushCallbackFn cb = (FfiResultPushCallbackFn)pu->pull;
    for (;;) {
        FfiQueryResult *r = cb((void *)pu->ctx, NULL);
        if (!r) break;
        uint32_t n = (uint32_t)r->payload_len;
        if (pu->out_len + 4 + n <= pu->out_cap) {
            memcpy(pu->out + pu->out_len, &n, 4);
            if (n) memcpy(pu->out + pu->out_len + 4, r->payload_ptr, n);
            pu->out_len += 4 + n;
        }
        r->payload_drop_fn((uint8_t *)r->payload_ptr, r->payload_len);
        free(r);
        pu->got++;
    }
    if (!pu->skip_sentinel) pu->sentinel_answer = (uintptr_t)cb((void *)pu->ctx, (void *)1);
    __atomic_store_n(&pu->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

Puller013 *puller013_new(uintptr_t pull, uintptr_t ctx, uint64_t out_cap) {
    Puller013 *pu = calloc(1, sizeof *pu);
    if (!pu) return NULL;
    pu->pull = pull;
    pu->ctx = ctx;
    pu->out = malloc(out_cap ? out_cap : 1);
    pu->out_cap = out_cap;
    pu->sentinel_answer = 12345;
    pu->thread = malloc(sizeof(pthread_t));
    if (!pu->out || !pu->thread) abort();
    return pu;
}

int puller013_start(Puller013 *pu) {
    return pthread_create((pthread_t *)pu->thread, NULL, puller_main, pu);
}

int puller013_done(Puller013 *pu) { return __atomic_load_n(&pu->done, __ATOMIC_SEQ_CST); }

void puller013_free(Puller013 *pu) {
    pthread_join(*(pthread_t *)pu->thread, NULL);
    free(pu->thread);
    free(pu->out);
    free(pu);
}

/* ---- the end-of-bootstrap result ---------------------------------------- */

static uint32_t result_drops;

static void result_drop(uint8_t *ptr, size_t len) {
    (void)len;
    __atomic_fetch_add(&result_drops, 1u, __ATOMIC_SEQ_CST);
    free(ptr);
}

uint32_t result_drop_count(void) { return __atomic_load_n(&result_drops, __ATOMIC_SEQ_CST); }

typedef struct Fire {
    uintptr_t cb;
    uintptr_t ctx;
    FfiBootstrapResult *result;
    int delay_ms;
} Fire;

static void *fire_main(void *arg) {
    Fire *f = arg;
    if (f->delay_ms) {
        struct timespec ts = {f->delay_ms / 1000, (long)(f->delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    ((FfiBootstrapResultCallbackFn)f->cb)((void *)f->ctx, f->result);
    free(f);
    return NULL;
}

static uint8_t *copy_of(const uint8_t *data, size_t len) {
    uint8_t *p = malloc(len ? len : 1);
    if (!p) abort();
    if (len) memcpy(p, data, len);
    return p;
}

/* Deliver a result from a new (joined) thread after delay_ms: with_result 0
 * sends NULL.  Position and error buffers are malloc'd copies with a
 * counting drop fn (NULL data: no buffer). */
int result_fire(uintptr_t cb, uintptr_t ctx, int with_result, int64_t count,
                const uint8_t *position, uint64_t position_len, const uint8_t *error,
                uint64_t error_len, int delay_ms) {
    Fire *f = calloc(1, sizeof *f);
    if (!f) abort();
    f->cb = cb;
    f->ctx = ctx;
    f->delay_ms = delay_ms;
    if (with_result) {
        FfiBootstrapResult *r = calloc(1, sizeof *r);
        if (!r) abort();
        r->event_count = count;
        if (position) {
            r->source_position_ptr = copy_of(position, position_len);
            r->source_position_len = position_len;
            r->source_position_drop_fn = result_drop;
        }
        if (error) {
            r->error_ptr = copy_of(error, error_len);
            r->error_len = error_len;
            r->error_drop_fn = result_drop;
        }
        f->result = r;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, fire_main, f) != 0) return -1;
    return pthread_join(t, NULL);
}
