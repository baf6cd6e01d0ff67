/* hooks013.c - the test entry points of hooks013.h. */
#define _POSIX_C_SOURCE 200809L
#include "fx013.h"
#include "hooks013.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define HOOK_MAX_THREADS 64

/* Run body(args[i]) on n joinable threads; false when one could not start. */
static bool hook_threads(int n, void *(*body)(void *), void **args)
{
    pthread_t tids[HOOK_MAX_THREADS];
    int started = 0;
    bool ok = true;
    if (n < 1)
        n = 1;
    if (n > HOOK_MAX_THREADS)
        n = HOOK_MAX_THREADS;
    for (; started < n; started++) {
        if (pthread_create(&tids[started], NULL, body, args[started]) != 0) {
            ok = false;
            break;
        }
    }
    for (int i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    return ok;
}

static void hook_write(char *out, size_t cap, const char *text)
{
    if (out != NULL && cap > 0)
        snprintf(out, cap, "%s", text);
}

/* ---- config resolver ---- */

typedef struct ResolveJob {
    const char *json;
    size_t len;
    char *out;
    size_t cap;
    int64_t ok;
} ResolveJob;

static void *resolve_body(void *raw)
{
    ResolveJob *job = raw;
    ConfigResolverFn cb;
    const void *ctx;
    fx13_resolver(&cb, &ctx);
    if (cb == NULL) {
        hook_write(job->out, job->cap, "none");
        return NULL;
    }
    FfiStr json = {job->json, job->len};
    FfiGetSecretResult r = cb(ctx, json);
    FX13_ADD(resolver_calls, 1);
    if (r.error_code == 0) {
        job->ok++;
        char *text = fx13_printf("ok:%s", r.value != NULL ? r.value : "");
        hook_write(job->out, job->cap, text ? text : "ok:?");
        free(text);
    } else {
        FX13_ADD(resolver_failures, 1);
        char *text = fx13_printf("err:%s", r.error_msg != NULL ? r.error_msg : "(NULL)");
        hook_write(job->out, job->cap, text ? text : "err:?");
        free(text);
    }
    free(r.error_msg);
    free(r.value);
    return NULL;
}

int64_t drasi_fixture013_resolve(const char *json, size_t len, int threads, char *out, size_t cap)
{
    ResolveJob jobs[HOOK_MAX_THREADS];
    void *args[HOOK_MAX_THREADS];
    int n = threads < 1 ? 1 : (threads > HOOK_MAX_THREADS ? HOOK_MAX_THREADS : threads);
    for (int i = 0; i < n; i++) {
        ResolveJob job = {json, len, i == 0 ? out : NULL, i == 0 ? cap : 0, 0};
        jobs[i] = job;
        args[i] = &jobs[i];
    }
    hook_threads(n, resolve_body, args);
    int64_t ok = 0;
    for (int i = 0; i < n; i++)
        ok += jobs[i].ok;
    return ok;
}

void drasi_fixture013_log_levels(const char *component)
{
    static const char *const names[] = {"error", "warn", "info", "debug", "trace"};
    for (int level = FFI_LOG_LEVEL_ERROR; level <= FFI_LOG_LEVEL_TRACE; level++) {
        char message[32];
        snprintf(message, sizeof message, "record at %s", names[level]);
        fx13_log((FfiLogLevel)level, component, message);
    }
}

/* ---- identity provider ---- */

typedef struct IdentityHolder {
    IdentityProviderVtable vt;
} IdentityHolder;

void *drasi_fixture013_identity_adopt(const void *vtable)
{
    IdentityHolder *h = malloc(sizeof *h);
    if (h != NULL)
        h->vt = *(const IdentityProviderVtable *)vtable; /* by value, as initialize_fn */
    return h;
}

void drasi_fixture013_identity_release(void *holder)
{
    IdentityHolder *h = holder;
    if (h == NULL)
        return;
    h->vt.drop_fn(h->vt.state);
    FX13_ADD(foreign_identity_dropped, 1);
    free(h);
}

typedef struct IdentityJob {
    IdentityHolder *h;
    const char *ctx;
    size_t ctx_len;
    int calls, clones;
    char *out;
    size_t cap;
    int64_t ok;
    bool clone_failed;
} IdentityJob;

static void identity_once(IdentityJob *job, void *state)
{
    FfiCredentialsResult r = job->h->vt.get_credentials_fn(state, (const uint8_t *)job->ctx,
                                                           job->ctx_len);
    char *text;
    if (r.error_code == 0) {
        job->ok++;
        FX13_ADD(foreign_identity_calls, 1);
        text = fx13_printf("%d|%s|%s|%s", (int)r.credentials.credential_type,
                           r.credentials.field1 ? r.credentials.field1 : "",
                           r.credentials.field2 ? r.credentials.field2 : "",
                           r.credentials.field3 ? r.credentials.field3 : "");
    } else {
        text = fx13_printf("err:%s", r.error_msg ? r.error_msg : "(NULL)");
    }
    hook_write(job->out, job->cap, text ? text : "?");
    free(text);
    free(r.error_msg);
    free(r.credentials.field1);
    free(r.credentials.field2);
    free(r.credentials.field3);
}

static void *identity_body(void *raw)
{
    IdentityJob *job = raw;
    void *clones[64];
    int made = 0;
    for (int i = 0; i < job->clones && i < 64; i++) {
        void *c = job->h->vt.clone_fn(job->h->vt.state);
        if (c == NULL) {
            job->clone_failed = true;
            continue;
        }
        clones[made++] = c;
    }
    for (int i = 0; i < job->calls; i++) {
        identity_once(job, job->h->vt.state);
        for (int c = 0; c < made; c++)
            identity_once(job, clones[c]);
    }
    for (int c = 0; c < made; c++) {
        job->h->vt.drop_fn(clones[c]);
        FX13_ADD(foreign_identity_dropped, 1);
    }
    return NULL;
}

int64_t drasi_fixture013_identity_call(void *holder, const char *ctx, size_t ctx_len,
                                       int threads, int calls, int clones, char *out, size_t cap)
{
    IdentityJob jobs[HOOK_MAX_THREADS];
    void *args[HOOK_MAX_THREADS];
    int n = threads < 1 ? 1 : (threads > HOOK_MAX_THREADS ? HOOK_MAX_THREADS : threads);
    for (int i = 0; i < n; i++) {
        IdentityJob job = {holder, ctx, ctx_len, calls, clones, i == 0 ? out : NULL,
                           i == 0 ? cap : 0, 0, false};
        jobs[i] = job;
        args[i] = &jobs[i];
    }
    hook_threads(n, identity_body, args);
    int64_t ok = 0;
    for (int i = 0; i < n; i++) {
        if (jobs[i].clone_failed)
            return -1;
        ok += jobs[i].ok;
    }
    return ok;
}

/* ---- snapshot fetcher ---- */

typedef struct SnapshotJob {
    const SnapshotFetcherVtable *vt;
    FfiStr query_id;
    int64_t stop_after;
    char *out;
    size_t cap, used;
    int64_t rows;
    bool broken, overflow;
} SnapshotJob;

static void snapshot_append(SnapshotJob *job, const char *ptr, size_t len, const char *tail)
{
    size_t tlen = strlen(tail);
    if (job->out == NULL)
        return;
    if (job->used + len + tlen + 1 > job->cap) {
        job->overflow = true;
        return;
    }
    memcpy(job->out + job->used, ptr, len);
    memcpy(job->out + job->used + len, tail, tlen);
    job->used += len + tlen;
    job->out[job->used] = '\0';
}

static void owned_free(FfiOwnedStr s)
{
    if (s.cap > 0)
        free(s.ptr);
}

static void *snapshot_body(void *raw)
{
    SnapshotJob *job = raw;
    FfiSnapshotIteratorResponse r = job->vt->fetch_snapshot_fn(job->vt->state, job->query_id);
    if (r.error.ptr == NULL) {
        job->broken = true;
        return NULL;
    }
    if (r.error.len > 0) {
        if (r.iterator.iter_ctx != NULL)
            job->broken = true; /* the host must not allocate iterator state */
        snapshot_append(job, "err:", 4, "");
        snapshot_append(job, r.error.ptr, r.error.len, "");
        owned_free(r.error);
        return NULL;
    }
    owned_free(r.error);
    if (r.iterator.next_fn == NULL || r.iterator.drop_fn == NULL) {
        job->broken = true;
        return NULL;
    }
    for (;;) {
        if (job->stop_after >= 0 && job->rows >= job->stop_after)
            break;
        FfiOwnedStr row = r.iterator.next_fn(r.iterator.iter_ctx);
        if (row.ptr == NULL || row.len > row.cap) {
            job->broken = true;
            break;
        }
        if (row.len == 0) {
            owned_free(row);
            break;
        }
        job->rows++;
        snapshot_append(job, row.ptr, row.len, "\n");
        owned_free(row);
    }
    r.iterator.drop_fn(r.iterator.iter_ctx);
    return NULL;
}

int64_t drasi_fixture013_snapshot(const void *vtable, const char *query_id, size_t len,
                                  int threads, int64_t stop_after, char *out, size_t cap)
{
    SnapshotJob jobs[HOOK_MAX_THREADS];
    void *args[HOOK_MAX_THREADS];
    int n = threads < 1 ? 1 : (threads > HOOK_MAX_THREADS ? HOOK_MAX_THREADS : threads);
    if (out != NULL && cap > 0)
        out[0] = '\0';
    for (int i = 0; i < n; i++) {
        SnapshotJob job = {vtable, {query_id, len}, stop_after, i == 0 ? out : NULL,
                           i == 0 ? cap : 0, 0, 0, false, false};
        jobs[i] = job;
        args[i] = &jobs[i];
    }
    hook_threads(n, snapshot_body, args);
    int64_t rows = 0;
    for (int i = 0; i < n; i++) {
        if (jobs[i].broken)
            return -1;
        if (jobs[i].overflow)
            return -2;
        rows += jobs[i].rows;
    }
    return rows;
}

void drasi_fixture013_snapshot_drop(const void *vtable)
{
    const SnapshotFetcherVtable *vt = vtable;
    vt->drop_fn(vt->state);
}
