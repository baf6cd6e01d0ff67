/*
 * native_table.c - the baseline of bench/bench_state_store.py: a plain C hash
 * table behind one mutex, driven by a native thread exactly as the
 * "services" fixture plugin drives a state store in its benchmark mode
 * (keys "bench:<i % 1000>", the value "<i>", one set and one get per step,
 * values stored and returned as malloc'd copies the caller frees).  No
 * vtable, no UTF-8 checks, no reference counting: what a store costs at the
 * least on this machine.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct entry {
    uint64_t hash;
    char *key;
    size_t klen;
    uint8_t *val;
    size_t vlen;
} entry;

typedef struct table {
    pthread_mutex_t mu;
    entry *slots;
    size_t cap, count;
} table;

static uint64_t hash(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static entry *find(table *t, uint64_t h, const char *k, size_t n, int add) {
    if (add && (t->count + 1) * 4 > t->cap * 3) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        entry *slots = calloc(cap, sizeof *slots);
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->slots[i].key) continue;
            size_t j = t->slots[i].hash & (cap - 1);
            while (slots[j].key) j = (j + 1) & (cap - 1);
            slots[j] = t->slots[i];
        }
        free(t->slots);
        t->slots = slots;
        t->cap = cap;
    }
    if (!t->cap) return NULL;
    for (size_t i = h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        entry *e = &t->slots[i];
        if (!e->key) {
            if (!add) return NULL;
            e->hash = h;
            e->key = malloc(n ? n : 1);
            memcpy(e->key, k, n);
            e->klen = n;
            t->count++;
            return e;
        }
        if (e->hash == h && e->klen == n && memcmp(e->key, k, n) == 0) return e;
    }
}

static void set(table *t, const char *k, size_t kn, const uint8_t *v, size_t vn) {
    uint8_t *copy = malloc(vn ? vn : 1);
    memcpy(copy, v, vn);
    pthread_mutex_lock(&t->mu);
    entry *e = find(t, hash(k, kn), k, kn, 1);
    uint8_t *old = e->val;
    e->val = copy;
    e->vlen = vn;
    pthread_mutex_unlock(&t->mu);
    free(old);
}

static uint8_t *get(table *t, const char *k, size_t kn, size_t *vn) {
    uint8_t *copy = NULL;
    pthread_mutex_lock(&t->mu);
    entry *e = find(t, hash(k, kn), k, kn, 0);
    if (e) {
        copy = malloc(e->vlen ? e->vlen : 1);
        memcpy(copy, e->val, e->vlen);
        *vn = e->vlen;
    }
    pthread_mutex_unlock(&t->mu);
    return copy;
}

static double clock_s(clockid_t id) {
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

typedef struct job {
    long pairs;
    long mismatches;
    double secs, cpu;
} job;

static void *run(void *p) {
    job *j = p;
    table t = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
    char key[32], val[32];
    double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    for (long i = 0; i < j->pairs; i++) {
        int kn = snprintf(key, sizeof key, "bench:%ld", i % 1000);
        int vn = snprintf(val, sizeof val, "%ld", i);
        set(&t, key, (size_t)kn, (const uint8_t *)val, (size_t)vn);
        size_t n = 0;
        uint8_t *got = get(&t, key, (size_t)kn, &n);
        if (!got || n != (size_t)vn || memcmp(got, val, n) != 0) j->mismatches++;
        free(got);
    }
    j->secs = clock_s(CLOCK_MONOTONIC) - w0;
    j->cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    for (size_t i = 0; i < t.cap; i++) {
        free(t.slots[i].key);
        free(t.slots[i].val);
    }
    free(t.slots);
    return NULL;
}

/* `pairs` set+get steps on a fresh table from a new native thread; returns
 * the wall seconds, *cpu the thread's CPU seconds, *mismatches wrong reads. */
double table_bench(long pairs, double *cpu, long *mismatches) {
    job j = {pairs, 0, 0, 0};
    pthread_t id;
    pthread_create(&id, NULL, run, &j);
    pthread_join(id, NULL);
    *cpu = j.cpu;
    *mismatches = j.mismatches;
    return j.secs;
}
