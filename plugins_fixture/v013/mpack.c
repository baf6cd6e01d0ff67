/* mpack.c - see mpack.h. */
#include "mpack.h"

#include <stdlib.h>
#include <string.h>

void mpw_init(Mpw *w)
{
    w->buf = NULL;
    w->len = w->cap = 0;
    w->oom = false;
}

void mpw_free(Mpw *w)
{
    free(w->buf);
    mpw_init(w);
}

uint8_t *mpw_take(Mpw *w, size_t *len)
{
    uint8_t *out = w->oom ? NULL : w->buf;
    *len = w->oom ? 0 : w->len;
    if (w->oom)
        free(w->buf);
    mpw_init(w);
    return out;
}

void mpw_raw(Mpw *w, const void *data, size_t n)
{
    if (w->oom)
        return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 64;
        while (cap < w->len + n)
            cap *= 2;
        uint8_t *nb = realloc(w->buf, cap);
        if (nb == NULL) {
            w->oom = true;
            return;
        }
        w->buf = nb;
        w->cap = cap;
    }
    if (n > 0)
        memcpy(w->buf + w->len, data, n);
    w->len += n;
}

static void mpw_byte(Mpw *w, uint8_t b) { mpw_raw(w, &b, 1); }

static void mpw_be(Mpw *w, uint8_t tag, uint64_t v, int bytes)
{
    uint8_t out[9];
    out[0] = tag;
    for (int i = 0; i < bytes; i++)
        out[1 + i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    mpw_raw(w, out, (size_t)bytes + 1);
}

void mpw_nil(Mpw *w) { mpw_byte(w, 0xc0); }
void mpw_bool(Mpw *w, bool v) { mpw_byte(w, v ? 0xc3 : 0xc2); }

void mpw_uint(Mpw *w, uint64_t v)
{
    if (v < 128)
        mpw_byte(w, (uint8_t)v);
    else if (v <= 0xff)
        mpw_be(w, 0xcc, v, 1);
    else if (v <= 0xffff)
        mpw_be(w, 0xcd, v, 2);
    else if (v <= 0xffffffffu)
        mpw_be(w, 0xce, v, 4);
    else
        mpw_be(w, 0xcf, v, 8);
}

void mpw_int(Mpw *w, int64_t v)
{
    if (v >= 0)
        mpw_uint(w, (uint64_t)v);
    else if (v >= -32)
        mpw_byte(w, (uint8_t)(int8_t)v);
    else if (v >= INT8_MIN)
        mpw_be(w, 0xd0, (uint64_t)v, 1);
    else if (v >= INT16_MIN)
        mpw_be(w, 0xd1, (uint64_t)v, 2);
    else if (v >= INT32_MIN)
        mpw_be(w, 0xd2, (uint64_t)v, 4);
    else
        mpw_be(w, 0xd3, (uint64_t)v, 8);
}

void mpw_f64(Mpw *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    mpw_be(w, 0xcb, bits, 8);
}

void mpw_strn(Mpw *w, const char *s, size_t n)
{
    if (n < 32)
        mpw_byte(w, (uint8_t)(0xa0 | n));
    else if (n <= 0xff)
        mpw_be(w, 0xd9, n, 1);
    else if (n <= 0xffff)
        mpw_be(w, 0xda, n, 2);
    else
        mpw_be(w, 0xdb, n, 4);
    mpw_raw(w, s, n);
}

void mpw_str(Mpw *w, const char *s) { mpw_strn(w, s, strlen(s)); }

void mpw_array(Mpw *w, uint32_t n)
{
    if (n < 16)
        mpw_byte(w, (uint8_t)(0x90 | n));
    else if (n <= 0xffff)
        mpw_be(w, 0xdc, n, 2);
    else
        mpw_be(w, 0xdd, n, 4);
}

void mpw_map(Mpw *w, uint32_t n)
{
    if (n < 16)
        mpw_byte(w, (uint8_t)(0x80 | n));
    else if (n <= 0xffff)
        mpw_be(w, 0xde, n, 2);
    else
        mpw_be(w, 0xdf, n, 4);
}

/* ---- reader ---- */

static int mpr_need(Mpr *r, size_t n) { return (size_t)(r->end - r->p) >= n ? 0 : -1; }

static uint64_t mpr_be(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Reads a header: kind 'm' map, 'a' array, 's' str, 'b' bin, 'e' ext,
 * 'u' uint, 'i' negative int, 'f' float, 'n' nil, 't' bool. */
static int mpr_head(Mpr *r, char *kind, uint64_t *arg)
{
    if (mpr_need(r, 1))
        return -1;
    uint8_t b = *r->p++;
    int extra = 0;
    *arg = 0;
    if (b <= 0x7f) { *kind = 'u'; *arg = b; return 0; }
    if (b >= 0xe0) { *kind = 'i'; *arg = (uint64_t)(int64_t)(int8_t)b; return 0; }
    if ((b & 0xf0) == 0x80) { *kind = 'm'; *arg = b & 0x0f; return 0; }
    if ((b & 0xf0) == 0x90) { *kind = 'a'; *arg = b & 0x0f; return 0; }
    if ((b & 0xe0) == 0xa0) { *kind = 's'; *arg = b & 0x1f; return 0; }
    switch (b) {
    case 0xc0: *kind = 'n'; return 0;
    case 0xc2: case 0xc3: *kind = 't'; *arg = b & 1; return 0;
    case 0xc4: *kind = 'b'; extra = 1; break;
    case 0xc5: *kind = 'b'; extra = 2; break;
    case 0xc6: *kind = 'b'; extra = 4; break;
    case 0xca: *kind = 'f'; extra = 4; break;
    case 0xcb: *kind = 'f'; extra = 8; break;
    case 0xcc: *kind = 'u'; extra = 1; break;
    case 0xcd: *kind = 'u'; extra = 2; break;
    case 0xce: *kind = 'u'; extra = 4; break;
    case 0xcf: *kind = 'u'; extra = 8; break;
    case 0xd0: *kind = 'i'; extra = 1; break;
    case 0xd1: *kind = 'i'; extra = 2; break;
    case 0xd2: *kind = 'i'; extra = 4; break;
    case 0xd3: *kind = 'i'; extra = 8; break;
    case 0xd4: *kind = 'e'; *arg = 1; return mpr_need(r, 1) ? -1 : (r->p += 1, 0);
    case 0xd5: *kind = 'e'; *arg = 2; return mpr_need(r, 1) ? -1 : (r->p += 1, 0);
    case 0xd6: *kind = 'e'; *arg = 4; return mpr_need(r, 1) ? -1 : (r->p += 1, 0);
    case 0xd7: *kind = 'e'; *arg = 8; return mpr_need(r, 1) ? -1 : (r->p += 1, 0);
    case 0xd8: *kind = 'e'; *arg = 16; return mpr_need(r, 1) ? -1 : (r->p += 1, 0);
    case 0xc7: case 0xc8: case 0xc9: {
        int n = b == 0xc7 ? 1 : b == 0xc8 ? 2 : 4;
        if (mpr_need(r, (size_t)n + 1))
            return -1;
        *kind = 'e';
        *arg = mpr_be(r->p, n);
        r->p += n + 1;
        return 0;
    }
    case 0xd9: *kind = 's'; extra = 1; break;
    case 0xda: *kind = 's'; extra = 2; break;
    case 0xdb: *kind = 's'; extra = 4; break;
    case 0xdc: *kind = 'a'; extra = 2; break;
    case 0xdd: *kind = 'a'; extra = 4; break;
    case 0xde: *kind = 'm'; extra = 2; break;
    case 0xdf: *kind = 'm'; extra = 4; break;
    default: return -1; /* 0xc1 and nothing else */
    }
    if (mpr_need(r, (size_t)extra))
        return -1;
    if (*kind == 'f') {
        r->p += extra;
        return 0;
    }
    *arg = mpr_be(r->p, extra);
    if (*kind == 'i')
        *arg = (uint64_t)(extra == 1 ? (int64_t)(int8_t)*arg
                          : extra == 2 ? (int64_t)(int16_t)*arg
                          : extra == 4 ? (int64_t)(int32_t)*arg : (int64_t)*arg);
    r->p += extra;
    return 0;
}

static int mpr_skip_depth(Mpr *r, int depth)
{
    char kind;
    uint64_t arg;
    if (depth > MPR_MAX_DEPTH || mpr_head(r, &kind, &arg))
        return -1;
    switch (kind) {
    case 's': case 'b': case 'e':
        if (mpr_need(r, arg))
            return -1;
        r->p += arg;
        return 0;
    case 'a':
        for (uint64_t i = 0; i < arg; i++)
            if (mpr_skip_depth(r, depth + 1))
                return -1;
        return 0;
    case 'm':
        for (uint64_t i = 0; i < 2 * arg; i++)
            if (mpr_skip_depth(r, depth + 1))
                return -1;
        return 0;
    default:
        return 0;
    }
}

int mpr_skip(Mpr *r) { return mpr_skip_depth(r, 0); }

static int mpr_expect(Mpr *r, char want, uint64_t *arg)
{
    char kind;
    const uint8_t *start = r->p;
    if (mpr_head(r, &kind, arg) || kind != want) {
        r->p = start;
        return -1;
    }
    return 0;
}

int mpr_map(Mpr *r, uint32_t *n)
{
    uint64_t arg;
    if (mpr_expect(r, 'm', &arg))
        return -1;
    *n = (uint32_t)arg;
    return 0;
}

int mpr_array(Mpr *r, uint32_t *n)
{
    uint64_t arg;
    if (mpr_expect(r, 'a', &arg))
        return -1;
    *n = (uint32_t)arg;
    return 0;
}

int mpr_str(Mpr *r, const char **s, uint32_t *n)
{
    uint64_t arg;
    if (mpr_expect(r, 's', &arg) || mpr_need(r, arg))
        return -1;
    *s = (const char *)r->p;
    *n = (uint32_t)arg;
    r->p += arg;
    return 0;
}

int mpr_uint(Mpr *r, uint64_t *v) { return mpr_expect(r, 'u', v); }

int mpr_int(Mpr *r, int64_t *v)
{
    char kind;
    uint64_t arg;
    const uint8_t *start = r->p;
    if (mpr_head(r, &kind, &arg) || (kind != 'u' && kind != 'i')
        || (kind == 'u' && arg > (uint64_t)INT64_MAX)) {
        r->p = start;
        return -1;
    }
    *v = (int64_t)arg;
    return 0;
}

bool mpr_nil(Mpr *r)
{
    if (r->p < r->end && *r->p == 0xc0) {
        r->p++;
        return true;
    }
    return false;
}

bool mpr_key_is(const char *s, uint32_t n, const char *key)
{
    return strlen(key) == n && memcmp(s, key, n) == 0;
}
