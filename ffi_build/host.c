/*
 * host.c - the native half of drasi_host._ffi.
 *
 * Everything here runs without the GIL on whatever thread a plugin chooses:
 *
 *   - Channels: bounded, thread-safe queues of pointers that carry plugin
 *     events to Python (source and bootstrap push callbacks, the bootstrap
 *     sender) and query results to plugins (the reaction's blocking pull).
 *     A plugin never sees a channel's address: its callback context is a
 *     64-bit key (slot index + generation) looked up in a slot table whose
 *     memory is never freed, so a late call naming a released channel is
 *     recognised and answered safely.  The Python side waits on a socket the
 *     channel writes one byte to, so waiting never holds the GIL.
 *   - Shims: the C functions plugins call for logs, lifecycle events, the
 *     state store, identity and Python bootstrap providers.  Each checks that
 *     the host is still alive before entering Python (an extern "Python"
 *     function), and answers with a safe failure value otherwise.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DH_CHUNK_SLOTS 1024u
#define DH_MAX_CHUNKS 256u

#define DH_FREE 0
#define DH_OPEN 1
#define DH_CLOSED 2

typedef struct dh_slot {
    pthread_mutex_t mu;
    pthread_cond_t not_empty;
    pthread_cond_t not_full;
    uint32_t generation;
    int state;
    int kind;
    void **ring;
    size_t cap, head, count;
    int eos;
    int notify_fd;
    int consumer_waiting;
    int producer_waiting;
    uint64_t pushed;
    uint64_t rejected;
} dh_slot;

static pthread_mutex_t dh_table_mu = PTHREAD_MUTEX_INITIALIZER;
static dh_slot *dh_chunks[DH_MAX_CHUNKS];
static uint32_t *dh_free_list;
static size_t dh_free_count, dh_free_cap, dh_slot_total;

/* ---- the host's life, as the shims see it --------------------------------
 *
 * Every shim into Python enters through dh_enter() and leaves through
 * dh_leave(): dh_enter counts the call as in flight and only then checks that
 * the host is alive, so dh_host_shutdown() - which clears "alive" first and
 * then waits for the count to reach zero - never returns while a call it has
 * not refused is still inside Python.  Both sides use sequentially consistent
 * atomics, so either the shim sees the host gone, or the shutdown sees the
 * shim's count.  From shutdown on, calls are answered with their failure
 * values without entering Python, so no plugin thread ever reaches a
 * finalising interpreter (where it would be unwound by pthread_exit, which
 * aborts a C++ or Rust plugin). */
static int dh_alive = 1;
static int64_t dh_inflight;

int dh_host_alive(void) { return __atomic_load_n(&dh_alive, __ATOMIC_SEQ_CST); }

static int dh_enter(void) {
    __atomic_add_fetch(&dh_inflight, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&dh_alive, __ATOMIC_SEQ_CST)) return 1;
    __atomic_sub_fetch(&dh_inflight, 1, __ATOMIC_SEQ_CST);
    return 0;
}

static void dh_leave(void) { __atomic_sub_fetch(&dh_inflight, 1, __ATOMIC_SEQ_CST); }

int64_t dh_host_inflight(void) { return __atomic_load_n(&dh_inflight, __ATOMIC_SEQ_CST); }

/* Refuse every later call into Python, then wait up to wait_ms for the calls
 * already inside to return.  Must be called without the GIL held (cffi
 * releases it), or the calls inside could never finish.  Returns the number
 * still in flight when it gave up (0 when all returned). */
int64_t dh_host_shutdown(uint32_t wait_ms) {
    __atomic_store_n(&dh_alive, 0, __ATOMIC_SEQ_CST);
    struct timespec step = {0, 1000000};
    for (uint32_t waited = 0;; waited++) {
        int64_t n = __atomic_load_n(&dh_inflight, __ATOMIC_SEQ_CST);
        if (n <= 0 || waited >= wait_ms) return n;
        nanosleep(&step, NULL);
    }
}

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

