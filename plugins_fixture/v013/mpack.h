/*
 * mpack.h - a small MessagePack writer and reader for the FFI 0.13 fixtures.
 *
 * The writer emits what rmp-serde's to_vec_named emits (ABI-0.13.md section
 * 12.1): the smallest integer forms (non-negative values unsigned), f64
 * always as 0xcb, the str family for strings.  The reader checks structure
 * strictly: every read is bounds-checked and nesting is limited.
 */
#ifndef FX13_MPACK_H
#define FX13_MPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Mpw {
    uint8_t *buf;
    size_t len;
    size_t cap;
    bool oom;
} Mpw;

void mpw_init(Mpw *w);
void mpw_free(Mpw *w);
/* Hands the malloc'd buffer over (NULL after an allocation failure). */
uint8_t *mpw_take(Mpw *w, size_t *len);
void mpw_raw(Mpw *w, const void *data, size_t n);
void mpw_nil(Mpw *w);
void mpw_bool(Mpw *w, bool v);
void mpw_uint(Mpw *w, uint64_t v);
void mpw_int(Mpw *w, int64_t v);
void mpw_f64(Mpw *w, double v);
void mpw_strn(Mpw *w, const char *s, size_t n);
void mpw_str(Mpw *w, const char *s);
void mpw_array(Mpw *w, uint32_t n);
void mpw_map(Mpw *w, uint32_t n);

typedef struct Mpr {
    const uint8_t *p;
    const uint8_t *end;
} Mpr;

#define MPR_MAX_DEPTH 64

/* Each returns 0 on success and -1 on malformed input (nothing consumed then
 * is not guaranteed). */
int mpr_skip(Mpr *r);
int mpr_map(Mpr *r, uint32_t *n);
int mpr_array(Mpr *r, uint32_t *n);
int mpr_str(Mpr *r, const char **s, uint32_t *n);
int mpr_uint(Mpr *r, uint64_t *v);
int mpr_int(Mpr *r, int64_t *v);
/* Is the next value nil?  Consumes it when so. */
bool mpr_nil(Mpr *r);
/* Reads a string and compares it with key. */
bool mpr_key_is(const char *s, uint32_t n, const char *key);

#endif
