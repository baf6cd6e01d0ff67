/*
 * services.c - the "services" source: exercises the host's state store and
 * identity provider from a plugin thread and writes a report back into the
 * store (store id = the component id, key "report").
 *
 * start_fn starts the worker thread, stop_fn (and drop_fn) joins it.  Every
 * buffer the host returns is released by the ownership rules of the ABI
 * (data only when cap > 0, every error_msg, every string of a string array).
 * Any unexpected error result is recorded in the report's "errors" list.
 *
 * With the configuration key `ops` > 0 the worker instead times `ops` set+get
 * pairs on keys "bench:<i % 1000>" and reports {"ops", "seconds", ...}.
 */
#include "fixture.h"

typedef struct FxServices {
    int64_t ops;
    pthread_mutex_t lock;
    bool running;
    pthread_t thread;
} FxServices;

typedef struct FxSvcRun {
    FxSource *src;
    StateStoreVtable st;
    FfiStr sid;
    FxBuf errors; /* JSON array items, comma separated */
    size_t nerrors;
} FxSvcRun;

static void fx_svc_error(FxSvcRun *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fx_svc_error(FxSvcRun *r, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->nerrors++) fx_buf_puts(&r->errors, ",");
    fx_buf_json_str(&r->errors, msg, strlen(msg));
    fx_runtime_log(&r->src->rt, FFI_LOG_LEVEL_ERROR, "services: %s", msg);
}

static const char *fx_msg(const char *m) { return m ? m : "(no message)"; }

static void fx_free_get(FfiGetResult *g) {
    if (g->cap > 0) free(g->data);
    free(g->error_msg);
    g->data = NULL;
    g->error_msg = NULL;
}

static void fx_free_array(FfiStringArray *a) {
    for (size_t i = 0; i < a->len; i++)
        if (a->data[i].cap > 0) free(a->data[i].ptr);
    if (a->cap > 0) free(a->data);
}

/* Checks an FfiResult; records an error unless it succeeded.  Frees the message. */
static bool fx_svc_ok(FxSvcRun *r, FfiResult res, const char *what) {
    bool ok = res.error_code == 0;
    if (!ok) fx_svc_error(r, "%s: %s (code %d)", what, fx_msg(res.error_msg), (int)res.error_code);
    free(res.error_msg);
    return ok;
}

/* "present" / "absent" / error text for contains_key_fn and store_exists_fn. */
static int fx_svc_presence(FxSvcRun *r, FfiResult res, const char *what, char **error_text) {
    int state;
    *error_text = NULL;
    if (res.error_code == 0) {
        state = 1;
    } else if (res.error_msg && strcmp(res.error_msg, "not_found") == 0) {
        state = 0;
    } else {
        state = -1;
        *error_text = fx_strdup(fx_msg(res.error_msg));
        fx_svc_error(r, "%s: %s (code %d)", what, fx_msg(res.error_msg), (int)res.error_code);
    }
    free(res.error_msg);
    return state;
}

static void fx_svc_set_report(FxSvcRun *r, FxBuf *report) {
    FfiResult res = r->st.set_fn(r->st.state, r->sid, fx_str("report"),
                                 (const uint8_t *)report->p, report->len);
    if (res.error_code != 0)
        fx_runtime_log(&r->src->rt, FFI_LOG_LEVEL_ERROR, "services: writing the report failed: %s",
                       fx_msg(res.error_msg));
    free(res.error_msg);
}

static void fx_svc_json_cstr_or_null(FxBuf *b, const char *s) {
    if (s)
        fx_buf_json_str(b, s, strlen(s));
    else
        fx_buf_puts(b, "null");
}

