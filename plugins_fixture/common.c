/*
 * common.c - helpers shared by every fixture plugin library (see common.h),
 * plus the exports every library has: the metadata and payload-format
 * symbols (shaped by -D flags per build variant) and the stats test hooks.
 *
 * Variant macros:
 *   FX_LIB_NAME           library name used as plugin_id for library-level logs
 *   FX_SDK_VERSION        metadata sdk_version (default DRASI_SDK_VERSION)
 *   FX_TARGET_TRIPLE      metadata target_triple (default: the build machine's)
 *   FX_PAYLOAD_FORMAT     drasi_plugin_payload_format value (default application/json)
 *   FX_NO_METADATA        do not export drasi_plugin_metadata
 *   FX_NO_PAYLOAD_FORMAT  do not export drasi_plugin_payload_format
 */
#include "common.h"

#ifndef FX_LIB_NAME
#define FX_LIB_NAME "fixture"
#endif
#ifndef FX_SDK_VERSION
#define FX_SDK_VERSION DRASI_SDK_VERSION
#endif
#ifndef FX_TARGET_TRIPLE
#define FX_TARGET_TRIPLE FX_HOST_TRIPLE
#endif
#ifndef FX_PAYLOAD_FORMAT
#define FX_PAYLOAD_FORMAT "application/json"
#endif

/* ---- exports -------------------------------------------------------------- */

#define FX_LIT(s) {(s), sizeof(s) - 1}

#ifndef FX_NO_METADATA
static const PluginMetadata fx_metadata = {
    FX_LIT(FX_SDK_VERSION),       FX_LIT("0.4.2"),     FX_LIT("0.4.2"),
    FX_LIT("1.0.0"),              FX_LIT(FX_TARGET_TRIPLE),
    FX_LIT("0000000000000000000000000000000000000000"), FX_LIT("2026-01-01T00:00:00Z"),
};

FX_EXPORT const PluginMetadata *drasi_plugin_metadata(void) { return &fx_metadata; }
#endif

#ifndef FX_NO_PAYLOAD_FORMAT
FX_EXPORT FfiStr drasi_plugin_payload_format(void) {
    FfiStr s = FX_LIT(FX_PAYLOAD_FORMAT);
    return s;
}
#endif

DrasiFixtureStats fx_stats;

FX_EXPORT void drasi_fixture_stats(DrasiFixtureStats *out) {
    int64_t *src = (int64_t *)&fx_stats;
    int64_t *dst = (int64_t *)out;
    for (size_t i = 0; i < sizeof(DrasiFixtureStats) / sizeof(int64_t); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_SEQ_CST);
}

FX_EXPORT void drasi_fixture_reset_stats(void) {
    int64_t *p = (int64_t *)&fx_stats;
    for (size_t i = 0; i < sizeof(DrasiFixtureStats) / sizeof(int64_t); i++)
        __atomic_store_n(&p[i], 0, __ATOMIC_SEQ_CST);
}

const char *fx_plugin_name(void) { return FX_LIB_NAME; }

/* ---- memory and strings -------------------------------------------------- */

void *fx_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) abort();
    return p;
}

void *fx_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) abort();
    return p;
}

void *fx_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) abort();
    return q;
}

char *fx_strndup(const char *p, size_t n) {
    char *s = fx_xmalloc(n + 1);
    if (n) memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

char *fx_strdup(const char *s) { return fx_strndup(s, strlen(s)); }

FfiStr fx_str(const char *s) {
    FfiStr r = {s, strlen(s)};
    return r;
}

FfiStr fx_strn(const char *p, size_t n) {
    FfiStr r = {p, n};
    return r;
}

FfiOwnedStr fx_owned(const char *p, size_t n) {
    FfiOwnedStr r;
    r.ptr = fx_strndup(p, n);
    r.len = n;
    r.cap = n + 1;
    return r;
}

bool fx_str_eq(FfiStr a, const char *lit) {
    size_t n = strlen(lit);
    return a.len == n && (n == 0 || memcmp(a.ptr, lit, n) == 0);
}

bool fx_str_starts(FfiStr a, const char *prefix) {
    size_t n = strlen(prefix);
    return a.len >= n && (n == 0 || memcmp(a.ptr, prefix, n) == 0);
}

char *fx_sprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) abort();
    char *s = fx_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

