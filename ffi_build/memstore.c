/*
 * memstore.c - MemoryStateStore's native table and the StateStoreVtable
 * that reaches it without entering Python (declarations in memstore.h).
 *
 * Layout: a DhMemStore holds one mutex and an open-addressing table (linear
 * probing, backward-shift deletion) of store ids, each pointing at a table
 * of keys and values.  A store exists while it holds at least one key: the
 * last key removed frees it.  Values and keys are private malloc'd copies.
 *
 * Lifetimes: a DhMemStore is reference counted (the Python object holds one
 * reference; every call in progress holds one), so a store is freed only
 * when no call uses it.  The vtable's state is a key into the binding table
 * below, never a pointer: a call naming a key that dh_mem_unbind removed is
 * answered with "state store is closed", however late it comes.
 *
 * Semantics match the Python bridge (drasi_host/bridges/state_store.py):
 * strict UTF-8 store ids and keys, NULL with a length is an error, values
 * above the binding's limit are refused, absence is the error "not_found"
 * for contains_key/store_exists, deleting a missing key succeeds, list_keys
 * is sorted (byte order of UTF-8 is code point order), batch writes happen
 * under one lock hold.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drasi_plugin.h"
#include "memstore.h"

#define MS_MAX_STRING_LEN ((size_t)16 * 1024 * 1024)
#define MS_MAX_ARRAY_LEN ((size_t)1000000)
#define MS_DANGLING_BYTES ((uint8_t *)1)
#define MS_DANGLING_ARRAY ((FfiOwnedStr *)8)
#define MS_DANGLING_STR ((char *)1)
/* Values up to this size are copied under the lock (in place when the old
 * value has the same size); larger ones are copied before taking it. */
#define MS_SMALL_VALUE ((size_t)256)

static const char MS_CLOSED[] = "state store is closed";
static const char MS_NOT_FOUND[] = "not_found";

/* ------------------------------------------------------------ messages */

static char *ms_message(const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
    char *out = malloc(len + 1);
    if (out) {
        memcpy(out, buf, len);
        out[len] = '\0';
    }
    return out;
}

/* ------------------------------------------------------- input checks */

/* Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF);
 * the offset of the first bad byte, or len when valid. */
static size_t ms_utf8_error(const unsigned char *s, size_t len) {
    size_t i = 0;
    while (i + 8 <= len) { /* ASCII, eight bytes at a time */
        uint64_t word;
        memcpy(&word, s + i, 8);
        if (word & 0x8080808080808080ULL) break;
        i += 8;
    }
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return i;
        }
        if (len - i <= need) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += need + 1;
    }
    return len;
}

/* 0 when (p, len) is a valid borrowed string; otherwise -1 and *err. */
static int ms_check_str(const char *p, size_t len, const char *what, char **err) {
    if (len == 0) return 0;
    if (len > MS_MAX_STRING_LEN) {
        *err = ms_message("%s: string of %zu bytes exceeds %zu", what, len, MS_MAX_STRING_LEN);
        return -1;
    }
    if (!p) {
        *err = ms_message("%s: NULL pointer with length %zu", what, len);
        return -1;
    }
    size_t bad = ms_utf8_error((const unsigned char *)p, len);
    if (bad != len) {
        *err = ms_message("%s: invalid UTF-8 (invalid byte at byte %zu)", what, bad);
        return -1;
    }
    return 0;
}

static int ms_check_keys(const FfiStr *keys, size_t n, char **err) {
    if (n == 0) return 0;
    if (n > MS_MAX_ARRAY_LEN) {
        *err = ms_message("state store keys: array of %zu strings exceeds %zu", n,
                          MS_MAX_ARRAY_LEN);
        return -1;
    }
    if (!keys) {
        *err = ms_message("state store keys: NULL array with length %zu", n);
        return -1;
    }
    char what[64];
    for (size_t i = 0; i < n; i++) {
        snprintf(what, sizeof what, "state store keys[%zu]", i);
        if (ms_check_str(keys[i].ptr, keys[i].len, what, err)) return -1;
    }
    return 0;
}

