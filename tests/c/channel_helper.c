/*
 * channel_helper.c - real C producer and consumer threads for the channel
 * tests (tests/test_channels.py).
 *
 * A Producer runs a pthread that plays a plugin: it builds FfiSourceEvent or
 * FfiBootstrapEvent envelopes on the C heap, each carrying a DrasiPayload,
 * and hands them to a host push callback (or to a host FfiBootstrapSender).
 * Every payload release is counted per event, so the tests can check that
 * the host releases each event exactly once whatever path it takes (drained,
 * refused, released with the channel).
 *
 * A Puller runs a pthread that plays a reaction: it calls the host's result
 * pull callback in a loop, records each result (4-byte length, then the
 * bytes) and releases it with payload->drop_fn(payload).
 *
 * The test reads the two structs between the cdef markers into its cffi
 * declarations, so they are written once.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drasi_plugin.h"

#define MODE_CHANGE 1
#define MODE_BOOTSTRAP 2
#define MODE_SENDER 3

#define HINT_TOO_LONG (1024u * 1024u + 1u) /* one more than the host's limit */

/* cdef-begin */
typedef struct Producer {
    int mode;
    uintptr_t target; /* push callback (CHANGE, BOOTSTRAP) or FfiBootstrapSender * */
    uintptr_t ctx;    /* callback context: a channel key */
    int64_t first_id;
    int64_t count;
    int stop_on_false;
    int send_eos;
    int start_delay_ms;
    int64_t big_every;
    uint64_t big_len;
    int64_t bad_hint_every;
    int64_t null_data_every;
    uint64_t flip_len; /* > 0: payload lengths flip between 8 and this while pushed */
    uint32_t *drops;
    int64_t accepted;
    int64_t refused;
    int64_t first_refused_id;
    int eos_result;
    int done;
    void *thread;
    void *pool;      /* flip mode: the payload blocks, freed by producer_free */
    void *flipper;   /* flip mode: the thread changing lengths */
    int flipping;
    int64_t flips;
    int64_t current; /* flip mode: index of the event being pushed */
} Producer;

typedef struct Puller {
    uintptr_t pull; /* FfiResultPushCallbackFn */
    uintptr_t ctx;
    int64_t extra_calls;
    int delay_us;
    int64_t got;
    int64_t extra_nulls;
    int64_t null_data;
    uint8_t *out;
    uint64_t out_cap;
    uint64_t out_len;
    int done;
    void *thread;
} Puller;
/* cdef-end */

typedef struct Payload {
    DrasiPayload base;
    Producer *owner;
    int64_t id;
    uint8_t *bytes;
    char source_id[32];
    char label[16];
    char entity_id[32];
} Payload;

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void payload_drop(DrasiPayload *self) {
    Payload *p = (Payload *)self;
    __atomic_fetch_add(&p->owner->drops[p->id - p->owner->first_id], 1u, __ATOMIC_SEQ_CST);
    if (p->owner->flip_len) return; /* pool block: the flipper may still touch it */
    free(p->bytes);
    free(p);
}

/* Flip mode: a second thread keeps changing the length of the payload being
 * pushed (8 <-> flip_len bytes, both readable), so a host that read the
 * length twice would size and copy with different values. */