static void fx_svc_identity(FxSvcRun *r, FxBuf *report) {
    IdentityProviderVtable id;
    if (!fx_runtime_identity(&r->src->rt, &id)) {
        fx_buf_puts(report, "null");
        return;
    }
    FfiCredentialsResult c = id.get_credentials_fn(id.state);
    fx_buf_puts(report, "{");
    if (c.error_code != 0) {
        fx_svc_error(r, "get_credentials: %s (code %d)", fx_msg(c.error_msg), (int)c.error_code);
        fx_buf_puts(report, "\"kind\":null,\"error\":");
        fx_svc_json_cstr_or_null(report, c.error_msg);
    } else {
        fx_buf_printf(report, "\"kind\":%d,\"f1\":", (int)c.credentials.credential_type);
        fx_svc_json_cstr_or_null(report, c.credentials.field1);
        fx_buf_puts(report, ",\"f2\":");
        fx_svc_json_cstr_or_null(report, c.credentials.field2);
        fx_buf_puts(report, ",\"f3\":");
        fx_svc_json_cstr_or_null(report, c.credentials.field3);
    }
    free(c.error_msg);
    free(c.credentials.field1);
    free(c.credentials.field2);
    free(c.credentials.field3);
    void *clone = id.clone_fn ? id.clone_fn(id.state) : NULL;
    if (!clone) {
        fx_svc_error(r, "identity clone_fn returned NULL");
        fx_buf_puts(report, ",\"clone_kind\":null}");
        return;
    }
    FfiCredentialsResult c2 = id.get_credentials_fn(clone);
    if (c2.error_code != 0) {
        fx_svc_error(r, "get_credentials (clone): %s (code %d)", fx_msg(c2.error_msg),
                     (int)c2.error_code);
        fx_buf_puts(report, ",\"clone_kind\":null}");
    } else {
        fx_buf_printf(report, ",\"clone_kind\":%d}", (int)c2.credentials.credential_type);
    }
    free(c2.error_msg);
    free(c2.credentials.field1);
    free(c2.credentials.field2);
    free(c2.credentials.field3);
    id.drop_fn(clone);
    FX_STAT(identity_providers_dropped);
}