/* ---------------------------------------------------------- hash table */

typedef struct ms_entry {
    uint64_t hash;
    char *key; /* NULL: an empty slot (an empty key is a 1-byte allocation) */
    size_t klen;
    void *val; /* value bytes, or the ms_table of a store */
    size_t vlen;
} ms_entry;

typedef struct ms_table {
    ms_entry *slots;
    size_t cap; /* 0 or a power of two */
    size_t count;
} ms_table;

static uint64_t ms_hash(const char *p, size_t len) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static ms_entry *ms_find(const ms_table *t, uint64_t h, const char *k, size_t klen) {
    if (!t->cap) return NULL;
    size_t mask = t->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        ms_entry *e = &t->slots[i];
        if (!e->key) return NULL;
        if (e->hash == h && e->klen == klen && (klen == 0 || memcmp(e->key, k, klen) == 0)) return e;
    }
}

static int ms_grow(ms_table *t) {
    size_t cap = t->cap ? t->cap * 2 : 8;
    ms_entry *slots = calloc(cap, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < t->cap; i++) {
        ms_entry *e = &t->slots[i];
        if (!e->key) continue;
        size_t j = e->hash & (cap - 1);
        while (slots[j].key) j = (j + 1) & (cap - 1);
        slots[j] = *e;
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

/* The entry for k, added (with a copy of k, val NULL) when missing; NULL
 * when out of memory. */
static ms_entry *ms_upsert(ms_table *t, uint64_t h, const char *k, size_t klen, bool *added) {
    ms_entry *e = ms_find(t, h, k, klen);
    *added = false;
    if (e) return e;
    if ((t->count + 1) * 4 > t->cap * 3 && ms_grow(t)) return NULL;
    char *copy = malloc(klen ? klen : 1);
    if (!copy) return NULL;
    if (klen) memcpy(copy, k, klen);
    size_t mask = t->cap - 1;
    size_t i = h & mask;
    while (t->slots[i].key) i = (i + 1) & mask;
    e = &t->slots[i];
    e->hash = h;
    e->key = copy;
    e->klen = klen;
    e->val = NULL;
    e->vlen = 0;
    t->count++;
    *added = true;
    return e;
}

/* Remove e (its key is freed, its value is the caller's). */
static void ms_remove(ms_table *t, ms_entry *e) {
    size_t mask = t->cap - 1;
    size_t i = (size_t)(e - t->slots);
    free(e->key);
    for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        ms_entry *n = &t->slots[j];
        if (!n->key) break;
        size_t home = n->hash & mask;
        /* n may move into the hole at i unless its home lies in (i, j] */
        bool stays = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (stays) continue;
        t->slots[i] = *n;
        i = j;
    }
    t->slots[i].key = NULL;
    t->count--;
}

static void ms_free_values(ms_table *t) {
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slots[i].key) continue;
        free(t->slots[i].key);
        free(t->slots[i].val);
    }
    free(t->slots);
    t->slots = NULL;
    t->cap = t->count = 0;
}

/* --------------------------------------------------------------- store */

struct DhMemStore {
    pthread_mutex_t mu;
    ms_table stores; /* store id -> ms_table * */
    atomic_long refs;
};

DhMemStore *dh_mem_new(void) {
    DhMemStore *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (pthread_mutex_init(&s->mu, NULL)) {
        free(s);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    return s;
}

static void ms_ref(DhMemStore *s) { atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed); }

void dh_mem_release(DhMemStore *s) {
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) return;
    for (size_t i = 0; i < s->stores.cap; i++) {
        ms_entry *e = &s->stores.slots[i];
        if (!e->key) continue;
        free(e->key);
        ms_free_values(e->val);
        free(e->val);
    }
    free(s->stores.slots);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static ms_table *ms_store(DhMemStore *s, const char *sid, size_t sl) {
    ms_entry *e = ms_find(&s->stores, ms_hash(sid, sl), sid, sl);
    return e ? e->val : NULL;
}

