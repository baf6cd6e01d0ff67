/* lib_multi.c - libdrasi_multi: two source, three reaction and two bootstrap factories. */
#include "fixture.h"

static const FxSourceKind fx_sources[] = {
    {.kind = "multi-a", .schema_name = "source.multi_a.MultiASourceConfig"},
    {.kind = "multi-b", .schema_name = "source.multi_b.MultiBSourceConfig"},
};
static const FxReactionKind fx_reactions[] = {
    {.kind = "multi-r1", .schema_name = "reaction.multi_r1.MultiR1ReactionConfig"},
    {.kind = "multi-r2", .schema_name = "reaction.multi_r2.MultiR2ReactionConfig"},
    {.kind = "multi-r3", .schema_name = "reaction.multi_r3.MultiR3ReactionConfig"},
};
static const FxBootstrapKind fx_bootstraps[] = {
    {.kind = "multi-b1", .schema_name = "bootstrap.multi_b1.MultiB1BootstrapConfig"},
    {.kind = "multi-b2", .schema_name = "bootstrap.multi_b2.MultiB2BootstrapConfig"},
};

FX_EXPORT FfiPluginRegistration *drasi_plugin_init(void) {
    SourcePluginVtable s[2];
    ReactionPluginVtable r[3];
    BootstrapPluginVtable b[2];
    for (size_t i = 0; i < 2; i++) s[i] = fx_source_factory(&fx_sources[i]);
    for (size_t i = 0; i < 3; i++) r[i] = fx_reaction_factory(&fx_reactions[i]);
    for (size_t i = 0; i < 2; i++) b[i] = fx_bootstrap_factory(&fx_bootstraps[i]);
    return fx_registration_new(s, 2, r, 3, b, 2);
}
