/*
 * lib_hostile.c - libdrasi_hostile: source factories that break the contract
 * in the ways selected by the configuration key `mode` (see source.c).  The
 * "hostile" factory's schema is invalid JSON; "hostile-empty-schema" returns
 * an empty owned string {ptr = 0x1, len = 0, cap = 0}.
 */
#include "fixture.h"

static const FxSourceKind fx_kinds[] = {
    {.kind = "hostile",
     .schema_name = "source.hostile.HostileSourceConfig",
     .schema_mode = FX_SCHEMA_INVALID_JSON,
     .hostile = true},
    {.kind = "hostile-empty-schema",
     .schema_name = "source.hostile.HostileEmptySchemaConfig",
     .schema_mode = FX_SCHEMA_EMPTY,
     .hostile = true},
};

FX_EXPORT FfiPluginRegistration *drasi_plugin_init(void) {
    SourcePluginVtable s[2] = {fx_source_factory(&fx_kinds[0]), fx_source_factory(&fx_kinds[1])};
    return fx_registration_new(s, 2, NULL, 0, NULL, 0);
}
