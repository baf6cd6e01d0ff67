/*
 * lib_opaque.c - libdrasi_opaque: an opaque-payload plugin (built without the
 * drasi_plugin_payload_format export).  Its source events carry a private
 * malloc'd block instead of a DrasiPayload, released by the event's drop_fn.
 */
#include "fixture.h"

static const FxSourceKind fx_source = {
    .kind = "opaque",
    .schema_name = "source.opaque.OpaqueSourceConfig",
    .opaque_payloads = true,
};
static const FxReactionKind fx_reaction = {
    .kind = "opaque-reaction",
    .schema_name = "reaction.opaque.OpaqueReactionConfig",
};

FX_EXPORT FfiPluginRegistration *drasi_plugin_init(void) {
    SourcePluginVtable s = fx_source_factory(&fx_source);
    ReactionPluginVtable r = fx_reaction_factory(&fx_reaction);
    return fx_registration_new(&s, 1, &r, 1, NULL, 0);
}