static void *flipper_main(void *arg) {
    Producer *pr = arg;
    Payload *pool = pr->pool;
    while (__atomic_load_n(&pr->flipping, __ATOMIC_SEQ_CST)) {
        int64_t i = __atomic_load_n(&pr->current, __ATOMIC_SEQ_CST);
        size_t len = __atomic_load_n(&pool[i].base.len, __ATOMIC_RELAXED);
        __atomic_store_n(&pool[i].base.len, len == 8 ? (size_t)pr->flip_len : (size_t)8,
                         __ATOMIC_RELAXED);
        __atomic_add_fetch(&pr->flips, 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

/* The event's drop_fn: releases the DrasiPayload behind opaque. */
static void event_drop(void *opaque) {
    if (opaque) ((DrasiPayload *)opaque)->drop_fn((DrasiPayload *)opaque);
}

static FfiStr str_of(const char *s) {
    FfiStr out = {s, strlen(s)};
    return out;
}

static int every(int64_t k, int64_t id) { return k > 0 && id % k == 0; }

/* The payload and the routing hints of event `id` (hints live in the payload
 * block, so they stay valid until drop_fn). */
static Payload *make_payload(Producer *pr, int64_t id, FfiStr hints[3]) {
    Payload *p = pr->flip_len ? &((Payload *)pr->pool)[id - pr->first_id] : calloc(1, sizeof *p);
    if (!p) abort();
    p->owner = pr;
    p->id = id;
    p->base.drop_fn = payload_drop;
    snprintf(p->source_id, sizeof p->source_id, "s%lld", (long long)pr->first_id);
    snprintf(p->label, sizeof p->label, "L%lld", (long long)(id % 3));
    snprintf(p->entity_id, sizeof p->entity_id, "e%lld", (long long)id);
    if (pr->flip_len) {
        p->base.data = p->bytes;
        p->base.len = 8;
    } else if (every(pr->null_data_every, id)) {
        p->base.data = NULL;
        p->base.len = 3;
    } else if (every(pr->big_every, id)) {
        p->bytes = malloc(pr->big_len ? pr->big_len : 1);
        if (!p->bytes) abort();
        memset(p->bytes, 'x', pr->big_len);
        p->base.data = p->bytes;
        p->base.len = pr->big_len;
    } else {
        char doc[48];
        int n = snprintf(doc, sizeof doc, "{\"id\":%lld}", (long long)id);
        p->bytes = malloc((size_t)n);
        if (!p->bytes) abort();
        memcpy(p->bytes, doc, (size_t)n);
        p->base.data = p->bytes;
        p->base.len = (size_t)n;
    }
    hints[0] = str_of(p->source_id);
    hints[1] = str_of(p->label);
    hints[2] = str_of(p->entity_id);
    if (every(pr->bad_hint_every, id)) {
        hints[1].ptr = NULL; /* NULL with a length */
        hints[2].len = HINT_TOO_LONG; /* far beyond the buffer: must not be read */
    }
    return p;
}

static void *producer_main(void *arg) {
    Producer *pr = arg;
    if (pr->start_delay_ms > 0) sleep_us(pr->start_delay_ms * 1000L);
    if (pr->flip_len) {
        Payload *pool = calloc((size_t)pr->count, sizeof(Payload));
        if (!pool) abort();
        for (int64_t i = 0; i < pr->count; i++) {
            pool[i].bytes = malloc(pr->flip_len);
            if (!pool[i].bytes) abort();
            memset(pool[i].bytes, 'x', pr->flip_len);
            pool[i].base.data = pool[i].bytes;
            pool[i].base.len = 8;
        }
        pr->pool = pool;
        pthread_t *t = malloc(sizeof *t);
        if (!t) abort();
        __atomic_store_n(&pr->flipping, 1, __ATOMIC_SEQ_CST);
        if (pthread_create(t, NULL, flipper_main, pr) != 0) abort();
        pr->flipper = t;
    }
    for (int64_t i = 0; i < pr->count; i++) {
        int64_t id = pr->first_id + i;
        FfiStr hints[3];
        Payload *p = make_payload(pr, id, hints);
        if (pr->flip_len) {
            /* make sure the flipper is at work on this event before pushing it */
            __atomic_store_n(&pr->current, i, __ATOMIC_SEQ_CST);
            int64_t seen = __atomic_load_n(&pr->flips, __ATOMIC_SEQ_CST);
            while (__atomic_load_n(&pr->flips, __ATOMIC_SEQ_CST) < seen + 3) sched_yield();
        }
        int ok;
        if (pr->mode == MODE_CHANGE) {
            FfiSourceEvent *ev = malloc(sizeof *ev);
            if (!ev) abort();
            ev->opaque = p;
            ev->source_id = hints[0];
            ev->timestamp_us = 1000000 + id;
            ev->op = (FfiChangeOp)(id % 3);
            ev->label = hints[1];
            ev->entity_id = hints[2];
            ev->drop_fn = event_drop;
            ok = ((FfiChangePushCallbackFn)pr->target)((void *)pr->ctx, ev);
        } else {
            FfiBootstrapEvent local;
            FfiBootstrapEvent *ev = pr->mode == MODE_BOOTSTRAP ? malloc(sizeof *ev) : &local;
            if (!ev) abort();
            ev->opaque = p;
            ev->source_id = hints[0];
            ev->timestamp_us = 2000000 + id;
            ev->sequence = (uint64_t)id;
            ev->label = hints[1];
            ev->entity_id = hints[2];
            ev->drop_fn = event_drop;
            if (pr->mode == MODE_BOOTSTRAP) {
                ok = ((FfiBootstrapPushCallbackFn)pr->target)((void *)pr->ctx, ev);
            } else {
                FfiBootstrapSender *sender = (FfiBootstrapSender *)pr->target;
                ok = sender->send_fn(sender->state, ev) == 0; /* envelope stays ours */
            }
        }
        if (ok) {
            pr->accepted++;
        } else {
            if (pr->refused++ == 0) pr->first_refused_id = id;
            if (pr->stop_on_false) break;
        }
    }
    if (pr->send_eos) {
        if (pr->mode == MODE_CHANGE)
            pr->eos_result = ((FfiChangePushCallbackFn)pr->target)((void *)pr->ctx, NULL);
        else if (pr->mode == MODE_BOOTSTRAP)
            pr->eos_result = ((FfiBootstrapPushCallbackFn)pr->target)((void *)pr->ctx, NULL);
    }
    if (pr->flipper) {
        __atomic_store_n(&pr->flipping, 0, __ATOMIC_SEQ_CST);
        pthread_join(*(pthread_t *)pr->flipper, NULL);
        free(pr->flipper);
        pr->flipper = NULL;
    }
    __atomic_store_n(&pr->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

Producer *producer_new(int mode, uintptr_t target, uintptr_t ctx, int64_t first_id,
                       int64_t count) {
    Producer *pr = calloc(1, sizeof *pr);
    if (!pr) return NULL;
    pr->mode = mode;
    pr->target = target;
    pr->ctx = ctx;
    pr->first_id = first_id;
    pr->count = count;
    pr->first_refused_id = -1;
    pr->eos_result = -1;
    pr->drops = calloc(count > 0 ? (size_t)count : 1, sizeof(uint32_t));
    if (!pr->drops) {
        free(pr);
        return NULL;
    }
    return pr;
}

int producer_start(Producer *pr) {
    pthread_t *t = malloc(sizeof *t);
    if (!t) return -1;
    if (pthread_create(t, NULL, producer_main, pr) != 0) {
        free(t);
        return -1;
    }
    pr->thread = t;
    return 0;
}

int producer_done(Producer *pr) { return __atomic_load_n(&pr->done, __ATOMIC_SEQ_CST); }

uint32_t producer_drops(Producer *pr, int64_t index) {
    return __atomic_load_n(&pr->drops[index], __ATOMIC_SEQ_CST);
}

void producer_join(Producer *pr) {
    if (pr->thread) {
        pthread_join(*(pthread_t *)pr->thread, NULL);
        free(pr->thread);
        pr->thread = NULL;
    }
}

void producer_free(Producer *pr) {
    producer_join(pr);
    if (pr->pool) {
        Payload *pool = pr->pool;
        for (int64_t i = 0; i < pr->count; i++) free(pool[i].bytes);
        free(pool);
    }
    free(pr->drops);
    free(pr);
}

static void *puller_main(void *arg) {
    Puller *pu = arg;
    FfiResultPushCallbackFn pull = (FfiResultPushCallbackFn)pu->pull;
    for (;;) {
        DrasiPayload *p = pull((void *)pu->ctx, NULL);
        if (!p) break;
        if (!p->data) pu->null_data++;
        if (pu->out_len + 4 + p->len <= pu->out_cap) {
            uint32_t n = (uint32_t)p->len;
            memcpy(pu->out + pu->out_len, &n, 4);
            if (p->len) memcpy(pu->out + pu->out_len + 4, p->data, p->len);
            pu->out_len += 4 + p->len;
        }
        p->drop_fn(p);
        __atomic_fetch_add(&pu->got, 1, __ATOMIC_SEQ_CST);
        if (pu->delay_us > 0) sleep_us(pu->delay_us);
    }
    for (int64_t i = 0; i < pu->extra_calls; i++) {
        if (pull((void *)pu->ctx, NULL) == NULL) pu->extra_nulls++;
    }
    __atomic_store_n(&pu->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

Puller *puller_new(uintptr_t pull, uintptr_t ctx, uint64_t out_cap) {
    Puller *pu = calloc(1, sizeof *pu);
    if (!pu) return NULL;
    pu->pull = pull;
    pu->ctx = ctx;
    pu->out = malloc(out_cap ? out_cap : 1);
    pu->out_cap = out_cap;
    if (!pu->out) {
        free(pu);
        return NULL;
    }
    return pu;
}

int puller_start(Puller *pu) {
    pthread_t *t = malloc(sizeof *t);
    if (!t) return -1;
    if (pthread_create(t, NULL, puller_main, pu) != 0) {
        free(t);
        return -1;
    }
    pu->thread = t;
    return 0;
}

int puller_done(Puller *pu) { return __atomic_load_n(&pu->done, __ATOMIC_SEQ_CST); }

int64_t puller_got(Puller *pu) { return __atomic_load_n(&pu->got, __ATOMIC_SEQ_CST); }

void puller_free(Puller *pu) {
    if (pu->thread) {
        pthread_join(*(pthread_t *)pu->thread, NULL);
        free(pu->thread);
    }
    free(pu->out);
    free(pu);
}

/* Call a pull callback n times from the calling thread; returns how many
 * calls returned NULL (anything else returned is released). */
int64_t pull_n(uintptr_t pull, uintptr_t ctx, int64_t n) {
    FfiResultPushCallbackFn fn = (FfiResultPushCallbackFn)pull;
    int64_t nulls = 0;
    for (int64_t i = 0; i < n; i++) {
        DrasiPayload *p = fn((void *)ctx, NULL);
        if (p) p->drop_fn(p);
        else nulls++;
    }
    return nulls;
}
