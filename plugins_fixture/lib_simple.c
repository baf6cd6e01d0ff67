/*
 * lib_simple.c - one plain source factory; the broken-at-load variants are
 * this file built with different -D flags (see build.py):
 *   FX_SIMPLE_KIND "x"   the source kind (default "fixture")
 *   FX_KIND_BAD_UTF8     kind_fn returns the invalid UTF-8 bytes "bad\xff\xfekind"
 *   FX_NO_INIT           no drasi_plugin_init export
 *   FX_INIT_NULL         drasi_plugin_init returns NULL
 * plus the metadata / payload-format switches of common.c.
 */
#include "fixture.h"

#ifndef FX_SIMPLE_KIND
#define FX_SIMPLE_KIND "fixture"
#endif

#ifndef FX_NO_INIT

static const FxSourceKind fx_kind = {
#ifdef FX_KIND_BAD_UTF8
    .kind = "bad\xff\xfe" "kind",
#else
    .kind = FX_SIMPLE_KIND,
#endif
    .schema_name = "source." FX_LIB_NAME ".SimpleSourceConfig",
};

FX_EXPORT FfiPluginRegistration *drasi_plugin_init(void) {
#ifdef FX_INIT_NULL
    (void)fx_kind;
    return NULL;
#else
    SourcePluginVtable s = fx_source_factory(&fx_kind);
    return fx_registration_new(&s, 1, NULL, 0, NULL, 0);
#endif
}

#endif /* FX_NO_INIT */
