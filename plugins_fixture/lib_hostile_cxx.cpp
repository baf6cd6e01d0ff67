// lib_hostile_cxx.cpp - libdrasi_hostile_cxx: a C++ plugin whose std::threads
// call the host's log and lifecycle callbacks for as long as the process lives.
//
// It registers no factories.  drasi_hostile_cxx_storm(n) starts n detached
// std::threads; each runs a noexcept loop sending global logs and lifecycle
// events.  A host that lets such a thread enter a finalising interpreter gets
// it unwound by pthread_exit, and the unwind through the noexcept frame calls
// std::terminate ("terminate called without an active exception"): the
// process aborts.  Like a Rust plugin (whose extern "C" frames do not unwind),
// the plugin is blameless; the host must never let that happen.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "drasi_plugin.h"

#define HX_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

std::mutex g_lock;
LogCallbackFn g_log_cb = nullptr;
void *g_log_ctx = nullptr;
LifecycleCallbackFn g_lc_cb = nullptr;
void *g_lc_ctx = nullptr;
std::atomic<std::uint64_t> g_calls{0};

FfiStr lit(const char *s) { return FfiStr{s, std::strlen(s)}; }

void set_log(void *ctx, LogCallbackFn cb) {
    std::lock_guard<std::mutex> guard(g_lock);
    g_log_cb = cb;
    g_log_ctx = ctx;
}

void set_lifecycle(void *ctx, LifecycleCallbackFn cb) {
    std::lock_guard<std::mutex> guard(g_lock);
    g_lc_cb = cb;
    g_lc_ctx = ctx;
}

void storm() noexcept {
    LogCallbackFn log_cb;
    void *log_ctx;
    LifecycleCallbackFn lc_cb;
    void *lc_ctx;
    {
        std::lock_guard<std::mutex> guard(g_lock);
        log_cb = g_log_cb;
        log_ctx = g_log_ctx;
        lc_cb = g_lc_cb;
        lc_ctx = g_lc_ctx;
    }
    for (;;) {
        if (log_cb) {
            FfiLogEntry e{};
            e.level = FFI_LOG_LEVEL_DEBUG;
            e.plugin_id = lit("hostile_cxx");
            e.target = lit("fixture::hostile_cxx");
            e.message = lit("storm");
            e.instance_id = lit("");
            e.component_id = lit("cxx-storm");
            log_cb(log_ctx, &e);
        }
        if (lc_cb) {
            FfiLifecycleEvent ev{};
            ev.component_id = lit("cxx-storm");
            ev.component_type = lit("source");
            ev.event_type = FFI_LIFECYCLE_STARTED;
            ev.message = lit("");
            lc_cb(lc_ctx, &ev);
        }
        g_calls.fetch_add(1);
    }
}

}  // namespace

HX_EXPORT int drasi_hostile_cxx_storm(int n) {
    for (int i = 0; i < n; i++) std::thread(storm).detach();
    return 0;
}

HX_EXPORT std::uint64_t drasi_hostile_cxx_calls(void) { return g_calls.load(); }

HX_EXPORT FfiPluginRegistration *drasi_plugin_init(void) {
    auto *reg = static_cast<FfiPluginRegistration *>(std::calloc(1, sizeof(FfiPluginRegistration)));
    if (!reg) return nullptr;
    // empty arrays: dangling, non-NULL, never freed (ABI.md section 1)
    reg->source_plugins = reinterpret_cast<SourcePluginVtable *>(std::uintptr_t{8});
    reg->reaction_plugins = reinterpret_cast<ReactionPluginVtable *>(std::uintptr_t{8});
    reg->bootstrap_plugins = reinterpret_cast<BootstrapPluginVtable *>(std::uintptr_t{8});
    reg->set_log_callback = set_log;
    reg->set_lifecycle_callback = set_lifecycle;
    return reg;
}
