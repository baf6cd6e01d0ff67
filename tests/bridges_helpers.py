"""Plugin-side helpers for the state-store and identity bridge tests.

They call the host-built vtables through their C function pointers, exactly
as a plugin does, and take ownership of what comes back the way the ABI tells
a plugin to: ``free()`` C-heap buffers, only when ``cap > 0`` for data and
arrays, always for non-NULL messages and credential strings.  Every helper
also checks the ownership invariants of what it receives.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cffi

from drasi_host import _abi
from drasi_host._abi import ffi, lib

ROOT = Path(__file__).resolve().parent.parent
HEADER_DIR = ROOT / "cdefs"

CData = Any
DANGLING = 1  # the non-NULL pointer value the host uses for empty buffers


class Caller:
    """Calls one ``StateStoreVtable`` the way a plugin would."""

    def __init__(self, vtable: CData) -> None:
        # A plugin copies the block; so do we, to prove nothing depends on its address.
        self.vt = ffi.new("StateStoreVtable *", vtable[0])
        self.state = self.vt.state

    # -- results ----------------------------------------------------------

    @staticmethod
    def take_result(result: CData) -> tuple[int, str | None]:
        """(error_code, message) of an ``FfiResult``; the message is freed."""
        code = int(result.error_code)
        message = None
        if result.error_msg != ffi.NULL:
            message = ffi.string(result.error_msg).decode("utf-8")
            lib.free(result.error_msg)
        if code == 0:
            assert message is None, "a success must not carry a message"
        return code, message

    @staticmethod
    def take_get(result: CData) -> tuple[str, bytes | str | None]:
        """("found", value) | ("missing", None) | ("error", message); buffers freed."""
        try:
            assert result.data != ffi.NULL, "FfiGetResult.data must never be NULL"
            if result.error_code != 0:
                assert not result.found and result.cap == 0 and result.len == 0
                assert result.error_msg != ffi.NULL
                return "error", ffi.string(result.error_msg).decode("utf-8")
            assert result.error_msg == ffi.NULL
            if not result.found:
                assert result.cap == 0 and result.len == 0
                return "missing", None
            if result.len == 0:
                assert result.cap == 0, "an empty value must have cap 0"
                assert int(ffi.cast("uintptr_t", result.data)) == DANGLING
                return "found", b""
            assert result.cap >= result.len
            return "found", ffi.unpack(ffi.cast("char *", result.data), result.len)
        finally:
            if result.cap > 0:
                lib.free(result.data)
            if result.error_msg != ffi.NULL:
                lib.free(result.error_msg)

    @staticmethod
    def take_array(array: CData) -> list[str]:
        """The strings of an ``FfiStringArray`` (freed by the ABI's rules)."""
        assert array.data != ffi.NULL
        if array.len == 0:
            assert array.cap == 0
        return _abi.take_string_array(array, "list_keys")

    # -- the vtable functions ------------------------------------------------

    def get(self, store: str | bytes, key: str | bytes) -> tuple[str, bytes | str | None]:
        b = _abi.Borrowed()
        return self.take_get(self.vt.get_fn(self.state, b.str(store), b.str(key)))

    def set(self, store: str | bytes, key: str | bytes, value: bytes) -> tuple[int, str | None]:
        b = _abi.Borrowed()
        buf = ffi.new("uint8_t[]", value) if value else ffi.cast("uint8_t *", DANGLING)
        return self.take_result(
            self.vt.set_fn(self.state, b.str(store), b.str(key), buf, len(value))
        )

    def set_raw(self, store: str, key: str, ptr: CData, length: int) -> tuple[int, str | None]:
        b = _abi.Borrowed()
        return self.take_result(self.vt.set_fn(self.state, b.str(store), b.str(key), ptr, length))

    def delete(self, store: str, key: str) -> tuple[int, str | None]:
        b = _abi.Borrowed()
        return self.take_result(self.vt.delete_fn(self.state, b.str(store), b.str(key)))

    def contains_key(self, store: str, key: str) -> tuple[int, str | None]:
        b = _abi.Borrowed()
        return self.take_result(self.vt.contains_key_fn(self.state, b.str(store), b.str(key)))

    def get_many_raw(
        self, store: str, keys: Sequence[str | bytes], out: CData
    ) -> tuple[int, str | None]:
        b = _abi.Borrowed()
        arr = ffi.new("FfiStr[]", max(len(keys), 1))
        for i, k in enumerate(keys):
            arr[i] = b.str(k)
        return self.take_result(self.vt.get_many_fn(self.state, b.str(store), arr, len(keys), out))

    def get_many(
        self, store: str, keys: Sequence[str | bytes]
    ) -> tuple[int, str | None, list[tuple[str, bytes | str | None]]]:
        out = ffi.new("FfiGetResult[]", max(len(keys), 1))
        code, message = self.get_many_raw(store, keys, out)
        if code != 0:
            return code, message, []
        return code, message, [self.take_get(out[i]) for i in range(len(keys))]

    def set_many(
        self, store: str, items: Sequence[tuple[str | bytes, bytes]]
    ) -> tuple[int, str | None]:
        b = _abi.Borrowed()
        n = len(items)
        keys = ffi.new("FfiStr[]", max(n, 1))
        values = ffi.new("uint8_t *[]", max(n, 1))
        lens = ffi.new("size_t[]", max(n, 1))
        keep = []
        for i, (k, v) in enumerate(items):
            keys[i] = b.str(k)
            buf = ffi.new("uint8_t[]", v) if v else ffi.cast("uint8_t *", DANGLING)
            keep.append(buf)
            values[i] = buf
            lens[i] = len(v)
        return self.take_result(
            self.vt.set_many_fn(self.state, b.str(store), keys, values, lens, n)
        )

    def delete_many(self, store: str, keys: Sequence[str]) -> int:
        b = _abi.Borrowed()
        arr, n = b.str_array(keys)
        return int(self.vt.delete_many_fn(self.state, b.str(store), arr, n))

    def clear_store(self, store: str) -> int:
        b = _abi.Borrowed()
        return int(self.vt.clear_store_fn(self.state, b.str(store)))

    def list_keys(self, store: str) -> list[str]:
        b = _abi.Borrowed()
        return self.take_array(self.vt.list_keys_fn(self.state, b.str(store)))

    def store_exists(self, store: str) -> tuple[int, str | None]:
        b = _abi.Borrowed()
        return self.take_result(self.vt.store_exists_fn(self.state, b.str(store)))

    def key_count(self, store: str) -> int:
        b = _abi.Borrowed()
        return int(self.vt.key_count_fn(self.state, b.str(store)))

    def sync(self) -> tuple[int, str | None]:
        return self.take_result(self.vt.sync_fn(self.state))

    def drop(self) -> None:
        self.vt.drop_fn(self.state)


def take_credentials(result: CData) -> tuple[int, str | None, int, list[str | None]]:
    """(error_code, message, credential_type, [field1, field2, field3]); all freed."""
    fields: list[str | None] = []
    creds = result.credentials
    for ptr in (creds.field1, creds.field2, creds.field3):
        if ptr == ffi.NULL:
            fields.append(None)
        else:
            fields.append(ffi.string(ptr).decode("utf-8"))
            lib.free(ptr)
    message = None
    if result.error_msg != ffi.NULL:
        message = ffi.string(result.error_msg).decode("utf-8")
        lib.free(result.error_msg)
    if result.error_code != 0:
        assert fields == [None, None, None], "an error must have NULL credential strings"
    return int(result.error_code), message, int(creds.credential_type), fields


# ---- a native driver: calls a state store from threads that Python never saw


DRIVER_SOURCE = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "drasi_plugin.h"

typedef struct Job {
    const StateStoreVtable *vt;
    int thread_no;
    long n;
    long errors;
    double cpu;
} Job;

static double clock_s(clockid_t id) {
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}
static double now(void) { return clock_s(CLOCK_MONOTONIC); }

static void *run(void *p) {
    Job *j = p;
    const StateStoreVtable *vt = j->vt;
    char store[32], key[32];
    uint8_t value[32];
    int sl = snprintf(store, sizeof store, "driver-%d", j->thread_no);
    FfiStr sid = {store, (size_t)sl};
    double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    for (long i = 0; i < j->n; i++) {
        int kl = snprintf(key, sizeof key, "k%ld", i % 64);
        FfiStr k = {key, (size_t)kl};
        memset(value, (int)(i & 0xff), sizeof value);
        memcpy(value, &i, sizeof i);
        FfiResult r = vt->set_fn(vt->state, sid, k, value, sizeof value);
        if (r.error_code) j->errors++;
        free(r.error_msg);
        FfiGetResult g = vt->get_fn(vt->state, sid, k);
        if (g.error_code || !g.found || g.len != sizeof value
            || memcmp(g.data, value, sizeof value) != 0)
            j->errors++;
        free(g.error_msg);
        if (g.cap) free(g.data);
    }
    j->cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    return NULL;
}

/* Runs `threads` native threads, each doing n set+get pairs on its own store
 * (driver-<i>, keys k0..k63).  Returns the wall time; *errors counts wrong
 * answers, *cpu sums the CPU time of the threads. */
double driver_run(const StateStoreVtable *vt, int threads, long n, long *errors, double *cpu) {
    Job jobs[16];
    pthread_t ids[16];
    if (threads > 16) threads = 16;
    double t = now();
    for (int i = 0; i < threads; i++) {
        jobs[i] = (Job){vt, i, n, 0, 0};
        pthread_create(&ids[i], NULL, run, &jobs[i]);
    }
    *errors = 0;
    *cpu = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(ids[i], NULL);
        *errors += jobs[i].errors;
        *cpu += jobs[i].cpu;
    }
    return now() - t;
}
"""


class NativeDriver:
    """A small C library, compiled on the spot, whose threads call a state store."""

    def __init__(self, build_dir: Path) -> None:
        src = build_dir / "ss_driver.c"
        out = build_dir / ("libss_driver" + (".dylib" if sys.platform == "darwin" else ".so"))
        src.write_text(DRIVER_SOURCE, encoding="utf-8")
        cc = sysconfig.get_config_var("CC") or "cc"
        subprocess.run(
            [*cc.split()[:1], "-O2", "-shared", "-fPIC", "-pthread", f"-I{HEADER_DIR}",
             "-o", str(out), str(src)],
            check=True,
            capture_output=True,
        )  # fmt: skip
        self.ffi = plugin_ffi()
        self.ffi.cdef(
            "double driver_run(const StateStoreVtable *vt, int threads, long n, long *errors,"
            " double *cpu);"
        )
        self.lib = self.ffi.dlopen(str(out))

    def run(self, vtable: CData, threads: int, n: int) -> tuple[float, int]:
        """(seconds, wrong answers) for ``threads`` x ``n`` set+get pairs."""
        secs, _, errors = self.run_timed(vtable, threads, n)
        return secs, errors

    def run_timed(self, vtable: CData, threads: int, n: int) -> tuple[float, float, int]:
        """(wall seconds, CPU seconds of the threads, wrong answers)."""
        errors = self.ffi.new("long *")
        cpu = self.ffi.new("double *")
        vt = self.ffi.cast("StateStoreVtable *", int(ffi.cast("uintptr_t", vtable)))
        secs = self.lib.driver_run(vt, threads, n, errors, cpu)
        return float(secs), float(cpu[0]), int(errors[0])


def plugin_ffi() -> cffi.FFI:
    """An ABI-mode FFI that knows the plugin header (as a plugin author's would)."""
    sys.path.insert(0, str(ROOT / "ffi_build"))
    try:
        from build_ffi import header_cdef  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    pffi = cffi.FFI()
    pffi.cdef(header_cdef((HEADER_DIR / "drasi_plugin.h").read_text(encoding="utf-8")))
    return pffi


# ---- the "services" fixture plugin, driven through the real host path


async def run_services_plugin(
    library: Path,
    component_id: str,
    state_store: Any,
    identity_provider: Any = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Load the services plugin, create, initialise, start and stop one source
    (stop joins the plugin's worker thread), release it, and return the JSON
    report the plugin wrote into ``state_store`` under ``(component_id, "report")``.
    Also checks that the host released both bridges once the source was closed."""
    import json

    from drasi_host import CallbackContext, SourceRuntimeContext
    from drasi_host._callbacks import handles
    from drasi_host.loader import load_plugin

    registered = len(handles)
    with load_plugin(library, CallbackContext("bridges-test")) as plugin:
        (factory,) = plugin.source_plugins
        assert factory.kind == "services"
        source = await factory.create_source(component_id, config or {}, auto_start=False)
        async with source:
            await source.initialize(
                SourceRuntimeContext(
                    instance_id="bridges-test",
                    source_id=component_id,
                    state_store=state_store,
                    identity_provider=identity_provider,
                )
            )
            await source.start()
            await source.stop()
    assert len(handles) == registered, "the bridges' keys must be released with the source"
    raw = state_store.get(component_id, "report")
    if hasattr(raw, "__await__"):
        raw = await raw
    assert raw is not None, "the services plugin wrote no report"
    report: dict[str, Any] = json.loads(raw)
    return report


def build_services_plugin(out_dir: Path) -> Path:
    """Compile the "services" fixture plugin into ``out_dir`` (plugins_fixture/build.py)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "plugins_fixture" / "build.py"), str(out_dir),
         "--only", "services"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert proc.returncode == 0, f"building the services plugin failed:\n{proc.stderr}"
    name, path = proc.stdout.split()
    assert name == "services"
    return Path(path)
