/*
 * memstore_stress.c - drives ffi_build/memstore.c from several native
 * threads at once, under AddressSanitizer/UndefinedBehaviorSanitizer or
 * ThreadSanitizer (tests/test_memstore.py compiles and runs it).
 *
 * Worker threads call every function of a bound vtable with random stores,
 * keys and values, freeing what comes back as a plugin must; one thread
 * unbinds and rebinds vtables meanwhile (calls on an unbound key must answer
 * "state store is closed"), and the store's owner reference is dropped
 * while the workers still run.  Exit status 0 and no sanitizer report mean
 * no leak, no use after free, no data race.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drasi_plugin.h"
#include "memstore.h"

#define THREADS 4
#define STEPS 20000

static StateStoreVtable vt_live; /* bound for the whole run */
static atomic_int failures;

static void fail(const char *what) {
    fprintf(stderr, "memstore_stress: %s\n", what);
    atomic_fetch_add(&failures, 1);
}

static uint64_t next_rand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static const char *STORES[] = {"", "a", "store-b", "größe"};
static const char *KEYS[] = {"", "k", "k2", "ключ", "key-with-a-longer-name", "x"};

static FfiStr pick(const char **names, size_t n, uint64_t *rng) {
    const char *s = names[next_rand(rng) % n];
    FfiStr f = {s, strlen(s)};
    return f;
}

static void free_result(FfiResult r) { free(r.error_msg); }

static void free_get(FfiGetResult g) {
    if (g.cap) free(g.data);
    free(g.error_msg);
}

static void free_array(FfiStringArray a) {
    for (size_t i = 0; i < a.len; i++)
        if (a.data[i].cap) free(a.data[i].ptr);
    if (a.cap) free(a.data);
}

static void one_step(const StateStoreVtable *vt, uint64_t *rng, bool expect_open) {
    FfiStr sid = pick(STORES, 4, rng);
    FfiStr key = pick(KEYS, 6, rng);
    uint8_t value[64];
    size_t vlen = next_rand(rng) % sizeof value;
    memset(value, (int)(next_rand(rng) & 0xff), vlen);
    FfiStr keys[4];
    const uint8_t *values[4];
    size_t lens[4];
    FfiGetResult out[4];
    for (int i = 0; i < 4; i++) {
        keys[i] = pick(KEYS, 6, rng);
        values[i] = value;
        lens[i] = next_rand(rng) % sizeof value;
    }
    switch (next_rand(rng) % 12) {
    case 0: {
        FfiResult r = vt->set_fn(vt->state, sid, key, value, vlen);
        if (expect_open && r.error_code) fail("set failed");
        free_result(r);
        break;
    }
    case 1: {
        FfiGetResult g = vt->get_fn(vt->state, sid, key);
        if (!g.data) fail("get returned NULL data");
        if (g.found && g.len && g.cap < g.len) fail("get cap < len");
        if (expect_open && g.error_code) fail("get failed");
        free_get(g);
        break;
    }
    case 2:
        free_result(vt->delete_fn(vt->state, sid, key));
        break;
    case 3:
        free_result(vt->contains_key_fn(vt->state, sid, key));
        break;
    case 4: {
        FfiResult r = vt->get_many_fn(vt->state, sid, keys, 4, out);
        if (r.error_code == 0)
            for (int i = 0; i < 4; i++) free_get(out[i]);
        else if (expect_open)
            fail("get_many failed");
        free_result(r);
        break;
    }
    case 5: {
        FfiResult r = vt->set_many_fn(vt->state, sid, keys, values, lens, 4);
        if (expect_open && r.error_code) fail("set_many failed");
        free_result(r);
        break;
    }
    case 6:
        if (vt->delete_many_fn(vt->state, sid, keys, 4) < 0 && expect_open)
            fail("delete_many failed");
        break;
    case 7:
        if (next_rand(rng) % 8 == 0 && vt->clear_store_fn(vt->state, sid) < 0 && expect_open)
            fail("clear_store failed");
        break;
    case 8:
        free_array(vt->list_keys_fn(vt->state, sid));
        break;
    case 9:
        free_result(vt->store_exists_fn(vt->state, sid));
        break;
    case 10:
        if (vt->key_count_fn(vt->state, sid) < 0 && expect_open) fail("key_count failed");
        break;
    default:
        free_result(vt->sync_fn(vt->state));
        break;
    }
}

static void *worker(void *arg) {
    uint64_t rng = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ULL + 1;
    for (int i = 0; i < STEPS; i++) one_step(&vt_live, &rng, true);
    return NULL;
}

typedef struct churn_arg {
    DhMemStore *store;
} churn_arg;

static void *churner(void *arg) {
    churn_arg *c = arg;
    uint64_t rng = 77;
    for (uint64_t key = 0x9000; key < 0x9000 + 500; key++) {
        StateStoreVtable vt;
        if (dh_mem_bind(key, c->store, 64)) {
            fail("bind failed");
            continue;
        }
        dh_mem_vtable_init(&vt, (void *)(uintptr_t)key);
        for (int i = 0; i < 20; i++) one_step(&vt, &rng, true);
        vt.drop_fn(vt.state);
        dh_mem_unbind(key);
        FfiGetResult g = vt.get_fn(vt.state, (FfiStr){"a", 1}, (FfiStr){"k", 1});
        if (!g.error_code || !g.error_msg || strcmp(g.error_msg, "state store is closed") != 0)
            fail("a call after unbind was not answered 'closed'");
        free_get(g);
        for (int i = 0; i < 5; i++) one_step(&vt, &rng, false);
        vt.drop_fn(vt.state); /* late drop: harmless */
    }
    return NULL;
}

int main(void) {
    DhMemStore *store = dh_mem_new();
    if (!store || dh_mem_bind(0x42, store, 1 << 20)) return 2;
    dh_mem_vtable_init(&vt_live, (void *)(uintptr_t)0x42);

    pthread_t ids[THREADS + 1];
    churn_arg c = {store};
    for (uintptr_t i = 0; i < THREADS; i++) pthread_create(&ids[i], NULL, worker, (void *)(i + 1));
    pthread_create(&ids[THREADS], NULL, churner, &c);
    dh_mem_release(store); /* the owner goes away; the bindings keep the table */
    for (int i = 0; i <= THREADS; i++) pthread_join(ids[i], NULL);

    int64_t drops = -1, late = -1;
    if (dh_mem_binding_counts(0x42, &drops, &late) || drops != 0 || late != 0)
        fail("the live binding's counters are wrong");
    dh_mem_unbind(0x42); /* the last reference: frees every store */
    if (dh_mem_binding_counts(0x42, &drops, &late) == 0) fail("unbind left the binding");
    int n = atomic_load(&failures);
    if (n) fprintf(stderr, "memstore_stress: %d failures\n", n);
    printf("memstore_stress: ok\n");
    return n ? 1 : 0;
}
