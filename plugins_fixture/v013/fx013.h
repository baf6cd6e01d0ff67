/*
 * fx013.h - shared internals of the FFI 0.13 fixture plugins.
 *
 * A library is assembled from core013.c (metadata, registration, logging,
 * threads, counters) plus the kinds it registers, selected with
 * FX13_WITH_SOURCE / _REACTION / _BOOTSTRAP / _IDENTITY / _SECRETS.  Every kind
 * is named FX13_PREFIX "" (source), FX13_PREFIX "-reaction", "-bootstrap",
 * "-identity", "-secrets".  Behaviour is chosen per component by its JSON
 * config (see the kind's file): "mode" selects a hostile variant.
 */
#ifndef FX13_H
#define FX13_H

#include "drasi_plugin_0_13.h"
#include "mpack.h"
#include "stats013.h"

#include <stdatomic.h>
#include <string.h>

#ifndef FX13_PREFIX
#define FX13_PREFIX "fixture013"
#endif
#ifndef FX13_SDK_VERSION
#define FX13_SDK_VERSION DRASI_SDK_VERSION_0_13
#endif

/* counters: FX13_STAT(field) += n */
extern _Atomic int64_t fx13_stats[sizeof(DrasiFixture013Stats) / sizeof(int64_t)];
#define FX13_IDX(field) (offsetof(DrasiFixture013Stats, field) / sizeof(int64_t))
#define FX13_ADD(field, n) atomic_fetch_add(&fx13_stats[FX13_IDX(field)], (n))
#define FX13_SET(field, v) atomic_store(&fx13_stats[FX13_IDX(field)], (v))
#define FX13_GET(field) atomic_load(&fx13_stats[FX13_IDX(field)])

FfiStr fx13_str(const char *s);
char *fx13_strndup(const char *s, size_t n);
char *fx13_printf(const char *fmt, ...);
FfiOwnedStr fx13_owned(const char *s);
FfiResult fx13_ok(void);
FfiResult fx13_err(const char *msg);
FfiCreateResult fx13_created(void *ptr);
FfiCreateResult fx13_create_error(const char *fmt, const char *detail);

/* Tiny JSON config lookups: the value of "key" as an integer / a string. */
int64_t fx13_cfg_int(FfiStr json, const char *key, int64_t fallback);
/* Copies at most cap-1 bytes into out; returns false when the key is absent. */
bool fx13_cfg_str(FfiStr json, const char *key, char *out, size_t cap);

/* Logging through the library's callback, filtered by set_log_level. */
void fx13_log(FfiLogLevel level, const char *component, const char *message);

/* Starts a joinable thread recorded for drasi_fixture013_join_threads(). */
bool fx13_spawn(void *(*fn)(void *), void *arg);

/* The config resolver registered by the host (cb NULL if none). */
void fx13_resolver(ConfigResolverFn *cb, const void **ctx);

/* The drop fn of every payload made here (free() and count). */
void fx13_payload_drop(uint8_t *ptr, size_t len);

/* A runtime context's per-instance callbacks, copied at initialize_fn. */
typedef struct Fx13Callbacks {
    LifecycleCallbackFn lifecycle;
    void *lifecycle_ctx;
} Fx13Callbacks;
void fx13_lifecycle(const Fx13Callbacks *cbs, const char *id, const char *type,
                    FfiLifecycleEventType ev);

/* Kind registrations provided by each file (called by drasi_plugin_init). */
void fx13_source_factory(SourcePluginVtable *vt);
void fx13_reaction_factory(ReactionPluginVtable *vt);
void fx13_bootstrap_factory(BootstrapPluginVtable *vt);
void fx13_identity_factory(IdentityProviderPluginVtable *vt);
void fx13_secrets_factory(SecretStorePluginVtable *vt);

/* Shared by the source (its bootstrap receivers) and the bootstrap provider:
 * a bootstrap run of `count` records in `mode`, as events + result receivers.
 * Returns false (and nothing allocated) when out of memory. */
bool fx13_bootstrap_run(const char *source_id, int64_t count, const char *mode,
                        FfiBootstrapReceiver **events, FfiBootstrapResultReceiver **result);

/* The MessagePack document of record i of a bootstrap (Insert of node "b<i>");
 * wrong_tags puts a float under an Integer tag. */
uint8_t *fx13_bootstrap_payload(const char *source_id, int64_t i, bool wrong_tags, size_t *len);

/* The MessagePack document of change event i of a source stream (a cycle of
 * node insert, node update, relation insert, node delete); kind 'c' for a
 * change, 'd' for FuturesDue, 'f' for a Future change. */
uint8_t *fx13_event_payload(const char *source_id, int64_t i, char kind, bool wrong_tags,
                            size_t *len);

/* A hostile payload for modes badmsgpack, oversize, nulldrop, nullpayload;
 * false for any other mode. */
bool fx13_hostile_payload(const char *mode, const uint8_t **ptr, size_t *len,
                          FfiBytesDropFn *drop);

/* mode strings */
#define FX13_MODE_IS(mode, name) (strcmp((mode), (name)) == 0)

#endif