/* The store sid, created when missing; NULL when out of memory. */
static ms_table *ms_store_add(DhMemStore *s, const char *sid, size_t sl) {
    bool added;
    ms_entry *e = ms_upsert(&s->stores, ms_hash(sid, sl), sid, sl, &added);
    if (!e) return NULL;
    if (added) {
        e->val = calloc(1, sizeof(ms_table));
        if (!e->val) {
            ms_remove(&s->stores, e);
            return NULL;
        }
    }
    return e->val;
}

/* Free the store sid when it has no keys left. */
static void ms_store_drop_if_empty(DhMemStore *s, const char *sid, size_t sl) {
    ms_entry *e = ms_find(&s->stores, ms_hash(sid, sl), sid, sl);
    if (!e) return;
    ms_table *t = e->val;
    if (t->count) return;
    free(t->slots);
    free(t);
    ms_remove(&s->stores, e);
}

static FfiGetResult ms_get_error(char *msg) {
    FfiGetResult r = {MS_DANGLING_BYTES, 0, 0, false, 1, msg};
    return r;
}

/* A found result with a malloc'd copy (dangling, cap 0, when empty); *oom
 * set when malloc fails. */
static FfiGetResult ms_found(const ms_entry *e, bool *oom) {
    FfiGetResult r = {MS_DANGLING_BYTES, 0, 0, true, 0, NULL};
    if (e->vlen) {
        uint8_t *copy = malloc(e->vlen);
        if (!copy) {
            *oom = true;
            return r;
        }
        memcpy(copy, e->val, e->vlen);
        r.data = copy;
        r.len = r.cap = e->vlen;
    }
    return r;
}

FfiGetResult dh_get_found_copy(const char *data, size_t n) {
    FfiGetResult r = {MS_DANGLING_BYTES, 0, 0, true, 0, NULL};
    if (!n) return r;
    uint8_t *copy = malloc(n);
    if (!copy) return ms_get_error(ms_message("state store get: out of memory"));
    memcpy(copy, data, n);
    r.data = copy;
    r.len = r.cap = n;
    return r;
}

FfiGetResult dh_mem_get(DhMemStore *s, const char *sid, size_t sl, const char *key, size_t kl) {
    char *err = NULL;
    if (ms_check_str(sid, sl, "state store id", &err) ||
        ms_check_str(key, kl, "state store key", &err))
        return ms_get_error(err);
    FfiGetResult r = {MS_DANGLING_BYTES, 0, 0, false, 0, NULL};
    bool oom = false;
    pthread_mutex_lock(&s->mu);
    ms_table *t = ms_store(s, sid, sl);
    ms_entry *e = t ? ms_find(t, ms_hash(key, kl), key, kl) : NULL;
    if (e) r = ms_found(e, &oom);
    pthread_mutex_unlock(&s->mu);
    if (oom) return ms_get_error(ms_message("state store get: out of memory"));
    return r;
}

static int ms_set(DhMemStore *s, const char *sid, size_t sl, const char *key, size_t kl,
                  const uint8_t *value, size_t n, size_t max_value_len, char **err) {
    if (n > max_value_len) {
        *err = ms_message("state store value: %zu bytes exceeds the limit of %zu", n,
                          max_value_len);
        return -1;
    }
    if (n && !value) {
        *err = ms_message("state store value: NULL pointer with length %zu", n);
        return -1;
    }
    if (ms_check_str(sid, sl, "state store id", err) ||
        ms_check_str(key, kl, "state store key", err))
        return -1;
    /* A large value is copied before taking the lock; a small one that
     * replaces a value of the same size is copied into its buffer. */
    bool small = n <= MS_SMALL_VALUE;
    uint8_t *copy = NULL;
    if (n && !small) {
        copy = malloc(n);
        if (!copy) goto oom;
        memcpy(copy, value, n);
    }
    pthread_mutex_lock(&s->mu);
    ms_table *t = ms_store_add(s, sid, sl);
    bool added = false;
    ms_entry *e = t ? ms_upsert(t, ms_hash(key, kl), key, kl, &added) : NULL;
    void *old = NULL;
    if (e && small && n && !added && e->vlen == n) {
        memcpy(e->val, value, n);
    } else if (e) {
        if (small && n) {
            copy = malloc(n);
            if (copy) memcpy(copy, value, n);
        }
        if (n && !copy) { /* out of memory: leave the key as it was */
            if (added) ms_remove(t, e);
            e = NULL;
        } else {
            old = e->val;
            e->val = copy;
            e->vlen = n;
        }
    }
    if (!e && t) ms_store_drop_if_empty(s, sid, sl);
    pthread_mutex_unlock(&s->mu);
    free(old);
    if (e) return 0;
    free(copy);
oom:
    *err = ms_message("state store set: out of memory");
    return -1;
}