uint64_t dh_chan_new(int kind, size_t capacity, int notify_fd) {
    if (capacity == 0) capacity = 1;
    void **ring = calloc(capacity, sizeof(void *));
    if (!ring) return 0;
    pthread_mutex_lock(&dh_table_mu);
    uint32_t index;
    if (dh_free_count > 0) {
        index = dh_free_list[--dh_free_count];
    } else {
        if (dh_slot_total >= (size_t)DH_CHUNK_SLOTS * DH_MAX_CHUNKS) {
            pthread_mutex_unlock(&dh_table_mu);
            free(ring);
            return 0;
        }
        index = (uint32_t)dh_slot_total;
        if (index % DH_CHUNK_SLOTS == 0) {
            dh_slot *chunk = calloc(DH_CHUNK_SLOTS, sizeof(dh_slot));
            if (!chunk) {
                pthread_mutex_unlock(&dh_table_mu);
                free(ring);
                return 0;
            }
            for (size_t i = 0; i < DH_CHUNK_SLOTS; i++) {
                pthread_mutex_init(&chunk[i].mu, NULL);
                pthread_cond_init(&chunk[i].not_empty, NULL);
                pthread_cond_init(&chunk[i].not_full, NULL);
                chunk[i].notify_fd = -1;
            }
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
    s->ring = ring;
    s->cap = capacity;
    s->head = s->count = 0;
    s->eos = 0;
    s->notify_fd = notify_fd;
    s->consumer_waiting = s->producer_waiting = 0;
    s->pushed = s->rejected = 0;
    uint64_t key = ((uint64_t)s->generation << 32) | (uint64_t)(index + 1);
    pthread_mutex_unlock(&s->mu);
    return key;
}

static void dh_release_item(int kind, void *item) {
    if (!item) return;
    if (kind == DH_KIND_SOURCE_EVENTS) {
        FfiSourceEvent *ev = item;
        if (ev->drop_fn) ev->drop_fn(ev->opaque);
        free(ev);
    } else if (kind == DH_KIND_BOOTSTRAP_EVENTS) {
        FfiBootstrapEvent *ev = item;
        if (ev->drop_fn) ev->drop_fn(ev->opaque);
        free(ev);
    } else if (kind == DH_KIND_RESULTS) {
        DrasiPayload *p = item;
        if (p->drop_fn) p->drop_fn(p);
    }
}

/* Pop up to max items while locked; releasing happens outside the lock. */
static size_t dh_pop_locked(dh_slot *s, void **out, size_t max) {
    size_t n = 0;
    while (n < max && s->count > 0) {
        out[n++] = s->ring[s->head];
        s->head = (s->head + 1) % s->cap;
        s->count--;
    }
    if (n > 0) pthread_cond_broadcast(&s->not_full);
    return n;
}

void dh_chan_close(uint64_t key) {
    dh_slot *s = dh_lookup(key, NULL);
    if (!s) return;
    s->state = DH_CLOSED;
    pthread_cond_broadcast(&s->not_full);
    pthread_cond_broadcast(&s->not_empty);
    dh_notify(s);
    pthread_mutex_unlock(&s->mu);
}

/* Close (as dh_chan_close does), release every queued item, and free the
 * slot for reuse.  Any later call naming this key is treated as unknown. */
void dh_chan_release(uint64_t key) {
    dh_slot *s = dh_lookup(key, NULL);
    if (!s) return;
    s->state = DH_CLOSED; /* woken producers are refused from here on */
    pthread_cond_broadcast(&s->not_full);
    pthread_cond_broadcast(&s->not_empty);
    for (;;) {
        void *batch[64];
        size_t n = dh_pop_locked(s, batch, 64);
        if (n == 0) break;
        int kind = s->kind;
        pthread_mutex_unlock(&s->mu);
        for (size_t i = 0; i < n; i++) dh_release_item(kind, batch[i]);
        pthread_mutex_lock(&s->mu);
    }
    free(s->ring);
    s->ring = NULL;
    s->cap = s->count = s->head = 0;
    s->state = DH_FREE;
    s->notify_fd = -1;
    s->generation++;
    if (s->generation == 0) s->generation = 1;
    pthread_cond_broadcast(&s->not_full);
    pthread_cond_broadcast(&s->not_empty);
    uint32_t index = (uint32_t)(key & 0xffffffffu) - 1;
    pthread_mutex_unlock(&s->mu);

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

int dh_chan_stats(uint64_t key, DhChanStats *out) {
    dh_slot *s = dh_lookup(key, NULL);
    if (!s) return -1;
    out->queued = s->count;
    out->capacity = s->cap;
    out->pushed = s->pushed;
    out->rejected = s->rejected;
    out->eos = s->eos;
    out->closed = s->state != DH_OPEN;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* Push from a plugin thread, blocking while the channel is full.  Returns 1
 * when taken; 0 when refused (closed, ended or unknown), in which case the
 * item is released here when release_refused is set. */
static int dh_push_blocking(uint64_t key, int kind, void *item, int release_refused) {
    uint32_t gen;
    dh_slot *s = dh_lookup(key, &gen);
    if (!s) goto refused;
    if (s->kind != kind) {
        pthread_mutex_unlock(&s->mu);
        goto refused;
    }
    while (s->state == DH_OPEN && !s->eos && s->count == s->cap) {
        pthread_cond_wait(&s->not_full, &s->mu);
        if (s->generation != gen) {
            pthread_mutex_unlock(&s->mu);
            goto refused;
        }
    }
    if (s->state != DH_OPEN || s->eos) {
        s->rejected++;
        pthread_mutex_unlock(&s->mu);
        goto refused;
    }
    s->ring[(s->head + s->count) % s->cap] = item;
    s->count++;
    s->pushed++;
    pthread_cond_signal(&s->not_empty);
    if (s->consumer_waiting) {
        s->consumer_waiting = 0;
        dh_notify(s);
    }
    pthread_mutex_unlock(&s->mu);
    return 1;
refused:
    if (release_refused) dh_release_item(kind, item);
    return 0;
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

/* ---- plugin -> host event push (FfiChangePushCallbackFn and friends) ---- */

bool dh_change_push(void *ctx, FfiSourceEvent *event) {
    uint64_t key = (uint64_t)(uintptr_t)ctx;
    if (!event) {
        dh_mark_eos(key);
        return false;
    }
    return dh_push_blocking(key, DH_KIND_SOURCE_EVENTS, event, 1) != 0;
}

bool dh_bootstrap_push(void *ctx, FfiBootstrapEvent *event) {
    uint64_t key = (uint64_t)(uintptr_t)ctx;
    if (!event) {
        dh_mark_eos(key);
        return false;
    }
    return dh_push_blocking(key, DH_KIND_BOOTSTRAP_EVENTS, event, 1) != 0;
}

/* FfiBootstrapSender.send_fn built by the host: borrows the envelope, takes
 * the payload (released here too when the receiving side is closed). */
int32_t dh_bootstrap_sender_send(void *state, FfiBootstrapEvent *event) {
    if (!event) return -1;
    FfiBootstrapEvent *copy = malloc(sizeof *copy);
    if (!copy) {
        if (event->drop_fn) event->drop_fn(event->opaque);
        return -1;
    }
    *copy = *event;
    return dh_push_blocking((uint64_t)(uintptr_t)state, DH_KIND_BOOTSTRAP_EVENTS, copy, 1) ? 0 : 1;
}

void dh_bootstrap_sender_drop(void *state) { (void)state; }

/* Ask to be woken through the notify socket when there is something to read.
 * Returns 1 when the caller should not wait (items queued, ended, closed or
 * unknown), 0 when armed. */
int dh_chan_arm_consumer(uint64_t key) {
    dh_slot *s = dh_lookup(key, NULL);
    if (!s) return 1;
    int ready = s->count > 0 || s->eos || s->state != DH_OPEN;
    if (!ready) s->consumer_waiting = 1;
    pthread_mutex_unlock(&s->mu);
    return ready;
}

static int dh_hint_ok(FfiStr s) { return s.len <= DH_MAX_HINT_LEN && (s.len == 0 || s.ptr); }

/* Move up to max_records events out of a channel into host memory: records
 * describe each event and one malloc'd arena holds, per event, the source id,
 * label, entity id and payload bytes back to back.  The events are released
 * (drop_fn(opaque), free(envelope)) before returning.  Returns the number of
 * records, or -1 for an unknown key.  *ended is set once the stream has
 * ended (or the channel is closed) and nothing is left. */
int64_t dh_events_drain(uint64_t key, DhEventRecord *records, size_t max_records,
                        uint8_t **arena_out, size_t *arena_len, int payload_is_drasi,
                        uint64_t max_payload, size_t max_batch_bytes, int *ended) {
    *arena_out = NULL;
    *arena_len = 0;
    *ended = 0;
    dh_slot *s = dh_lookup(key, NULL);
    if (!s) {
        *ended = 1;
        return -1;
    }
    int kind = s->kind;
    void **items = malloc((max_records ? max_records : 1) * sizeof(void *));
    if (!items) {
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    size_t n = 0, total = 0;
    while (n < max_records && s->count > 0) {
        void *item = s->ring[s->head];
        FfiStr src, label, entity;
        void *opaque;
        if (kind == DH_KIND_SOURCE_EVENTS) {
            FfiSourceEvent *ev = item;
            src = ev->source_id; label = ev->label; entity = ev->entity_id; opaque = ev->opaque;
        } else {
            FfiBootstrapEvent *ev = item;
            src = ev->source_id; label = ev->label; entity = ev->entity_id; opaque = ev->opaque;
        }
        size_t need = (dh_hint_ok(src) ? src.len : 0) + (dh_hint_ok(label) ? label.len : 0) +
                      (dh_hint_ok(entity) ? entity.len : 0);
        if (payload_is_drasi && opaque) {
            DrasiPayload *p = opaque;
            if (p->len <= max_payload && (p->len == 0 || p->data)) need += p->len;
        }
        if (n > 0 && total + need > max_batch_bytes) break;
        total += need;
        items[n++] = item;
        s->head = (s->head + 1) % s->cap;
        s->count--;
    }
    if (n > 0) pthread_cond_broadcast(&s->not_full);
    if (s->count == 0 && (s->eos || s->state != DH_OPEN)) *ended = 1;
    pthread_mutex_unlock(&s->mu);
    if (n == 0) {
        free(items);
        return 0;
    }

    uint8_t *arena = total ? malloc(total) : NULL;
    if (total && !arena) {
        /* Out of memory: put nothing back, release and report the events as lost. */
        for (size_t i = 0; i < n; i++) dh_release_item(kind, items[i]);
        free(items);
        return 0;
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        DhEventRecord *r = &records[i];
        FfiStr hints[3];
        void *opaque;
        memset(r, 0, sizeof *r);
        if (kind == DH_KIND_SOURCE_EVENTS) {
            FfiSourceEvent *ev = items[i];
            hints[0] = ev->source_id; hints[1] = ev->label; hints[2] = ev->entity_id;
            opaque = ev->opaque;
            r->timestamp_us = ev->timestamp_us;
            r->op = (int32_t)ev->op;
        } else {
            FfiBootstrapEvent *ev = items[i];
            hints[0] = ev->source_id; hints[1] = ev->label; hints[2] = ev->entity_id;
            opaque = ev->opaque;
            r->timestamp_us = ev->timestamp_us;
            r->sequence = ev->sequence;
            r->op = 0;
        }
        uint32_t lens[3];
        for (int h = 0; h < 3; h++) {
            if (dh_hint_ok(hints[h])) {
                lens[h] = (uint32_t)hints[h].len;
                if (hints[h].len) memcpy(arena + off, hints[h].ptr, hints[h].len);
                off += hints[h].len;
            } else {
                lens[h] = 0;
                r->flags |= DH_REC_BAD_HINT;
            }
        }
        r->source_id_len = lens[0];
        r->label_len = lens[1];
        r->entity_id_len = lens[2];
        if (payload_is_drasi) {
            DrasiPayload *p = opaque;
            if (!p) {
                r->flags |= DH_REC_NULL_PAYLOAD;
            } else if (p->len > max_payload) {
                r->flags |= DH_REC_OVERSIZE;
                r->payload_len = p->len;
            } else if (p->len && !p->data) {
                r->flags |= DH_REC_NULL_PAYLOAD;
            } else {
                r->flags |= DH_REC_HAS_PAYLOAD;
                if (p->len) memcpy(arena + off, p->data, p->len);
                off += p->len;
                r->payload_len = p->len;
            }
        }
        dh_release_item(kind, items[i]);
    }
    free(items);
    *arena_out = arena;
    *arena_len = off;
    return (int64_t)n;
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

/* Non-blocking push from Python: 0 taken, 1 full (the producer is armed and
 * the notify socket is written once space frees up), -1 closed or unknown. */
int dh_results_push(uint64_t key, const uint8_t *data, size_t len) {
    dh_slot *s = dh_lookup(key, NULL);
    if (!s) return -1;
    if (s->state != DH_OPEN || s->kind != DH_KIND_RESULTS) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    if (s->count == s->cap) {
        s->producer_waiting = 1;
        pthread_mutex_unlock(&s->mu);
        return 1;
    }
    DrasiPayload *p = dh_payload_new(data, len);
    if (!p) {
        pthread_mutex_unlock(&s->mu);
        return -2;
    }
    s->ring[(s->head + s->count) % s->cap] = p;
    s->count++;
    s->pushed++;
    pthread_cond_signal(&s->not_empty);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* FfiResultPushCallbackFn: blocks until the next result, or returns NULL at
 * once when the channel is closed, released or unknown. */
void *dh_result_pull(void *ctx, void *unused) {
    (void)unused;
    uint32_t gen;
    dh_slot *s = dh_lookup((uint64_t)(uintptr_t)ctx, &gen);
    if (!s) return NULL;
    while (s->state == DH_OPEN && s->count == 0) {
        pthread_cond_wait(&s->not_empty, &s->mu);
        if (s->generation != gen) {
            pthread_mutex_unlock(&s->mu);
            return NULL;
        }
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

/* ---- shims into Python ------------------------------------------------- */

static char *dh_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static const char DH_GONE[] = "drasi host is shutting down";

/* DH_SHIM(call, gone): enter Python through `call` when the host is alive,
 * else answer `gone`; the call is counted as in flight while inside. */
#define DH_SHIM(type, call, gone)      \
    do {                               \
        if (!dh_enter()) return (gone); \
        type dh_r_ = (call);           \
        dh_leave();                    \
        return dh_r_;                  \
    } while (0)
#define DH_SHIM_VOID(call)  \
    do {                    \
        if (!dh_enter()) return; \
        call;               \
        dh_leave();         \
    } while (0)

void dh_log_shim(void *ctx, const FfiLogEntry *entry) {
    if (entry) DH_SHIM_VOID(dh_py_log(ctx, entry));
}

void dh_lifecycle_shim(void *ctx, const FfiLifecycleEvent *event) {
    if (event) DH_SHIM_VOID(dh_py_lifecycle(ctx, event));
}

static FfiResult dh_gone_result(void) {
    FfiResult r = {1, dh_strdup(DH_GONE)};
    return r;
}

static FfiGetResult dh_gone_get(void) {
    FfiGetResult r = {(uint8_t *)1, 0, 0, false, 1, dh_strdup(DH_GONE)};
    return r;
}

static FfiStringArray dh_gone_array(void) {
    FfiStringArray a = {(FfiOwnedStr *)8, 0, 0};
    return a;
}

/* The failure values are built only when needed (they allocate). */
#define DH_SHIM_R(call) DH_SHIM(FfiResult, call, dh_gone_result())

static FfiGetResult dh_ss_get(void *st, FfiStr store, FfiStr key) {
    DH_SHIM(FfiGetResult, dh_py_ss_get(st, store, key), dh_gone_get());
}
static FfiResult dh_ss_set(void *st, FfiStr store, FfiStr key, const uint8_t *v, size_t n) {
    DH_SHIM_R(dh_py_ss_set(st, store, key, v, n));
}
static FfiResult dh_ss_delete(void *st, FfiStr store, FfiStr key) {
    DH_SHIM_R(dh_py_ss_delete(st, store, key));
}
static FfiResult dh_ss_contains_key(void *st, FfiStr store, FfiStr key) {
    DH_SHIM_R(dh_py_ss_contains_key(st, store, key));
}
static FfiResult dh_ss_get_many(void *st, FfiStr store, const FfiStr *keys, size_t n,
                                FfiGetResult *out) {
    DH_SHIM_R(dh_py_ss_get_many(st, store, keys, n, out));
}
static FfiResult dh_ss_set_many(void *st, FfiStr store, const FfiStr *keys,
                                const uint8_t *const *values, const size_t *lens, size_t n) {
    DH_SHIM_R(dh_py_ss_set_many(st, store, keys, values, lens, n));
}
static int64_t dh_ss_delete_many(void *st, FfiStr store, const FfiStr *keys, size_t n) {
    DH_SHIM(int64_t, dh_py_ss_delete_many(st, store, keys, n), -1);
}
static int64_t dh_ss_clear_store(void *st, FfiStr store) {
    DH_SHIM(int64_t, dh_py_ss_clear_store(st, store), -1);
}
static FfiStringArray dh_ss_list_keys(void *st, FfiStr store) {
    DH_SHIM(FfiStringArray, dh_py_ss_list_keys(st, store), dh_gone_array());
}
static FfiResult dh_ss_store_exists(void *st, FfiStr store) {
    DH_SHIM_R(dh_py_ss_store_exists(st, store));
}
static int64_t dh_ss_key_count(void *st, FfiStr store) {
    DH_SHIM(int64_t, dh_py_ss_key_count(st, store), -1);
}
static FfiResult dh_ss_sync(void *st) { DH_SHIM_R(dh_py_ss_sync(st)); }
static void dh_ss_drop(void *st) { DH_SHIM_VOID(dh_py_ss_drop(st)); }

/* Fill a host-owned StateStoreVtable whose state is a table key. */
void dh_state_store_vtable_init(StateStoreVtable *vt, void *state) {
    vt->state = state;
    vt->get_fn = dh_ss_get;
    vt->set_fn = dh_ss_set;
    vt->delete_fn = dh_ss_delete;
    vt->contains_key_fn = dh_ss_contains_key;
    vt->get_many_fn = dh_ss_get_many;
    vt->set_many_fn = dh_ss_set_many;
    vt->delete_many_fn = dh_ss_delete_many;
    vt->clear_store_fn = dh_ss_clear_store;
    vt->list_keys_fn = dh_ss_list_keys;
    vt->store_exists_fn = dh_ss_store_exists;
    vt->key_count_fn = dh_ss_key_count;
    vt->sync_fn = dh_ss_sync;
    vt->drop_fn = dh_ss_drop;
}

static FfiCredentialsResult dh_gone_credentials(void) {
    FfiCredentialsResult r;
    memset(&r, 0, sizeof r);
    r.error_code = 1;
    r.error_msg = dh_strdup(DH_GONE);
    return r;
}
static FfiCredentialsResult dh_id_get(const void *st) {
    DH_SHIM(FfiCredentialsResult, dh_py_id_get_credentials(st), dh_gone_credentials());
}
static void *dh_id_clone(const void *st) { DH_SHIM(void *, dh_py_id_clone(st), NULL); }
static void dh_id_drop(void *st) { DH_SHIM_VOID(dh_py_id_drop(st)); }

void dh_identity_vtable_init(IdentityProviderVtable *vt, void *state) {
    vt->state = state;
    vt->get_credentials_fn = dh_id_get;
    vt->clone_fn = dh_id_clone;
    vt->drop_fn = dh_id_drop;
}

static void *dh_null_executor(void *future) {
    (void)future;
    return NULL;
}

static int64_t dh_bp_bootstrap(void *st, FfiStr query_id, const FfiStr *nodes, size_t n_nodes,
                               const FfiStr *rels, size_t n_rels, FfiStr request_id,
                               FfiStr server_id, FfiStr source_id, FfiBootstrapSender *sender) {
    DH_SHIM(int64_t,
            dh_py_bootstrap(st, query_id, nodes, n_nodes, rels, n_rels, request_id, server_id,
                            source_id, sender),
            -1);
}
static void dh_bp_drop(void *st) { DH_SHIM_VOID(dh_py_provider_drop(st)); }

/* A heap BootstrapProviderVtable (malloc) backed by a Python provider; the
 * plugin that receives it owns and frees it. */
BootstrapProviderVtable *dh_bootstrap_provider_vtable_new(void *state) {
    BootstrapProviderVtable *vt = malloc(sizeof *vt);
    if (!vt) return NULL;
    vt->state = state;
    vt->executor = dh_null_executor;
    vt->bootstrap_fn = dh_bp_bootstrap;
    vt->drop_fn = dh_bp_drop;
    return vt;
}

/* A host-built FfiBootstrapSender whose state is a channel key. */
void dh_bootstrap_sender_init(FfiBootstrapSender *sender, uint64_t key) {
    sender->state = (void *)(uintptr_t)key;
    sender->send_fn = dh_bootstrap_sender_send;
    sender->drop_fn = dh_bootstrap_sender_drop;
}

/* Exposed as function pointers so Python can hand them to plugins. */
LogCallbackFn dh_log_callback_ptr(void) { return dh_log_shim; }
LifecycleCallbackFn dh_lifecycle_callback_ptr(void) { return dh_lifecycle_shim; }
FfiChangePushCallbackFn dh_change_push_ptr(void) { return dh_change_push; }
FfiBootstrapPushCallbackFn dh_bootstrap_push_ptr(void) { return dh_bootstrap_push; }
FfiResultPushCallbackFn dh_result_pull_ptr(void) { return dh_result_pull; }

/* ---- libraries ---------------------------------------------------------- */

/* Open a plugin library (never closed: plugin threads may still run its
 * code).  On failure returns NULL and copies dlerror() into err. */
void *dh_dlopen(const char *path, char *err, size_t errlen) {
    dlerror();
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h && err && errlen) {
        const char *e = dlerror();
        snprintf(err, errlen, "%s", e ? e : "dlopen failed");
    }
    return h;
}

void *dh_dlsym(void *handle, const char *name) {
    dlerror();
    return dlsym(handle, name);
}
