/*
 * fixture.h - the reusable plugin components of the fixture libraries.
 *
 * A library is assembled from kind descriptors: each descriptor names a kind
 * and its schema and selects the behaviour of one generic implementation
 * (source.c, reaction.c, bootstrap.c).  The lib_*.c files only list the
 * descriptors they register.
 */
#ifndef FX_FIXTURE_H
#define FX_FIXTURE_H

#include "common.h"

/* ---- payloads (payload.c) ------------------------------------------------- */

/* Routing hints of an event; they point into the payload block. */
typedef struct FxHints {
    FfiStr source_id;
    FfiStr label;
    FfiStr entity_id;
} FxHints;

typedef struct FxEventSpec {
    uint64_t index;      /* event number: element id, effective_from, properties */
    int op;              /* FfiChangeOp of the document */
    FfiStr source_id;    /* reference.source_id and the routing source id */
    FfiStr label;        /* node label */
    bool allow_relation; /* every 4th element (index % 4 == 3) is a relation */
    bool opaque;         /* an opaque blob instead of a DrasiPayload */
} FxEventSpec;

/* Builds the payload of one event (section 10 document).  Returns the opaque
 * pointer and its release function; *hints point into the payload block. */
void *fx_event_payload(const FxEventSpec *spec, FxHints *hints, void (**drop)(void *));
/* A DrasiPayload holding arbitrary bytes (hints copied into the block). */
DrasiPayload *fx_raw_payload(const char *data, size_t len, const FxHints *in, FxHints *hints);
/* Release function of DrasiPayload events (counts events_released). */
void fx_event_drop_payload(void *opaque);
/* Section 10 change document of one element. */
void fx_change_doc(FxBuf *b, const FxEventSpec *spec, char *element_id, size_t idlen,
                   bool *is_relation);

FfiSourceEvent *fx_source_event_new(const FxEventSpec *spec, int64_t timestamp_us);
void fx_bootstrap_event_fill(FfiBootstrapEvent *ev, const FxEventSpec *spec, uint64_t sequence);

/* ---- schemas ----------------------------------------------------------------- */

typedef enum FxSchemaMode {
    FX_SCHEMA_NORMAL = 0,
    FX_SCHEMA_INVALID_JSON, /* "{not json" */
    FX_SCHEMA_EMPTY         /* {ptr = 0x1, len = 0, cap = 0} */
} FxSchemaMode;

FfiOwnedStr fx_schema_owned(FxSchemaMode mode, const char *json);

/* ---- sources (source.c) -------------------------------------------------------- */

typedef enum FxHostileMode {
    FX_HOSTILE_NONE = 0,
    FX_HOSTILE_NULL,
    FX_HOSTILE_BAD_STATUS,
    FX_HOSTILE_BAD_DISPATCH,
    FX_HOSTILE_NULL_RECEIVER,
    FX_HOSTILE_NULL_SUBSCRIPTION,
    FX_HOSTILE_OVERSIZE,
    FX_HOSTILE_BAD_JSON,
    FX_HOSTILE_BAD_OP,
    FX_HOSTILE_BAD_UTF8,
    FX_HOSTILE_AFTER_EOS,
    FX_HOSTILE_FLOOD_AFTER_DROP,
    FX_HOSTILE_START_ERROR,
    FX_HOSTILE_START_ERROR_NULLMSG,
    FX_HOSTILE_EMPTY_STRINGS
} FxHostileMode;

typedef struct FxSource FxSource;

typedef struct FxSourceKind {
    const char *kind;
    const char *schema_name;
    FxSchemaMode schema_mode;
    bool opaque_payloads; /* events carry an opaque blob, not a DrasiPayload */
    bool hostile;         /* honour the `mode` configuration key */
    /* optional extension hooks (used by the services source) */
    bool (*on_create)(FxSource *src, const FxJson *cfg, char *err, size_t errlen);
    bool (*on_start)(FxSource *src, char **error_msg);
    void (*on_stop)(FxSource *src);
    void (*on_drop)(FxSource *src);
    const char *extra_schema_properties; /* appended to the schema's properties */
} FxSourceKind;

typedef struct FxProviderRef FxProviderRef;

struct FxSource {
    const FxSourceKind *kind;
    char *id;
    size_t id_len;
    bool auto_start;
    /* configuration */
    int64_t event_count;
    int64_t bootstrap_count;
    int64_t interval_us;
    char *label;
    size_t label_len;
    bool fail_start;
    bool use_store;
    FxHostileMode mode;
    /* runtime */
    FxRuntime rt;
    pthread_mutex_t lock;
    int status; /* FfiComponentStatus, atomic */
    FxProviderRef *provider;
    void *ext; /* hook data */
};

SourcePluginVtable fx_source_factory(const FxSourceKind *kind);

/* ---- reactions (reaction.c) ------------------------------------------------ */

typedef struct FxReactionKind {
    const char *kind;
    const char *schema_name;
} FxReactionKind;

ReactionPluginVtable fx_reaction_factory(const FxReactionKind *kind);

/* ---- bootstrap providers (bootstrap.c) ---------------------------------------- */

typedef struct FxBootstrapKind {
    const char *kind;
    const char *schema_name;
} FxBootstrapKind;

BootstrapPluginVtable fx_bootstrap_factory(const FxBootstrapKind *kind);

/* ---- services source (services.c) ---------------------------------------------- */

extern const FxSourceKind fx_services_kind;

#endif /* FX_FIXTURE_H */