int dh_mem_set(DhMemStore *s, const char *sid, size_t sl, const char *key, size_t kl,
               const uint8_t *value, size_t n, char **err) {
    return ms_set(s, sid, sl, key, kl, value, n, SIZE_MAX, err);
}

/* Remove key from the store t of sid (lock held); 1 when it was there. */
static int ms_delete_locked(DhMemStore *s, ms_table *t, const char *key, size_t kl) {
    ms_entry *e = ms_find(t, ms_hash(key, kl), key, kl);
    if (!e) return 0;
    free(e->val);
    ms_remove(t, e);
    (void)s;
    return 1;
}

int dh_mem_delete(DhMemStore *s, const char *sid, size_t sl, const char *key, size_t kl,
                  char **err) {
    if (ms_check_str(sid, sl, "state store id", err) ||
        ms_check_str(key, kl, "state store key", err))
        return -1;
    int removed = 0;
    pthread_mutex_lock(&s->mu);
    ms_table *t = ms_store(s, sid, sl);
    if (t) {
        removed = ms_delete_locked(s, t, key, kl);
        ms_store_drop_if_empty(s, sid, sl);
    }
    pthread_mutex_unlock(&s->mu);
    return removed;
}

int dh_mem_contains(DhMemStore *s, const char *sid, size_t sl, const char *key, size_t kl,
                    char **err) {
    if (ms_check_str(sid, sl, "state store id", err) ||
        ms_check_str(key, kl, "state store key", err))
        return -1;
    pthread_mutex_lock(&s->mu);
    ms_table *t = ms_store(s, sid, sl);
    int found = t && ms_find(t, ms_hash(key, kl), key, kl) != NULL;
    pthread_mutex_unlock(&s->mu);
    return found;
}

int dh_mem_get_many(DhMemStore *s, const char *sid, size_t sl, const FfiStr *keys, size_t n,
                    FfiGetResult *out, char **err) {
    if (ms_check_str(sid, sl, "state store id", err) || ms_check_keys(keys, n, err)) return -1;
    if (n && !out) {
        *err = ms_message("state store get_many: NULL out_values for %zu keys", n);
        return -1;
    }
    bool oom = false;
    size_t done = 0;
    pthread_mutex_lock(&s->mu);
    ms_table *t = ms_store(s, sid, sl);
    for (; done < n && !oom; done++) {
        FfiGetResult r = {MS_DANGLING_BYTES, 0, 0, false, 0, NULL};
        ms_entry *e = t ? ms_find(t, ms_hash(keys[done].ptr, keys[done].len), keys[done].ptr,
                                  keys[done].len)
                        : NULL;
        if (e) r = ms_found(e, &oom);
        out[done] = r;
    }
    pthread_mutex_unlock(&s->mu);
    if (!oom) return 0;
    for (size_t i = 0; i < done; i++) {
        if (out[i].cap) free(out[i].data);
        out[i].data = MS_DANGLING_BYTES;
        out[i].len = out[i].cap = 0;
        out[i].found = false;
    }
    *err = ms_message("state store get_many: out of memory");
    return -1;
}

