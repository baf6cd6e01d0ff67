/*
 * mini_store.h - a minimal host-side state store and identity provider in C,
 * used by native_consumer.c (the benchmark baseline) and selftest.c.
 *
 * The store is one mutex-protected open-addressing hash table (linear
 * probing, tombstones, doubling at 70 % load) whose keys are
 * "<store id>\0<key>".  It follows the ABI ownership rules exactly: returned
 * buffers are malloc'd (an empty value is a dangling pointer with cap 0),
 * absent keys and stores are errors with the message "not_found".
 * Everything is `static inline` so that an including file uses what it needs
 * without unused-function warnings.
 */
#ifndef FX_MINI_STORE_H
#define FX_MINI_STORE_H

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drasi_plugin.h"

typedef struct MsSlot {
    char *key; /* composite key */
    size_t klen;
    uint8_t *val;
    size_t vlen;
    int state; /* 0 empty, 1 used, 2 deleted */
} MsSlot;

typedef struct MiniStore {
    pthread_mutex_t lock;
    MsSlot *slots;
    size_t cap;
    size_t used;
    size_t tombs;
    int64_t drops; /* drop_fn(state) calls */
    int64_t calls;
} MiniStore;

static inline void *ms_alloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) abort();
    return p;
}

static inline char *ms_cstr(const char *s) {
    size_t n = strlen(s);
    char *p = ms_alloc(n + 1);
    memcpy(p, s, n + 1);
    return p;
}

static inline FfiResult ms_ok(void) {
    FfiResult r = {0, NULL};
    return r;
}

static inline FfiResult ms_err(const char *msg) {
    FfiResult r = {1, ms_cstr(msg)};
    return r;
}