static void fx_svc_exercise(FxSvcRun *r) {
    StateStoreVtable *st = &r->st;
    FxBuf report = {0};

    /* (a) copy every "in:" key to "out:" */
    FfiStringArray listed = st->list_keys_fn(st->state, r->sid);
    FxStrList in = {0};
    in.items = fx_xcalloc(listed.len ? listed.len : 1, sizeof(char *));
    in.lens = fx_xcalloc(listed.len ? listed.len : 1, sizeof(size_t));
    for (size_t i = 0; i < listed.len; i++) {
        FfiStr k = fx_strn(listed.data[i].ptr, listed.data[i].len);
        if (!fx_str_starts(k, "in:")) continue;
        in.items[in.n] = fx_strndup(k.ptr, k.len);
        in.lens[in.n++] = k.len;
    }
    fx_free_array(&listed);
    int64_t copied = 0;
    for (size_t i = 0; i < in.n; i++) {
        FfiStr key = fx_strn(in.items[i], in.lens[i]);
        FfiGetResult g = st->get_fn(st->state, r->sid, key);
        if (g.error_code != 0) {
            fx_svc_error(r, "get %s: %s (code %d)", in.items[i], fx_msg(g.error_msg),
                         (int)g.error_code);
        } else if (!g.found) {
            fx_svc_error(r, "get %s: listed key not found", in.items[i]);
        } else {
            char *out = fx_sprintf("out:%s", in.items[i] + 3);
            FfiStr okey = fx_strn(out, in.lens[i] + 1);
            if (fx_svc_ok(r, st->set_fn(st->state, r->sid, okey, g.data, g.len), "set out:"))
                copied++;
            free(out);
        }
        fx_free_get(&g);
    }

    /* (b) a missing key must be reported as "not_found" */
    char *etext;
    int present = fx_svc_presence(
        r, st->contains_key_fn(st->state, r->sid, fx_str("in:missing-key-xyz")), "contains_key",
        &etext);
    char *contains = present == 1   ? fx_strdup("present")
                     : present == 0 ? fx_strdup("not_found")
                                    : fx_sprintf("error:%s", etext);
    free(etext);

    /* (c) get_many of the "in:" keys, set_many to "many:" */
    size_t n = in.n;
    FfiStr *keys = fx_xcalloc(n ? n : 1, sizeof(FfiStr));
    for (size_t i = 0; i < n; i++) keys[i] = fx_strn(in.items[i], in.lens[i]);
    FfiGetResult *vals = fx_xcalloc(n ? n : 1, sizeof(FfiGetResult));
    FfiResult gm = st->get_many_fn(st->state, r->sid, keys, n, vals);
    bool gm_ok = gm.error_code == 0;
    fx_svc_ok(r, gm, "get_many");
    char **mkeys_c = fx_xcalloc(n ? n : 1, sizeof(char *));
    FfiStr *mkeys = fx_xcalloc(n ? n : 1, sizeof(FfiStr));
    const uint8_t **mvals = fx_xcalloc(n ? n : 1, sizeof(uint8_t *));
    size_t *mlens = fx_xcalloc(n ? n : 1, sizeof(size_t));
    size_t m = 0;
    if (gm_ok) {
        for (size_t i = 0; i < n; i++) {
            if (vals[i].error_code != 0) {
                fx_svc_error(r, "get_many %s: %s", in.items[i], fx_msg(vals[i].error_msg));
                continue;
            }
            if (!vals[i].found) {
                fx_svc_error(r, "get_many %s: not found", in.items[i]);
                continue;
            }
            mkeys_c[m] = fx_sprintf("many:%s", in.items[i] + 3);
            mkeys[m] = fx_str(mkeys_c[m]);
            mvals[m] = vals[i].data;
            mlens[m] = vals[i].len;
            m++;
        }
        fx_svc_ok(r, st->set_many_fn(st->state, r->sid, mkeys, mvals, mlens, m), "set_many");
        for (size_t i = 0; i < n; i++) fx_free_get(&vals[i]);
    }

    /* (d) delete_many of the "many:" keys */
    int64_t deleted = st->delete_many_fn(st->state, r->sid, mkeys, m);
    if (deleted < 0) fx_svc_error(r, "delete_many returned %" PRId64, deleted);

    /* (e) counts and existence */
    int64_t key_count = st->key_count_fn(st->state, r->sid);
    if (key_count < 0) fx_svc_error(r, "key_count returned %" PRId64, key_count);
    char *e1, *e2;
    int exists = fx_svc_presence(r, st->store_exists_fn(st->state, r->sid), "store_exists", &e1);
    int other = fx_svc_presence(r, st->store_exists_fn(st->state, fx_str("no-such-store")),
                                "store_exists(no-such-store)", &e2);
    free(e1);
    free(e2);

    /* (f) sync */
    FfiResult sy = st->sync_fn(st->state);
    char *sync = sy.error_code == 0 ? fx_strdup("ok") : fx_sprintf("error:%s", fx_msg(sy.error_msg));
    fx_svc_ok(r, sy, "sync");

    /* (g) identity, (h) report */
    fx_buf_printf(&report, "{\"copied\":%" PRId64 ",\"contains_missing\":", copied);
    fx_buf_json_str(&report, contains, strlen(contains));
    fx_buf_printf(&report,
                  ",\"many_deleted\":%" PRId64 ",\"key_count\":%" PRId64
                  ",\"store_exists\":%s,\"other_store_exists\":%s,\"sync\":",
                  deleted, key_count, exists == 1 ? "true" : "false", other == 1 ? "true" : "false");
    fx_buf_json_str(&report, sync, strlen(sync));
    fx_buf_puts(&report, ",\"identity\":");
    fx_svc_identity(r, &report);
    fx_buf_puts(&report, ",\"errors\":[");
    if (r->errors.len) fx_buf_put(&report, r->errors.p, r->errors.len);
    fx_buf_puts(&report, "]}");
    fx_svc_set_report(r, &report);
    fx_runtime_log(&r->src->rt, FFI_LOG_LEVEL_INFO, "services report: %s", fx_buf_cstr(&report));

    for (size_t i = 0; i < m; i++) free(mkeys_c[i]);
    free(mkeys_c);
    free(mkeys);
    free(mvals);
    free(mlens);
    free(vals);
    free(keys);
    free(contains);
    free(sync);
    fx_str_list_free(&in);
    fx_buf_free(&report);
}