FfiResult fx_ok(void) {
    FfiResult r = {0, NULL};
    return r;
}

FfiResult fx_err(int32_t code, const char *msg) {
    FfiResult r = {code, msg ? fx_strdup(msg) : NULL};
    return r;
}

/* ---- byte buffer ---------------------------------------------------------- */

static void fx_buf_reserve(FxBuf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    b->p = fx_xrealloc(b->p, cap);
    b->cap = cap;
}

void fx_buf_put(FxBuf *b, const void *data, size_t n) {
    fx_buf_reserve(b, n);
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void fx_buf_puts(FxBuf *b, const char *s) { fx_buf_put(b, s, strlen(s)); }

void fx_buf_printf(FxBuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) abort();
    fx_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void fx_buf_json_str(FxBuf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    fx_buf_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            fx_buf_put(b, esc, 2);
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            fx_buf_put(b, esc, 6);
        } else {
            fx_buf_put(b, &s[i], 1);
        }
    }
    fx_buf_put(b, "\"", 1);
}

char *fx_buf_cstr(FxBuf *b) {
    fx_buf_reserve(b, 0);
    b->p[b->len] = '\0';
    return b->p;
}

void fx_buf_free(FxBuf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---- JSON reader ---------------------------------------------------------- */

typedef struct FxParser {
    const char *p;
    const char *end;
    const char *start;
    char *err;
    size_t errlen;
    int depth;
} FxParser;

static bool fx_fail(FxParser *ps, const char *what) {
    if (ps->err && ps->err[0] == '\0')
        snprintf(ps->err, ps->errlen, "invalid JSON at offset %zu: %s",
                 (size_t)(ps->p - ps->start), what);
    return false;
}

static void fx_skip_ws(FxParser *ps) {
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static bool fx_lit(FxParser *ps, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, lit, n) != 0)
        return fx_fail(ps, "unexpected token");
    ps->p += n;
    return true;
}

static int fx_hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool fx_read_hex4(FxParser *ps, unsigned *out) {
    if (ps->end - ps->p < 4) return fx_fail(ps, "short \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = fx_hexval(ps->p[i]);
        if (h < 0) return fx_fail(ps, "bad \\u escape");
        v = (v << 4) | (unsigned)h;
    }
    ps->p += 4;
    *out = v;
    return true;
}

static void fx_put_utf8(FxBuf *b, unsigned cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    fx_buf_put(b, u, n);
}

static bool fx_parse_string(FxParser *ps, char **out, size_t *outlen) {
    FxBuf b = {0};
    ps->p++; /* opening quote */
    for (;;) {
        if (ps->p >= ps->end) {
            fx_buf_free(&b);
            return fx_fail(ps, "unterminated string");
        }
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"') {
            ps->p++;
            break;
        }
        if (c < 0x20) {
            fx_buf_free(&b);
            return fx_fail(ps, "control character in string");
        }
        if (c != '\\') {
            fx_buf_put(&b, ps->p, 1);
            ps->p++;
            continue;
        }
        ps->p++;
        if (ps->p >= ps->end) {
            fx_buf_free(&b);
            return fx_fail(ps, "unterminated escape");
        }
        char e = *ps->p++;
        char ch;
        switch (e) {
        case '"': ch = '"'; break;
        case '\\': ch = '\\'; break;
        case '/': ch = '/'; break;
        case 'b': ch = '\b'; break;
        case 'f': ch = '\f'; break;
        case 'n': ch = '\n'; break;
        case 'r': ch = '\r'; break;
        case 't': ch = '\t'; break;
        case 'u': {
            unsigned cp;
            if (!fx_read_hex4(ps, &cp)) {
                fx_buf_free(&b);
                return false;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF && ps->end - ps->p >= 6 && ps->p[0] == '\\' &&
                ps->p[1] == 'u') {
                const char *save = ps->p;
                unsigned lo;
                ps->p += 2;
                if (fx_read_hex4(ps, &lo) && lo >= 0xDC00 && lo <= 0xDFFF)
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                else
                    ps->p = save;
            }
            fx_put_utf8(&b, cp);
            continue;
        }
        default:
            fx_buf_free(&b);
            return fx_fail(ps, "bad escape");
        }
        fx_buf_put(&b, &ch, 1);
    }
    *out = b.p ? b.p : fx_strndup("", 0);
    *outlen = b.len;
    return true;
}

