/*
 * lib_threadlog.c - libdrasi_threadlog: logs from a plugin-owned thread.
 *
 * drasi_plugin_init starts a detached thread that sleeps 20 ms, waits (up to
 * 5 s) until the host has registered both callbacks, then sends 100 Info
 * messages "threadlog <n>" and one lifecycle event (component "threadlog",
 * type "source", Started).  drasi_fixture_late_log(n) later sends n more
 * messages "late <k>" through whatever callback was registered last, from the
 * calling thread, to exercise calls that arrive after the host released the
 * context.
 */
#include "fixture.h"

static const FxSourceKind fx_kind = {
    .kind = "threadlog",
    .schema_name = "source.threadlog.ThreadlogSourceConfig",
};

static void *fx_threadlog_main(void *arg) {
    (void)arg;
    fx_sleep_us(20000);
    for (int waited = 0; waited < 5000 && !fx_callbacks_ready(); waited++) fx_sleep_us(1000);
    for (int n = 0; n < 100; n++)
        fx_global_log(FFI_LOG_LEVEL_INFO, "threadlog", "fixture::threadlog", "threadlog %d", n);
    fx_global_lifecycle("threadlog", "source", FFI_LIFECYCLE_STARTED, NULL);
    return NULL;
}

FX_EXPORT void drasi_fixture_late_log(int n) {
    for (int k = 0; k < n; k++) {
        FX_STAT(late_calls_made);
        fx_global_log(FFI_LOG_LEVEL_INFO, "threadlog", "fixture::threadlog", "late %d", k);
    }
}

FX_EXPORT FfiPluginRegistration *drasi_plugin_init(void) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, fx_threadlog_main, NULL) != 0) {
        pthread_attr_destroy(&attr);
        return NULL;
    }
    pthread_attr_destroy(&attr);
    SourcePluginVtable s = fx_source_factory(&fx_kind);
    return fx_registration_new(&s, 1, NULL, 0, NULL, 0);
}
