/* memstore.h - the native table behind MemoryStateStore (memstore.c).
 *
 * A DhMemStore is a thread-safe two-level hash table (store id -> key ->
 * value bytes), reference counted.  A StateStoreVtable filled by
 * dh_mem_vtable_init reaches it without entering Python: its state is a
 * 64-bit key that dh_mem_bind registered; after dh_mem_unbind every call
 * through that vtable answers "state store is closed".
 *
 * The dh_mem_* operations are what MemoryStateStore's Python methods call.
 * Strings are (pointer, length) pairs of UTF-8; on failure they return an
 * error (-1, or a result with error_code 1) and set *err to a C-heap message
 * the caller frees.  Every buffer they return is C-heap memory: values with
 * cap == 0 (an empty value, a dangling non-NULL pointer) are never freed.
 */
#ifndef DRASI_HOST_MEMSTORE_H
#define DRASI_HOST_MEMSTORE_H

typedef struct DhMemStore DhMemStore;

DhMemStore *dh_mem_new(void);
void dh_mem_release(DhMemStore *s);

int dh_mem_bind(uint64_t key, DhMemStore *s, size_t max_value_len);
void dh_mem_unbind(uint64_t key);
int dh_mem_binding_counts(uint64_t key, int64_t *drop_calls, int64_t *calls_after_drop);
void dh_mem_vtable_init(StateStoreVtable *vt, void *state);

FfiGetResult dh_mem_get(DhMemStore *s, const char *sid, size_t sid_len, const char *key,
                        size_t key_len);
int dh_mem_set(DhMemStore *s, const char *sid, size_t sid_len, const char *key, size_t key_len,
               const uint8_t *value, size_t value_len, char **err);
int dh_mem_delete(DhMemStore *s, const char *sid, size_t sid_len, const char *key,
                  size_t key_len, char **err);
int dh_mem_contains(DhMemStore *s, const char *sid, size_t sid_len, const char *key,
                    size_t key_len, char **err);
int dh_mem_get_many(DhMemStore *s, const char *sid, size_t sid_len, const FfiStr *keys, size_t n,
                    FfiGetResult *out, char **err);
int dh_mem_set_many(DhMemStore *s, const char *sid, size_t sid_len, const FfiStr *keys,
                    const uint8_t *const *values, const size_t *value_lens, size_t n,
                    size_t max_value_len, char **err);
int64_t dh_mem_delete_many(DhMemStore *s, const char *sid, size_t sid_len, const FfiStr *keys,
                           size_t n, char **err);
int64_t dh_mem_clear_store(DhMemStore *s, const char *sid, size_t sid_len, char **err);
FfiStringArray dh_mem_list_keys(DhMemStore *s, const char *sid, size_t sid_len, char **err);
int dh_mem_store_exists(DhMemStore *s, const char *sid, size_t sid_len, char **err);
int64_t dh_mem_key_count(DhMemStore *s, const char *sid, size_t sid_len, char **err);

/* A found FfiGetResult holding a malloc'd copy of data (dangling pointer,
 * cap 0, when n == 0), or the error "out of memory": the Python bridge's
 * answer to a get, built in one call. */
FfiGetResult dh_get_found_copy(const char *data, size_t n);

#endif