static bool fx_parse_value(FxParser *ps, FxJson *v);

static bool fx_parse_number(FxParser *ps, FxJson *v) {
    const char *s = ps->p;
    bool integral = true;
    if (ps->p < ps->end && *ps->p == '-') ps->p++;
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return fx_fail(ps, "bad number");
    while (ps->p < ps->end && ((*ps->p >= '0' && *ps->p <= '9') || *ps->p == '.' ||
                               *ps->p == 'e' || *ps->p == 'E' || *ps->p == '+' || *ps->p == '-')) {
        if (*ps->p == '.' || *ps->p == 'e' || *ps->p == 'E') integral = false;
        ps->p++;
    }
    char tmp[64];
    size_t n = (size_t)(ps->p - s);
    if (n >= sizeof tmp) return fx_fail(ps, "number too long");
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *endp;
    v->type = FXJ_NUMBER;
    v->d = strtod(tmp, &endp);
    if (*endp != '\0') return fx_fail(ps, "bad number");
    if (integral) {
        errno = 0;
        long long ll = strtoll(tmp, &endp, 10);
        if (errno == 0 && *endp == '\0') {
            v->is_int = true;
            v->i = (int64_t)ll;
        }
    }
    return true;
}

static bool fx_parse_container(FxParser *ps, FxJson *v, bool object) {
    char close = object ? '}' : ']';
    size_t cap = 0;
    v->type = object ? FXJ_OBJECT : FXJ_ARRAY;
    ps->p++;
    fx_skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return true;
    }
    for (;;) {
        if (v->n == cap) {
            cap = cap ? cap * 2 : 4;
            v->items = fx_xrealloc(v->items, cap * sizeof(FxJson));
            if (object) {
                v->keys = fx_xrealloc(v->keys, cap * sizeof(char *));
                v->key_lens = fx_xrealloc(v->key_lens, cap * sizeof(size_t));
            }
        }
        fx_skip_ws(ps);
        if (object) {
            if (ps->p >= ps->end || *ps->p != '"') return fx_fail(ps, "expected object key");
            char *key;
            size_t klen;
            if (!fx_parse_string(ps, &key, &klen)) return false;
            fx_skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                free(key);
                return fx_fail(ps, "expected ':'");
            }
            ps->p++;
            v->keys[v->n] = key;
            v->key_lens[v->n] = klen;
        }
        memset(&v->items[v->n], 0, sizeof(FxJson));
        v->n++;
        if (!fx_parse_value(ps, &v->items[v->n - 1])) return false;
        fx_skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            return true;
        }
        return fx_fail(ps, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static bool fx_parse_value(FxParser *ps, FxJson *v) {
    fx_skip_ws(ps);
    if (ps->p >= ps->end) return fx_fail(ps, "unexpected end of input");
    if (++ps->depth > 64) return fx_fail(ps, "nesting too deep");
    bool ok;
    switch (*ps->p) {
    case '{': ok = fx_parse_container(ps, v, true); break;
    case '[': ok = fx_parse_container(ps, v, false); break;
    case '"':
        v->type = FXJ_STRING;
        ok = fx_parse_string(ps, &v->s, &v->slen);
        break;
    case 't':
        v->type = FXJ_BOOL;
        v->b = true;
        ok = fx_lit(ps, "true");
        break;
    case 'f':
        v->type = FXJ_BOOL;
        ok = fx_lit(ps, "false");
        break;
    case 'n':
        v->type = FXJ_NULL;
        ok = fx_lit(ps, "null");
        break;
    default: ok = fx_parse_number(ps, v); break;
    }
    ps->depth--;
    return ok;
}

static void fx_json_clear(FxJson *v) {
    free(v->s);
    for (size_t i = 0; i < v->n; i++) {
        fx_json_clear(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->key_lens);
}

void fx_json_free(FxJson *v) {
    if (!v) return;
    fx_json_clear(v);
    free(v);
}

FxJson *fx_json_parse(const char *p, size_t n, char *err, size_t errlen) {
    FxParser ps = {p, p + n, p, err, errlen, 0};
    if (err && errlen) err[0] = '\0';
    FxJson *v = fx_xcalloc(1, sizeof(FxJson));
    if (n == 0 || !p) {
        fx_fail(&ps, "empty document");
        free(v);
        return NULL;
    }
    if (!fx_parse_value(&ps, v)) {
        fx_json_free(v);
        return NULL;
    }
    fx_skip_ws(&ps);
    if (ps.p != ps.end) {
        fx_fail(&ps, "trailing characters");
        fx_json_free(v);
        return NULL;
    }
    return v;
}

const FxJson *fx_json_get(const FxJson *obj, const char *key) {
    if (!obj || obj->type != FXJ_OBJECT) return NULL;
    size_t kl = strlen(key);
    const FxJson *found = NULL;
    for (size_t i = 0; i < obj->n; i++) /* last duplicate wins */
        if (obj->key_lens[i] == kl && memcmp(obj->keys[i], key, kl) == 0) found = &obj->items[i];
    return found;
}

static bool fx_blank(FfiStr s) {
    for (size_t i = 0; i < s.len; i++)
        if (s.ptr[i] != ' ' && s.ptr[i] != '\t' && s.ptr[i] != '\n' && s.ptr[i] != '\r')
            return false;
    return true;
}

FxJson *fx_config_parse(FfiStr json, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (json.len == 0 || fx_blank(json)) {
        FxJson *v = fx_xcalloc(1, sizeof(FxJson));
        v->type = FXJ_OBJECT;
        return v;
    }
    FxJson *v = fx_json_parse(json.ptr, json.len, err, errlen);
    if (!v) return NULL;
    if (v->type == FXJ_NULL) {
        v->type = FXJ_OBJECT;
        return v;
    }
    if (v->type != FXJ_OBJECT) {
        snprintf(err, errlen, "configuration must be a JSON object");
        fx_json_free(v);
        return NULL;
    }
    return v;
}

bool fx_cfg_int(const FxJson *cfg, const char *key, int64_t def, int64_t min, int64_t *out,
                char *err, size_t errlen) {
    const FxJson *v = fx_json_get(cfg, key);
    if (!v || v->type == FXJ_NULL) {
        *out = def;
        return true;
    }
    if (v->type != FXJ_NUMBER || !v->is_int) {
        snprintf(err, errlen, "'%s' must be an integer", key);
        return false;
    }
    if (v->i < min) {
        snprintf(err, errlen, "'%s' must be >= %" PRId64 " (got %" PRId64 ")", key, min, v->i);
        return false;
    }
    *out = v->i;
    return true;
}

bool fx_cfg_bool(const FxJson *cfg, const char *key, bool def, bool *out, char *err,
                 size_t errlen) {
    const FxJson *v = fx_json_get(cfg, key);
    if (!v || v->type == FXJ_NULL) {
        *out = def;
        return true;
    }
    if (v->type != FXJ_BOOL) {
        snprintf(err, errlen, "'%s' must be a boolean", key);
        return false;
    }
    *out = v->b;
    return true;
}

bool fx_cfg_str(const FxJson *cfg, const char *key, const char *def, char **out, size_t *len,
                char *err, size_t errlen) {
    const FxJson *v = fx_json_get(cfg, key);
    if (!v || v->type == FXJ_NULL) {
        *out = def ? fx_strdup(def) : NULL;
        *len = def ? strlen(def) : 0;
        return true;
    }
    if (v->type != FXJ_STRING) {
        snprintf(err, errlen, "'%s' must be a string", key);
        return false;
    }
    *out = fx_strndup(v->s, v->slen);
    *len = v->slen;
    return true;
}

bool fx_str_list_parse(FfiStr json, FxStrList *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (json.len == 0 || fx_blank(json)) return true;
    FxJson *v = fx_json_parse(json.ptr, json.len, err, errlen);
    if (!v) return false;
    if (v->type == FXJ_NULL) {
        fx_json_free(v);
        return true;
    }
    if (v->type != FXJ_ARRAY) {
        snprintf(err, errlen, "expected a JSON array of strings");
        fx_json_free(v);
        return false;
    }
    for (size_t i = 0; i < v->n; i++) {
        if (v->items[i].type != FXJ_STRING) {
            snprintf(err, errlen, "expected a JSON array of strings (item %zu is not a string)", i);
            fx_json_free(v);
            return false;
        }
    }
    out->n = v->n;
    out->items = fx_xcalloc(v->n, sizeof(char *));
    out->lens = fx_xcalloc(v->n, sizeof(size_t));
    for (size_t i = 0; i < v->n; i++) {
        out->items[i] = fx_strndup(v->items[i].s, v->items[i].slen);
        out->lens[i] = v->items[i].slen;
    }
    fx_json_free(v);
    return true;
}

void fx_str_list_free(FxStrList *l) {
    for (size_t i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
    free(l->lens);
    memset(l, 0, sizeof *l);
}

/* ---- clocks --------------------------------------------------------------- */

int64_t fx_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

double fx_mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void fx_sleep_us(int64_t us) {
    if (us <= 0) return;
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void fx_deadline(struct timespec *ts, int64_t us_from_now) {
    clock_gettime(CLOCK_REALTIME, ts);
    int64_t ns = (int64_t)ts->tv_nsec + (us_from_now % 1000000) * 1000;
    ts->tv_sec += (time_t)(us_from_now / 1000000 + ns / 1000000000);
    ts->tv_nsec = (long)(ns % 1000000000);
}

/* ---- plugin-wide callbacks ------------------------------------------------ */

static pthread_mutex_t fx_cb_lock = PTHREAD_MUTEX_INITIALIZER;
static LogCallbackFn fx_log_cb;
static void *fx_log_ctx;
static LifecycleCallbackFn fx_lc_cb;
static void *fx_lc_ctx;

void fx_set_log_callback(void *ctx, LogCallbackFn cb) {
    pthread_mutex_lock(&fx_cb_lock);
    fx_log_cb = cb;
    fx_log_ctx = ctx;
    pthread_mutex_unlock(&fx_cb_lock);
}

void fx_set_lifecycle_callback(void *ctx, LifecycleCallbackFn cb) {
    pthread_mutex_lock(&fx_cb_lock);
    fx_lc_cb = cb;
    fx_lc_ctx = ctx;
    pthread_mutex_unlock(&fx_cb_lock);
}

bool fx_callbacks_ready(void) {
    pthread_mutex_lock(&fx_cb_lock);
    bool ready = fx_log_cb != NULL && fx_lc_cb != NULL;
    pthread_mutex_unlock(&fx_cb_lock);
    return ready;
}

static const FfiStr fx_empty = {"", 0};

static void fx_emit_log(LogCallbackFn cb, void *ctx, FfiLogLevel level, const char *plugin_id,
                        const char *target, const char *msg, const char *instance_id,
                        const char *component_id) {
    FfiLogEntry e;
    e.level = level;
    e.plugin_id = fx_str(plugin_id);
    e.target = fx_str(target);
    e.message = fx_str(msg);
    e.timestamp_us = fx_now_us();
    e.instance_id = instance_id ? fx_str(instance_id) : fx_empty;
    e.component_id = component_id ? fx_str(component_id) : fx_empty;
    FX_STAT(log_calls);
    cb(ctx, &e);
}

void fx_global_log(FfiLogLevel level, const char *plugin_id, const char *target, const char *fmt,
                   ...) {
    pthread_mutex_lock(&fx_cb_lock);
    LogCallbackFn cb = fx_log_cb;
    void *ctx = fx_log_ctx;
    pthread_mutex_unlock(&fx_cb_lock);
    if (!cb) return;
    va_list ap;
    va_start(ap, fmt);
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fx_emit_log(cb, ctx, level, plugin_id, target, msg, NULL, NULL);
}

static void fx_emit_lifecycle(LifecycleCallbackFn cb, void *ctx, const char *component_id,
                              const char *component_type, FfiLifecycleEventType type,
                              const char *message) {
    FfiLifecycleEvent ev;
    ev.component_id = fx_str(component_id);
    ev.component_type = fx_str(component_type);
    ev.event_type = type;
    ev.message = message ? fx_str(message) : fx_empty;
    ev.timestamp_us = fx_now_us();
    FX_STAT(lifecycle_calls);
    cb(ctx, &ev);
}

void fx_global_lifecycle(const char *component_id, const char *component_type,
                         FfiLifecycleEventType type, const char *message) {
    pthread_mutex_lock(&fx_cb_lock);
    LifecycleCallbackFn cb = fx_lc_cb;
    void *ctx = fx_lc_ctx;
    pthread_mutex_unlock(&fx_cb_lock);
    if (cb) fx_emit_lifecycle(cb, ctx, component_id, component_type, type, message);
}

/* ---- per-instance runtime context ----------------------------------------- */

void fx_runtime_init(FxRuntime *rt, const char *plugin_id, const char *target,
                     const char *component_type, const char *component_id) {
    memset(rt, 0, sizeof *rt);
    pthread_mutex_init(&rt->lock, NULL);
    rt->plugin_id = plugin_id;
    rt->target = target;
    rt->component_type = component_type;
    rt->instance_id = fx_strdup("");
    rt->component_id = fx_strdup(component_id);
}

static void fx_runtime_drop_services(FxRuntime *rt) {
    /* caller holds rt->lock; the drop calls happen with the lock released */
    bool has_store = rt->has_store, has_identity = rt->has_identity;
    StateStoreVtable store = rt->store;
    IdentityProviderVtable identity = rt->identity;
    rt->has_store = rt->has_identity = false;
    pthread_mutex_unlock(&rt->lock);
    if (has_store && store.drop_fn) {
        store.drop_fn(store.state);
        FX_STAT(state_stores_dropped);
    }
    if (has_identity && identity.drop_fn) {
        identity.drop_fn(identity.state);
        FX_STAT(identity_providers_dropped);
    }
    pthread_mutex_lock(&rt->lock);
}

void fx_runtime_set(FxRuntime *rt, const FfiRuntimeContext *ctx) {
    pthread_mutex_lock(&rt->lock);
    fx_runtime_drop_services(rt);
    free(rt->instance_id);
    free(rt->component_id);
    rt->instance_id = fx_strndup(ctx->instance_id.ptr, ctx->instance_id.len);
    rt->component_id = fx_strndup(ctx->component_id.ptr, ctx->component_id.len);
    rt->has_store = ctx->state_store != NULL;
    if (rt->has_store) rt->store = *ctx->state_store;
    rt->has_identity = ctx->identity_provider != NULL;
    if (rt->has_identity) rt->identity = *ctx->identity_provider;
    rt->log_cb = ctx->log_callback;
    rt->log_ctx = ctx->log_ctx;
    rt->lc_cb = ctx->lifecycle_callback;
    rt->lc_ctx = ctx->lifecycle_ctx;
    rt->initialized = true;
    pthread_mutex_unlock(&rt->lock);
}

void fx_runtime_release(FxRuntime *rt) {
    pthread_mutex_lock(&rt->lock);
    fx_runtime_drop_services(rt);
    free(rt->instance_id);
    free(rt->component_id);
    rt->instance_id = rt->component_id = NULL;
    pthread_mutex_unlock(&rt->lock);
    pthread_mutex_destroy(&rt->lock);
}

void fx_runtime_log(FxRuntime *rt, FfiLogLevel level, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&rt->lock);
    LogCallbackFn cb = rt->log_cb;
    void *ctx = rt->log_ctx;
    char *iid = fx_strdup(rt->instance_id);
    char *cid = fx_strdup(rt->component_id);
    pthread_mutex_unlock(&rt->lock);
    if (!cb) {
        pthread_mutex_lock(&fx_cb_lock);
        cb = fx_log_cb;
        ctx = fx_log_ctx;
        pthread_mutex_unlock(&fx_cb_lock);
    }
    if (cb) fx_emit_log(cb, ctx, level, rt->plugin_id, rt->target, msg, iid, cid);
    free(iid);
    free(cid);
}

void fx_runtime_lifecycle(FxRuntime *rt, FfiLifecycleEventType type, const char *message) {
    pthread_mutex_lock(&rt->lock);
    LifecycleCallbackFn cb = rt->lc_cb;
    void *ctx = rt->lc_ctx;
    char *cid = fx_strdup(rt->component_id);
    pthread_mutex_unlock(&rt->lock);
    if (!cb) {
        pthread_mutex_lock(&fx_cb_lock);
        cb = fx_lc_cb;
        ctx = fx_lc_ctx;
        pthread_mutex_unlock(&fx_cb_lock);
    }
    if (cb) fx_emit_lifecycle(cb, ctx, cid, rt->component_type, type, message);
    free(cid);
}

bool fx_runtime_store(FxRuntime *rt, StateStoreVtable *out, char **store_id) {
    pthread_mutex_lock(&rt->lock);
    bool has = rt->has_store;
    if (has) {
        *out = rt->store;
        *store_id = fx_strdup(rt->component_id);
    }
    pthread_mutex_unlock(&rt->lock);
    return has;
}

bool fx_runtime_identity(FxRuntime *rt, IdentityProviderVtable *out) {
    pthread_mutex_lock(&rt->lock);
    bool has = rt->has_identity;
    if (has) *out = rt->identity;
    pthread_mutex_unlock(&rt->lock);
    return has;
}

/* ---- registration ---------------------------------------------------------- */

static void fx_reg_set_log(void *ctx, LogCallbackFn cb) { fx_set_log_callback(ctx, cb); }
static void fx_reg_set_lifecycle(void *ctx, LifecycleCallbackFn cb) {
    fx_set_lifecycle_callback(ctx, cb);
}

static void *fx_array_copy(const void *src, size_t n, size_t size) {
    if (n == 0) return FX_DANGLING_8; /* the host never frees an empty array */
    void *dst = fx_xmalloc(n * size);
    memcpy(dst, src, n * size);
    return dst;
}

FfiPluginRegistration *fx_registration_new(const SourcePluginVtable *sources, size_t ns,
                                           const ReactionPluginVtable *reactions, size_t nr,
                                           const BootstrapPluginVtable *bootstraps, size_t nb) {
    FfiPluginRegistration *reg = fx_xmalloc(sizeof *reg);
    reg->source_plugins = fx_array_copy(sources, ns, sizeof(SourcePluginVtable));
    reg->source_plugin_count = ns;
    reg->reaction_plugins = fx_array_copy(reactions, nr, sizeof(ReactionPluginVtable));
    reg->reaction_plugin_count = nr;
    reg->bootstrap_plugins = fx_array_copy(bootstraps, nb, sizeof(BootstrapPluginVtable));
    reg->bootstrap_plugin_count = nb;
    reg->set_log_callback = fx_reg_set_log;
    reg->set_lifecycle_callback = fx_reg_set_lifecycle;
    fx_global_log(FFI_LOG_LEVEL_INFO, FX_LIB_NAME, "fixture::plugin", "initialised");
    return reg;
}
