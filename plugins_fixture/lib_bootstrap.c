/* lib_bootstrap.c - libdrasi_bootstrap_fixture: one bootstrap factory, kind "fixture". */
#include "fixture.h"

static const FxBootstrapKind fx_kind = {
    .kind = "fixture",
    .schema_name = "bootstrap.fixture.FixtureBootstrapConfig",
};

FX_EXPORT FfiPluginRegistration *drasi_plugin_init(void) {
    BootstrapPluginVtable b = fx_bootstrap_factory(&fx_kind);
    return fx_registration_new(NULL, 0, NULL, 0, &b, 1);
}
