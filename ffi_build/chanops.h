/* chanops.h - the channel entries of drasi_host._ffi that the 0.13 C
 * callbacks of drasi_host._ffi013 call, and the 0.13 result envelope
 * functions of drasi_host._ffi013 that the channels call.  The two modules
 * are compiled apart (their ABI headers declare the same names at different
 * layouts), so each learns the other's functions as pointers, installed once
 * when drasi_host._abi013 is imported.  Read both by the C compilers and by
 * both cdefs, so it holds only typedefs. */

/* Copy `len` bytes of a 0.13 MessagePack payload (borrowed for the call)
 * into the event channel `key` as one record (source: sequence 0;
 * bootstrap: op 0).  NULL data or len 0, and len above the channel's
 * payload maximum, queue a flagged record instead (the bytes are not read).
 * Blocks while the channel is full.  True when the channel took the record;
 * never releases the payload (the caller does, after this returns). */
typedef bool (*DhPushBytesFn)(uint64_t key, const uint8_t *data, size_t len,
                              int64_t timestamp_us, uint64_t sequence, int32_t op);
/* The end-of-stream sentinel for the event channel `key` (stale keys are ignored). */
typedef void (*DhEndStreamFn)(uint64_t key);
/* Store the end-of-bootstrap result for channel `key`, once: has_result 0
 * means "ended without a result".  The bytes are borrowed (copied). */
typedef void (*DhStoreOutcomeFn)(uint64_t key, int has_result, int64_t event_count,
                                 const uint8_t *position, size_t position_len,
                                 const uint8_t *error, size_t error_len);
/* 0.13 results: make a queued envelope from a copy of data[0..len) (NULL
 * when out of memory), and free one that was never handed out. */
typedef void *(*DhResultMakeFn)(const uint8_t *data, size_t len);
typedef void (*DhResultFreeFn)(void *item);
