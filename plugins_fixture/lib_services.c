/* lib_services.c - libdrasi_services: the "services" source (see services.c). */
#include "fixture.h"

FX_EXPORT FfiPluginRegistration *drasi_plugin_init(void) {
    SourcePluginVtable s = fx_source_factory(&fx_services_kind);
    return fx_registration_new(&s, 1, NULL, 0, NULL, 0);
}
