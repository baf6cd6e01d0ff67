/*
 * hooks013.h - test entry points of the FFI 0.13 fixture libraries that act
 * as a plugin would toward the host's services, from real plugin threads.
 *
 * Each spawns `threads` joinable threads, does its work on them, joins them
 * and returns; text results go to out[0..cap) (NUL-terminated, written by the
 * first thread only).  Declarable verbatim to cffi (vtables as void *).
 */
#ifndef DRASI_FIXTURE013_HOOKS_H
#define DRASI_FIXTURE013_HOOKS_H

/* cffi-strip-begin */
#include <stddef.h>
#include <stdint.h>
/* cffi-strip-end */

/* Calls the registered config resolver with json[0..len) on each thread;
 * out: "ok:<value>" or "err:<message>" ("none" without a resolver).
 * Returns the number of successful lookups. */
int64_t drasi_fixture013_resolve(const char *json, size_t len, int threads, char *out,
                                 size_t cap);

/* Logs one record at each level Error..Trace through the library's filter,
 * as component `component` (see the counters logs_emitted / logs_filtered). */
void drasi_fixture013_log_levels(const char *component);

/* Copies an IdentityProviderVtable by value, as initialize_fn does; the
 * holder owns the state in it (released by drasi_fixture013_identity_release,
 * which calls drop_fn once). */
void *drasi_fixture013_identity_adopt(const void *vtable);
/* On each thread: `clones` clone_fn calls, then `calls` get_credentials_fn
 * calls with ctx on the original and on every clone, then drop_fn on each
 * clone.  out: "<type>|<field1>|<field2>|<field3>" of the last answer (NULL
 * fields empty) or "err:<message>".  Returns the successful calls, or -1 when
 * a clone_fn returned NULL. */
int64_t drasi_fixture013_identity_call(void *holder, const char *ctx, size_t ctx_len,
                                       int threads, int calls, int clones, char *out,
                                       size_t cap);
void drasi_fixture013_identity_release(void *holder);

/* On each thread: fetch_snapshot_fn(query_id), then next_fn until exhausted
 * (or stop_after rows when stop_after >= 0), then the iterator's drop_fn once;
 * on an error response neither.  out: the rows, each followed by '\n', or
 * "err:<message>".  Returns the rows read over all threads, -1 when the host
 * broke a rule (a NULL string pointer, an iterator on an error response),
 * -2 when out was too small. */
int64_t drasi_fixture013_snapshot(const void *vtable, const char *query_id, size_t len,
                                  int threads, int64_t stop_after, char *out, size_t cap);
/* The fetcher's drop_fn(state), as a reaction does when it is dropped. */
void drasi_fixture013_snapshot_drop(const void *vtable);

#endif
