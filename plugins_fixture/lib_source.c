/* lib_source.c - libdrasi_source_fixture: one source factory, kind "fixture". */
#include "fixture.h"

static const FxSourceKind fx_kind = {
    .kind = "fixture",
    .schema_name = "source.fixture.FixtureSourceConfig",
};

FX_EXPORT FfiPluginRegistration *drasi_plugin_init(void) {
    SourcePluginVtable s = fx_source_factory(&fx_kind);
    return fx_registration_new(&s, 1, NULL, 0, NULL, 0);
}