int dh_mem_set_many(DhMemStore *s, const char *sid, size_t sl, const FfiStr *keys,
                    const uint8_t *const *values, const size_t *lens, size_t n,
                    size_t max_value_len, char **err) {
    if (ms_check_str(sid, sl, "state store id", err) || ms_check_keys(keys, n, err)) return -1;
    if (n == 0) return 0;
    if (!values || !lens) {
        *err = ms_message("state store values: NULL value or length array with length %zu", n);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (lens[i] > max_value_len) {
            *err = ms_message("state store values[%zu]: %zu bytes exceeds the limit of %zu", i,
                              lens[i], max_value_len);
            return -1;
        }
        if (lens[i] && !values[i]) {
            *err = ms_message("state store values[%zu]: NULL pointer with length %zu", i,
                              lens[i]);
            return -1;
        }
    }
    uint8_t **copies = calloc(n, sizeof *copies);
    if (!copies) goto oom;
    for (size_t i = 0; i < n; i++) {
        if (!lens[i]) continue;
        copies[i] = malloc(lens[i]);
        if (!copies[i]) goto oom_copies;
        memcpy(copies[i], values[i], lens[i]);
    }
    /* all-or-nothing: make room for every key before the first write */
    pthread_mutex_lock(&s->mu);
    ms_table *t = ms_store_add(s, sid, sl);
    bool ok = t != NULL;
    while (ok && (t->count + n) * 4 > t->cap * 3) ok = ms_grow(t) == 0;
    for (size_t i = 0; ok && i < n; i++) {
        bool added;
        ms_entry *e = ms_upsert(t, ms_hash(keys[i].ptr, keys[i].len), keys[i].ptr,
                                keys[i].len, &added);
        if (!e) { /* only a key copy can fail here; earlier keys stay written */
            ok = false;
            break;
        }
        void *old = e->val;
        e->val = copies[i];
        e->vlen = lens[i];
        copies[i] = old; /* freed below */
    }
    if (t) ms_store_drop_if_empty(s, sid, sl);
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < n; i++) free(copies[i]);
    free(copies);
    if (ok) return 0;
    goto oom;
oom_copies:
    for (size_t i = 0; i < n; i++) free(copies[i]);
    free(copies);
oom:
    *err = ms_message("state store set_many: out of memory");
    return -1;
}

int64_t dh_mem_delete_many(DhMemStore *s, const char *sid, size_t sl, const FfiStr *keys,
                           size_t n, char **err) {
    if (ms_check_str(sid, sl, "state store id", err) || ms_check_keys(keys, n, err)) return -1;
    int64_t removed = 0;
    pthread_mutex_lock(&s->mu);
    ms_table *t = ms_store(s, sid, sl);
    if (t) {
        for (size_t i = 0; i < n; i++) removed += ms_delete_locked(s, t, keys[i].ptr, keys[i].len);
        ms_store_drop_if_empty(s, sid, sl);
    }
    pthread_mutex_unlock(&s->mu);
    return removed;
}

int64_t dh_mem_clear_store(DhMemStore *s, const char *sid, size_t sl, char **err) {
    if (ms_check_str(sid, sl, "state store id", err)) return -1;
    ms_table *t = NULL;
    pthread_mutex_lock(&s->mu);
    ms_entry *e = ms_find(&s->stores, ms_hash(sid, sl), sid, sl);
    if (e) {
        t = e->val;
        ms_remove(&s->stores, e);
    }
    pthread_mutex_unlock(&s->mu);
    if (!t) return 0;
    int64_t count = (int64_t)t->count;
    ms_free_values(t);
    free(t);
    return count;
}

static int ms_compare_keys(const void *a, const void *b) {
    const FfiOwnedStr *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->ptr, y->ptr, n) : 0;
    if (c) return c;
    return (x->len > y->len) - (x->len < y->len);
}

