/* lib_reaction.c - libdrasi_reaction_fixture: one reaction factory, kind "fixture". */
#include "fixture.h"

static const FxReactionKind fx_kind = {
    .kind = "fixture",
    .schema_name = "reaction.fixture.FixtureReactionConfig",
};

FX_EXPORT FfiPluginRegistration *drasi_plugin_init(void) {
    ReactionPluginVtable r = fx_reaction_factory(&fx_kind);
    return fx_registration_new(NULL, 0, &r, 1, NULL, 0);
}