static void fx_svc_bench(FxSvcRun *r, int64_t ops) {
    StateStoreVtable *st = &r->st;
    int64_t mismatches = 0, failures = 0;
    char key[32], val[32];
    double t0 = fx_mono_s();
    for (int64_t i = 0; i < ops; i++) {
        int kn = snprintf(key, sizeof key, "bench:%" PRId64, i % 1000);
        int vn = snprintf(val, sizeof val, "%" PRId64, i);
        FfiStr k = fx_strn(key, (size_t)kn);
        FfiResult s = st->set_fn(st->state, r->sid, k, (const uint8_t *)val, (size_t)vn);
        if (s.error_code != 0 && failures++ < 5)
            fx_svc_error(r, "set %s: %s", key, fx_msg(s.error_msg));
        free(s.error_msg);
        FfiGetResult g = st->get_fn(st->state, r->sid, k);
        if (g.error_code != 0) {
            if (failures++ < 5) fx_svc_error(r, "get %s: %s", key, fx_msg(g.error_msg));
        } else if (!g.found || g.len != (size_t)vn || memcmp(g.data, val, (size_t)vn) != 0) {
            mismatches++;
        }
        fx_free_get(&g);
    }
    double seconds = fx_mono_s() - t0;
    FxBuf report = {0};
    fx_buf_printf(&report,
                  "{\"ops\":%" PRId64 ",\"seconds\":%.9f,\"mismatches\":%" PRId64
                  ",\"failures\":%" PRId64 ",\"errors\":[",
                  2 * ops, seconds, mismatches, failures);
    if (r->errors.len) fx_buf_put(&report, r->errors.p, r->errors.len);
    fx_buf_puts(&report, "]}");
    fx_svc_set_report(r, &report);
    fx_buf_free(&report);
}

static void *fx_svc_thread(void *arg) {
    FxSource *src = arg;
    FxServices *svc = src->ext;
    FxSvcRun r = {0};
    r.src = src;
    char *store_id;
    if (!fx_runtime_store(&src->rt, &r.st, &store_id)) {
        fx_runtime_log(&src->rt, FFI_LOG_LEVEL_ERROR, "services: no state store was given");
        return NULL;
    }
    r.sid = fx_str(store_id);
    if (svc->ops > 0)
        fx_svc_bench(&r, svc->ops);
    else
        fx_svc_exercise(&r);
    fx_buf_free(&r.errors);
    free(store_id);
    return NULL;
}

static bool fx_svc_create(FxSource *src, const FxJson *cfg, char *err, size_t errlen) {
    FxServices *svc = fx_xcalloc(1, sizeof *svc);
    if (!fx_cfg_int(cfg, "ops", 0, 0, &svc->ops, err, errlen)) {
        free(svc);
        return false;
    }
    pthread_mutex_init(&svc->lock, NULL);
    src->ext = svc;
    return true;
}

static bool fx_svc_start(FxSource *src, char **error_msg) {
    FxServices *svc = src->ext;
    pthread_mutex_lock(&svc->lock);
    bool ok = svc->running || pthread_create(&svc->thread, NULL, fx_svc_thread, src) == 0;
    if (ok) svc->running = true;
    pthread_mutex_unlock(&svc->lock);
    if (!ok) *error_msg = fx_strdup("cannot start the services thread");
    return ok;
}

static void fx_svc_stop(FxSource *src) {
    FxServices *svc = src->ext;
    pthread_mutex_lock(&svc->lock);
    bool running = svc->running;
    pthread_t t = svc->thread;
    svc->running = false;
    pthread_mutex_unlock(&svc->lock);
    if (running) pthread_join(t, NULL);
}

static void fx_svc_drop(FxSource *src) {
    FxServices *svc = src->ext;
    if (!svc) return;
    fx_svc_stop(src);
    pthread_mutex_destroy(&svc->lock);
    free(svc);
    src->ext = NULL;
}

const FxSourceKind fx_services_kind = {
    .kind = "services",
    .schema_name = "source.services.ServicesSourceConfig",
    .on_create = fx_svc_create,
    .on_start = fx_svc_start,
    .on_stop = fx_svc_stop,
    .on_drop = fx_svc_drop,
    .extra_schema_properties =
        "\"ops\":{\"type\":\"integer\",\"minimum\":0,\"default\":0,"
        "\"description\":\"when > 0, time this many set+get pairs instead\"}",
};