FfiStringArray dh_mem_list_keys(DhMemStore *s, const char *sid, size_t sl, char **err) {
    FfiStringArray a = {MS_DANGLING_ARRAY, 0, 0};
    if (ms_check_str(sid, sl, "state store id", err)) return a;
    FfiOwnedStr *items = NULL;
    size_t n = 0;
    bool oom = false;
    pthread_mutex_lock(&s->mu);
    ms_table *t = ms_store(s, sid, sl);
    if (t && t->count) {
        items = malloc(t->count * sizeof *items);
        oom = items == NULL;
        for (size_t i = 0; !oom && i < t->cap; i++) {
            ms_entry *e = &t->slots[i];
            if (!e->key) continue;
            FfiOwnedStr o = {MS_DANGLING_STR, e->klen, 0};
            if (e->klen) {
                o.ptr = malloc(e->klen);
                if (!o.ptr) {
                    oom = true;
                    break;
                }
                memcpy(o.ptr, e->key, e->klen);
                o.cap = e->klen;
            }
            items[n++] = o;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (oom) {
        for (size_t i = 0; i < n; i++)
            if (items[i].cap) free(items[i].ptr);
        free(items);
        *err = ms_message("state store list_keys: out of memory");
        return a;
    }
    if (!n) return a;
    qsort(items, n, sizeof *items, ms_compare_keys);
    a.data = items;
    a.len = a.cap = n;
    return a;
}

int dh_mem_store_exists(DhMemStore *s, const char *sid, size_t sl, char **err) {
    if (ms_check_str(sid, sl, "state store id", err)) return -1;
    pthread_mutex_lock(&s->mu);
    int exists = ms_store(s, sid, sl) != NULL;
    pthread_mutex_unlock(&s->mu);
    return exists;
}

int64_t dh_mem_key_count(DhMemStore *s, const char *sid, size_t sl, char **err) {
    if (ms_check_str(sid, sl, "state store id", err)) return -1;
    pthread_mutex_lock(&s->mu);
    ms_table *t = ms_store(s, sid, sl);
    int64_t count = t ? (int64_t)t->count : 0;
    pthread_mutex_unlock(&s->mu);
    return count;
}

/* ------------------------------------------------------------ bindings */

typedef struct ms_binding {
    uint64_t key; /* 0: an empty slot */
    DhMemStore *store;
    size_t max_value_len;
    int64_t drop_calls;
    int64_t calls_after_drop;
} ms_binding;

static pthread_mutex_t ms_bind_mu = PTHREAD_MUTEX_INITIALIZER;
static ms_binding *ms_binds;
static size_t ms_bind_cap, ms_bind_count;

static size_t ms_bind_home(uint64_t key, size_t cap) {
    key ^= key >> 31;
    key *= 0x9e3779b97f4a7c15ULL;
    return (size_t)(key >> 17) & (cap - 1);
}

static ms_binding *ms_bind_find(uint64_t key) {
    if (!ms_bind_cap || !key) return NULL;
    for (size_t i = ms_bind_home(key, ms_bind_cap);; i = (i + 1) & (ms_bind_cap - 1)) {
        if (ms_binds[i].key == key) return &ms_binds[i];
        if (!ms_binds[i].key) return NULL;
    }
}

int dh_mem_bind(uint64_t key, DhMemStore *s, size_t max_value_len) {
    if (!key || !s) return -1;
    pthread_mutex_lock(&ms_bind_mu);
    int rc = -1;
    if (ms_bind_find(key)) goto out;
    if ((ms_bind_count + 1) * 2 > ms_bind_cap) {
        size_t cap = ms_bind_cap ? ms_bind_cap * 2 : 16;
        ms_binding *slots = calloc(cap, sizeof *slots);
        if (!slots) goto out;
        for (size_t i = 0; i < ms_bind_cap; i++) {
            if (!ms_binds[i].key) continue;
            size_t j = ms_bind_home(ms_binds[i].key, cap);
            while (slots[j].key) j = (j + 1) & (cap - 1);
            slots[j] = ms_binds[i];
        }
        free(ms_binds);
        ms_binds = slots;
        ms_bind_cap = cap;
    }
    size_t i = ms_bind_home(key, ms_bind_cap);
    while (ms_binds[i].key) i = (i + 1) & (ms_bind_cap - 1);
    ms_binding b = {key, s, max_value_len, 0, 0};
    ms_binds[i] = b;
    ms_bind_count++;
    ms_ref(s);
    rc = 0;
out:
    pthread_mutex_unlock(&ms_bind_mu);
    return rc;
}

void dh_mem_unbind(uint64_t key) {
    DhMemStore *s = NULL;
    pthread_mutex_lock(&ms_bind_mu);
    ms_binding *b = ms_bind_find(key);
    if (b) {
        s = b->store;
        size_t mask = ms_bind_cap - 1;
        size_t i = (size_t)(b - ms_binds);
        for (size_t j = (i + 1) & mask; ms_binds[j].key; j = (j + 1) & mask) {
            size_t home = ms_bind_home(ms_binds[j].key, ms_bind_cap);
            bool stays = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
            if (stays) continue;
            ms_binds[i] = ms_binds[j];
            i = j;
        }
        ms_binds[i].key = 0;
        ms_bind_count--;
    }
    pthread_mutex_unlock(&ms_bind_mu);
    dh_mem_release(s);
}

int dh_mem_binding_counts(uint64_t key, int64_t *drop_calls, int64_t *calls_after_drop) {
    pthread_mutex_lock(&ms_bind_mu);
    ms_binding *b = ms_bind_find(key);
    if (b) {
        *drop_calls = b->drop_calls;
        *calls_after_drop = b->calls_after_drop;
    }
    pthread_mutex_unlock(&ms_bind_mu);
    return b ? 0 : -1;
}

/* The store behind a vtable state (with a reference the caller releases),
 * or NULL when the binding is gone. */
static DhMemStore *ms_acquire(void *state, size_t *max_value_len) {
    DhMemStore *s = NULL;
    pthread_mutex_lock(&ms_bind_mu);
    ms_binding *b = ms_bind_find((uint64_t)(uintptr_t)state);
    if (b) {
        if (b->drop_calls) b->calls_after_drop++;
        s = b->store;
        *max_value_len = b->max_value_len;
        ms_ref(s);
    }
    pthread_mutex_unlock(&ms_bind_mu);
    return s;
}

/* ------------------------------------------------------ vtable functions */

static FfiResult ms_result(int rc, char *err) {
    FfiResult r = {rc < 0 ? 1 : 0, rc < 0 ? err : NULL};
    return r;
}

static FfiResult ms_closed(void) {
    FfiResult r = {1, ms_message("%s", MS_CLOSED)};
    return r;
}

static FfiResult ms_presence(int rc, char *err) {
    if (rc < 0) return ms_result(rc, err);
    FfiResult r = {rc ? 0 : 1, rc ? NULL : ms_message("%s", MS_NOT_FOUND)};
    return r;
}

static FfiGetResult ms_vt_get(void *state, FfiStr sid, FfiStr key) {
    size_t max;
    DhMemStore *s = ms_acquire(state, &max);
    if (!s) return ms_get_error(ms_message("%s", MS_CLOSED));
    FfiGetResult r = dh_mem_get(s, sid.ptr, sid.len, key.ptr, key.len);
    dh_mem_release(s);
    return r;
}

static FfiResult ms_vt_set(void *state, FfiStr sid, FfiStr key, const uint8_t *value,
                           size_t n) {
    size_t max;
    DhMemStore *s = ms_acquire(state, &max);
    if (!s) return ms_closed();
    char *err = NULL;
    int rc = ms_set(s, sid.ptr, sid.len, key.ptr, key.len, value, n, max, &err);
    dh_mem_release(s);
    return ms_result(rc, err);
}

static FfiResult ms_vt_delete(void *state, FfiStr sid, FfiStr key) {
    size_t max;
    DhMemStore *s = ms_acquire(state, &max);
    if (!s) return ms_closed();
    char *err = NULL;
    int rc = dh_mem_delete(s, sid.ptr, sid.len, key.ptr, key.len, &err);
    dh_mem_release(s);
    return ms_result(rc, err);
}

static FfiResult ms_vt_contains_key(void *state, FfiStr sid, FfiStr key) {
    size_t max;
    DhMemStore *s = ms_acquire(state, &max);
    if (!s) return ms_closed();
    char *err = NULL;
    int rc = dh_mem_contains(s, sid.ptr, sid.len, key.ptr, key.len, &err);
    dh_mem_release(s);
    return ms_presence(rc, err);
}

static FfiResult ms_vt_get_many(void *state, FfiStr sid, const FfiStr *keys, size_t n,
                                FfiGetResult *out) {
    size_t max;
    DhMemStore *s = ms_acquire(state, &max);
    if (!s) return ms_closed();
    char *err = NULL;
    int rc = dh_mem_get_many(s, sid.ptr, sid.len, keys, n, out, &err);
    dh_mem_release(s);
    return ms_result(rc, err);
}

static FfiResult ms_vt_set_many(void *state, FfiStr sid, const FfiStr *keys,
                                const uint8_t *const *values, const size_t *lens, size_t n) {
    size_t max;
    DhMemStore *s = ms_acquire(state, &max);
    if (!s) return ms_closed();
    char *err = NULL;
    int rc = dh_mem_set_many(s, sid.ptr, sid.len, keys, values, lens, n, max, &err);
    dh_mem_release(s);
    return ms_result(rc, err);
}

static int64_t ms_vt_delete_many(void *state, FfiStr sid, const FfiStr *keys, size_t n) {
    size_t max;
    DhMemStore *s = ms_acquire(state, &max);
    if (!s) return -1;
    char *err = NULL;
    int64_t rc = dh_mem_delete_many(s, sid.ptr, sid.len, keys, n, &err);
    dh_mem_release(s);
    free(err);
    return rc;
}

static int64_t ms_vt_clear_store(void *state, FfiStr sid) {
    size_t max;
    DhMemStore *s = ms_acquire(state, &max);
    if (!s) return -1;
    char *err = NULL;
    int64_t rc = dh_mem_clear_store(s, sid.ptr, sid.len, &err);
    dh_mem_release(s);
    free(err);
    return rc;
}

static FfiStringArray ms_vt_list_keys(void *state, FfiStr sid) {
    size_t max;
    FfiStringArray empty = {MS_DANGLING_ARRAY, 0, 0};
    DhMemStore *s = ms_acquire(state, &max);
    if (!s) return empty;
    char *err = NULL;
    FfiStringArray a = dh_mem_list_keys(s, sid.ptr, sid.len, &err);
    dh_mem_release(s);
    free(err);
    return a;
}

static FfiResult ms_vt_store_exists(void *state, FfiStr sid) {
    size_t max;
    DhMemStore *s = ms_acquire(state, &max);
    if (!s) return ms_closed();
    char *err = NULL;
    int rc = dh_mem_store_exists(s, sid.ptr, sid.len, &err);
    dh_mem_release(s);
    return ms_presence(rc, err);
}

static int64_t ms_vt_key_count(void *state, FfiStr sid) {
    size_t max;
    DhMemStore *s = ms_acquire(state, &max);
    if (!s) return -1;
    char *err = NULL;
    int64_t rc = dh_mem_key_count(s, sid.ptr, sid.len, &err);
    dh_mem_release(s);
    free(err);
    return rc;
}

static FfiResult ms_vt_sync(void *state) {
    size_t max;
    DhMemStore *s = ms_acquire(state, &max);
    if (!s) return ms_closed();
    dh_mem_release(s);
    FfiResult r = {0, NULL};
    return r;
}

static void ms_vt_drop(void *state) {
    pthread_mutex_lock(&ms_bind_mu);
    ms_binding *b = ms_bind_find((uint64_t)(uintptr_t)state);
    if (b) b->drop_calls++;
    pthread_mutex_unlock(&ms_bind_mu);
}

void dh_mem_vtable_init(StateStoreVtable *vt, void *state) {
    vt->state = state;
    vt->get_fn = ms_vt_get;
    vt->set_fn = ms_vt_set;
    vt->delete_fn = ms_vt_delete;
    vt->contains_key_fn = ms_vt_contains_key;
    vt->get_many_fn = ms_vt_get_many;
    vt->set_many_fn = ms_vt_set_many;
    vt->delete_many_fn = ms_vt_delete_many;
    vt->clear_store_fn = ms_vt_clear_store;
    vt->list_keys_fn = ms_vt_list_keys;
    vt->store_exists_fn = ms_vt_store_exists;
    vt->key_count_fn = ms_vt_key_count;
    vt->sync_fn = ms_vt_sync;
    vt->drop_fn = ms_vt_drop;
}