static inline uint64_t ms_hash(const char *p, size_t n) {
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

/* composite key "<store>\0<key>" in buf (malloc'd when large) */
static inline char *ms_ck(FfiStr store, FfiStr key, size_t *len, char *small, size_t smalllen) {
    *len = store.len + 1 + key.len;
    char *ck = *len <= smalllen ? small : ms_alloc(*len);
    if (store.len) memcpy(ck, store.ptr, store.len);
    ck[store.len] = '\0';
    if (key.len) memcpy(ck + store.len + 1, key.ptr, key.len);
    return ck;
}

static inline void ms_init(MiniStore *ms) {
    memset(ms, 0, sizeof *ms);
    pthread_mutex_init(&ms->lock, NULL);
    ms->cap = 64;
    ms->slots = calloc(ms->cap, sizeof(MsSlot));
    if (!ms->slots) abort();
}

static inline void ms_destroy(MiniStore *ms) {
    for (size_t i = 0; i < ms->cap; i++)
        if (ms->slots[i].state == 1) {
            free(ms->slots[i].key);
            free(ms->slots[i].val);
        }
    free(ms->slots);
    pthread_mutex_destroy(&ms->lock);
}

/* index of the used slot holding ck, or SIZE_MAX */
static inline size_t ms_find(MiniStore *ms, const char *ck, size_t n) {
    size_t mask = ms->cap - 1;
    for (size_t i = ms_hash(ck, n) & mask;; i = (i + 1) & mask) {
        MsSlot *s = &ms->slots[i];
        if (s->state == 0) return SIZE_MAX;
        if (s->state == 1 && s->klen == n && memcmp(s->key, ck, n) == 0) return i;
    }
}

static inline void ms_insert_slot(MsSlot *slots, size_t cap, MsSlot e) {
    size_t mask = cap - 1;
    size_t i = ms_hash(e.key, e.klen) & mask;
    while (slots[i].state == 1) i = (i + 1) & mask;
    slots[i] = e;
    slots[i].state = 1;
}

static inline void ms_grow(MiniStore *ms) {
    size_t cap = ms->cap * 2;
    while ((ms->used + 1) * 10 >= cap * 7) cap *= 2;
    MsSlot *slots = calloc(cap, sizeof(MsSlot));
    if (!slots) abort();
    for (size_t i = 0; i < ms->cap; i++)
        if (ms->slots[i].state == 1) ms_insert_slot(slots, cap, ms->slots[i]);
    free(ms->slots);
    ms->slots = slots;
    ms->cap = cap;
    ms->tombs = 0;
}

static inline void ms_put_locked(MiniStore *ms, const char *ck, size_t n, const uint8_t *v,
                                 size_t vlen) {
    size_t i = ms_find(ms, ck, n);
    uint8_t *copy = ms_alloc(vlen);
    if (vlen) memcpy(copy, v, vlen);
    if (i != SIZE_MAX) {
        free(ms->slots[i].val);
        ms->slots[i].val = copy;
        ms->slots[i].vlen = vlen;
        return;
    }
    if ((ms->used + ms->tombs + 1) * 10 >= ms->cap * 7) ms_grow(ms);
    MsSlot e = {ms_alloc(n), n, copy, vlen, 1};
    memcpy(e.key, ck, n);
    ms_insert_slot(ms->slots, ms->cap, e);
    ms->used++;
}

static inline bool ms_del_locked(MiniStore *ms, const char *ck, size_t n) {
    size_t i = ms_find(ms, ck, n);
    if (i == SIZE_MAX) return false;
    free(ms->slots[i].key);
    free(ms->slots[i].val);
    ms->slots[i].key = NULL;
    ms->slots[i].val = NULL;
    ms->slots[i].state = 2;
    ms->used--;
    ms->tombs++;
    return true;
}

static inline bool ms_in_store(const MsSlot *s, FfiStr store) {
    return s->state == 1 && s->klen > store.len && s->key[store.len] == '\0' &&
           (store.len == 0 || memcmp(s->key, store.ptr, store.len) == 0);
}

/* Public, lock-taking helpers for a host written in C. */
static inline void ms_set(MiniStore *ms, const char *store, const char *key, const void *v,
                          size_t vlen) {
    char small[256];
    size_t n;
    char *ck = ms_ck((FfiStr){store, strlen(store)}, (FfiStr){key, strlen(key)}, &n, small,
                     sizeof small);
    pthread_mutex_lock(&ms->lock);
    ms_put_locked(ms, ck, n, v, vlen);
    pthread_mutex_unlock(&ms->lock);
    if (ck != small) free(ck);
}

/* Copy of the value (NUL-terminated, malloc'd) or NULL. */
static inline char *ms_get(MiniStore *ms, const char *store, const char *key, size_t *vlen) {
    char small[256];
    size_t n;
    char *ck = ms_ck((FfiStr){store, strlen(store)}, (FfiStr){key, strlen(key)}, &n, small,
                     sizeof small);
    char *out = NULL;
    pthread_mutex_lock(&ms->lock);
    size_t i = ms_find(ms, ck, n);
    if (i != SIZE_MAX) {
        out = ms_alloc(ms->slots[i].vlen + 1);
        memcpy(out, ms->slots[i].val, ms->slots[i].vlen);
        out[ms->slots[i].vlen] = '\0';
        if (vlen) *vlen = ms->slots[i].vlen;
    }
    pthread_mutex_unlock(&ms->lock);
    if (ck != small) free(ck);
    return out;
}

/* ---- vtable functions ---- */

static inline FfiGetResult ms_v_get(void *state, FfiStr store, FfiStr key) {
    MiniStore *ms = state;
    FfiGetResult r;
    memset(&r, 0, sizeof r);
    r.data = (uint8_t *)(uintptr_t)1;
    char small[256];
    size_t n;
    char *ck = ms_ck(store, key, &n, small, sizeof small);
    pthread_mutex_lock(&ms->lock);
    ms->calls++;
    size_t i = ms_find(ms, ck, n);
    if (i != SIZE_MAX) {
        r.found = true;
        r.len = ms->slots[i].vlen;
        if (r.len) {
            r.data = ms_alloc(r.len);
            memcpy(r.data, ms->slots[i].val, r.len);
            r.cap = r.len;
        }
    }
    pthread_mutex_unlock(&ms->lock);
    if (ck != small) free(ck);
    return r;
}

static inline FfiResult ms_v_set(void *state, FfiStr store, FfiStr key, const uint8_t *v,
                                 size_t vlen) {
    MiniStore *ms = state;
    char small[256];
    size_t n;
    char *ck = ms_ck(store, key, &n, small, sizeof small);
    pthread_mutex_lock(&ms->lock);
    ms->calls++;
    ms_put_locked(ms, ck, n, v, vlen);
    pthread_mutex_unlock(&ms->lock);
    if (ck != small) free(ck);
    return ms_ok();
}

static inline FfiResult ms_v_delete(void *state, FfiStr store, FfiStr key) {
    MiniStore *ms = state;
    char small[256];
    size_t n;
    char *ck = ms_ck(store, key, &n, small, sizeof small);
    pthread_mutex_lock(&ms->lock);
    ms_del_locked(ms, ck, n);
    pthread_mutex_unlock(&ms->lock);
    if (ck != small) free(ck);
    return ms_ok();
}

static inline FfiResult ms_v_contains(void *state, FfiStr store, FfiStr key) {
    MiniStore *ms = state;
    char small[256];
    size_t n;
    char *ck = ms_ck(store, key, &n, small, sizeof small);
    pthread_mutex_lock(&ms->lock);
    bool found = ms_find(ms, ck, n) != SIZE_MAX;
    pthread_mutex_unlock(&ms->lock);
    if (ck != small) free(ck);
    return found ? ms_ok() : ms_err("not_found");
}

static inline FfiResult ms_v_get_many(void *state, FfiStr store, const FfiStr *keys, size_t n,
                                      FfiGetResult *out) {
    for (size_t i = 0; i < n; i++) out[i] = ms_v_get(state, store, keys[i]);
    return ms_ok();
}

static inline FfiResult ms_v_set_many(void *state, FfiStr store, const FfiStr *keys,
                                      const uint8_t *const *values, const size_t *lens, size_t n) {
    for (size_t i = 0; i < n; i++) {
        FfiResult r = ms_v_set(state, store, keys[i], values[i], lens[i]);
        free(r.error_msg);
    }
    return ms_ok();
}

static inline int64_t ms_v_delete_many(void *state, FfiStr store, const FfiStr *keys, size_t n) {
    MiniStore *ms = state;
    int64_t count = 0;
    for (size_t i = 0; i < n; i++) {
        char small[256];
        size_t kn;
        char *ck = ms_ck(store, keys[i], &kn, small, sizeof small);
        pthread_mutex_lock(&ms->lock);
        count += ms_del_locked(ms, ck, kn);
        pthread_mutex_unlock(&ms->lock);
        if (ck != small) free(ck);
    }
    return count;
}

static inline int64_t ms_v_clear(void *state, FfiStr store) {
    MiniStore *ms = state;
    int64_t count = 0;
    pthread_mutex_lock(&ms->lock);
    for (size_t i = 0; i < ms->cap; i++)
        if (ms_in_store(&ms->slots[i], store)) count += ms_del_locked(ms, ms->slots[i].key, ms->slots[i].klen);
    pthread_mutex_unlock(&ms->lock);
    return count;
}

static inline FfiStringArray ms_v_list(void *state, FfiStr store) {
    MiniStore *ms = state;
    FfiStringArray a = {(FfiOwnedStr *)(uintptr_t)8, 0, 0};
    pthread_mutex_lock(&ms->lock);
    size_t n = 0;
    for (size_t i = 0; i < ms->cap; i++) n += ms_in_store(&ms->slots[i], store);
    if (n) {
        a.data = ms_alloc(n * sizeof(FfiOwnedStr));
        a.cap = n;
        for (size_t i = 0; i < ms->cap; i++) {
            if (!ms_in_store(&ms->slots[i], store)) continue;
            size_t kl = ms->slots[i].klen - store.len - 1;
            char *k = ms_alloc(kl + 1);
            memcpy(k, ms->slots[i].key + store.len + 1, kl);
            k[kl] = '\0';
            a.data[a.len].ptr = k;
            a.data[a.len].len = kl;
            a.data[a.len].cap = kl + 1;
            a.len++;
        }
    }
    pthread_mutex_unlock(&ms->lock);
    return a;
}

static inline int64_t ms_v_key_count(void *state, FfiStr store) {
    MiniStore *ms = state;
    int64_t n = 0;
    pthread_mutex_lock(&ms->lock);
    for (size_t i = 0; i < ms->cap; i++) n += ms_in_store(&ms->slots[i], store);
    pthread_mutex_unlock(&ms->lock);
    return n;
}

static inline FfiResult ms_v_exists(void *state, FfiStr store) {
    return ms_v_key_count(state, store) > 0 ? ms_ok() : ms_err("not_found");
}

static inline FfiResult ms_v_sync(void *state) {
    (void)state;
    return ms_ok();
}

static inline void ms_v_drop(void *state) {
    MiniStore *ms = state;
    __atomic_add_fetch(&ms->drops, 1, __ATOMIC_SEQ_CST);
}

static inline StateStoreVtable ms_vtable(MiniStore *ms) {
    StateStoreVtable vt = {ms,          ms_v_get,    ms_v_set,         ms_v_delete, ms_v_contains,
                           ms_v_get_many, ms_v_set_many, ms_v_delete_many, ms_v_clear, ms_v_list,
                           ms_v_exists, ms_v_key_count, ms_v_sync,     ms_v_drop};
    return vt;
}

/* ---- identity provider: a Token credential; clone makes a new state ---- */

typedef struct MiniIdentity {
    int64_t *live; /* shared count of live states */
    int64_t *drops;
} MiniIdentity;

static inline FfiCredentialsResult mi_get(const void *state) {
    (void)state;
    FfiCredentialsResult r;
    memset(&r, 0, sizeof r);
    r.credentials.credential_type = FFI_CREDENTIAL_TOKEN;
    r.credentials.field1 = ms_cstr("fixture-user");
    r.credentials.field2 = ms_cstr("fixture-token");
    r.credentials.field3 = NULL;
    return r;
}

static inline void *mi_clone(const void *state) {
    const MiniIdentity *src = state;
    MiniIdentity *c = ms_alloc(sizeof *c);
    *c = *src;
    __atomic_add_fetch(c->live, 1, __ATOMIC_SEQ_CST);
    return c;
}

static inline void mi_drop(void *state) {
    MiniIdentity *m = state;
    __atomic_sub_fetch(m->live, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(m->drops, 1, __ATOMIC_SEQ_CST);
    free(m);
}

#endif /* FX_MINI_STORE_H */
