"""Shared pieces of the FFI 0.13 tests: the 0.13 cffi builder loaded from
``ffi_build/build_ffi013.py``, the compiled ``drasi_host._ffi013`` module (built
into a temporary directory once per session), the 0.13 fixture builder, and a
0.13 fixture library initialised and driven by hand (:class:`Plugin013`)."""

from __future__ import annotations

import ctypes
import importlib.machinery
import importlib.util
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import cffi

ROOT = Path(__file__).resolve().parents[1]
HEADER_013 = ROOT / "cdefs" / "drasi_plugin_0_13.h"


def load_path(name: str, path: Path) -> ModuleType:
    """Import the Python file ``path`` as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def build_ffi013_module() -> ModuleType:
    """``ffi_build/build_ffi013.py`` as a module."""
    return load_path("drasi_build_ffi013", ROOT / "ffi_build" / "build_ffi013.py")


def compile_ffi013(out_dir: Path) -> Any:
    """Compile ``drasi_host._ffi013`` into ``out_dir`` and import it."""
    built = build_ffi013_module().build(out_dir)
    loader = importlib.machinery.ExtensionFileLoader("drasi_host._ffi013", str(built))
    spec = importlib.util.spec_from_file_location("drasi_host._ffi013", built, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


# ---- a 0.13 fixture library driven by hand -------------------------------------------

#: The fixtures' counter block (``plugins_fixture/v013/stats013.h``), declared
#: once for every test that reads it.
STATS013_FFI = cffi.FFI()
STATS013_FFI.cdef(
    "\n".join(
        line
        for line in (ROOT / "plugins_fixture" / "v013" / "stats013.h").read_text().splitlines()
        if not line.lstrip().startswith("#")
    )
)


def read_stats013(stats_lib: Any) -> dict[str, int]:
    """The counters of a 0.13 fixture library opened with :data:`STATS013_FFI`."""
    out = STATS013_FFI.new("DrasiFixture013Stats *")
    stats_lib.drasi_fixture013_stats(out)
    return {k: int(getattr(out, k)) for k, _ in STATS013_FFI.typeof("DrasiFixture013Stats").fields}


@dataclass
class Plugin013:
    """A 0.13 fixture library initialised by hand and seen through ``ffi`` /
    ``lib`` (a ``drasi_host._ffi013`` module: the package's or a separately
    compiled one)."""

    ffi: Any
    lib: Any
    native: Any
    stats_lib: Any
    reg: Any = None
    keep: list[Any] = field(default_factory=list)

    def fn(self, ctype: str, name: str) -> Any:
        address = ctypes.cast(getattr(self.native, name), ctypes.c_void_p).value
        return self.ffi.cast(ctype, address)

    def stats(self) -> dict[str, int]:
        return read_stats013(self.stats_lib)

    def s(self, text: str) -> Any:
        data = self.ffi.new("char[]", text.encode())
        self.keep.append(data)
        return (data, len(text.encode()))

    def take(self, ptr: Any) -> str | None:
        """The text of a heap C string, freed."""
        if ptr == self.ffi.NULL:
            return None
        text: str = self.ffi.string(ptr).decode()
        self.lib.free(ptr)
        return text

    def create_source(self, config: dict[str, Any]) -> Any:
        """Create source ``s1`` with ``config`` and initialise it (no host
        services); its vtable, copied out (the block is freed)."""
        ffi = self.ffi
        factory = self.reg.source_plugins[0]
        res = factory.create_source_fn(
            factory.state, self.s("s1"), self.s(json.dumps(config)), False
        )
        assert res.error_code == 0 and res.ptr != ffi.NULL, self.take(res.error_msg)
        vt = ffi.new("SourceVtable *", ffi.cast("SourceVtable *", res.ptr)[0])
        self.lib.free(res.ptr)
        ctx = ffi.new("FfiRuntimeContext *")
        ctx.instance_id = self.s("py")
        ctx.component_id = self.s("s1")
        vt.initialize_fn(vt.state, ctx)
        return vt

    def subscribe(self, vt: Any) -> Any:
        """Subscribe query ``q1`` (no bootstrap, no resume position) to the
        source ``vt``; its change receiver, copied out (the response and its
        strings are freed)."""
        ffi, lib = self.ffi, self.lib
        resp = vt.subscribe_fn(
            vt.state,
            self.s("s1"),
            False,
            self.s("q1"),
            self.s("[]"),
            self.s("[]"),
            ffi.NULL,
            0,
            False,
        )
        assert resp != ffi.NULL
        for owned in (resp.query_id, resp.source_id):
            if owned.cap:
                lib.free(owned.ptr)
        receiver = ffi.new("FfiChangeReceiver *", resp.receiver[0])
        lib.free(resp.receiver)
        lib.free(resp)
        return receiver

    def start_bootstrap(self, config: dict[str, Any]) -> tuple[Any, Any, Any]:
        """Create the library's bootstrap provider with ``config`` and start a
        bootstrap of query ``q1`` for label ``Person``; the provider and the
        stream's events and result receivers, copied out (their blocks are
        freed; the caller drops the provider and the events receiver)."""
        ffi, lib = self.ffi, self.lib
        factory = self.reg.bootstrap_plugins[0]
        res = factory.create_bootstrap_provider_fn(
            factory.state, self.s(json.dumps(config)), self.s("{}")
        )
        assert res.error_code == 0
        provider = ffi.new(
            "BootstrapProviderVtable *", ffi.cast("BootstrapProviderVtable *", res.ptr)[0]
        )
        lib.free(res.ptr)
        labels = ffi.new("FfiStr[1]", [self.s("Person")])
        self.keep.append(labels)
        stream = provider.bootstrap_fn(
            provider.state,
            self.s("q1"),
            labels,
            1,
            ffi.NULL,
            0,
            self.s("r"),
            self.s("srv"),
            self.s("s1"),
        )
        assert stream != ffi.NULL
        events = ffi.new("FfiBootstrapReceiver *", stream.events[0])
        result = ffi.new("FfiBootstrapResultReceiver *", stream.result[0])
        lib.free(stream.events)
        lib.free(stream.result)
        lib.free(stream)
        return provider, events, result


def open_plugin013(ffi: Any, lib: Any, path: Path) -> Plugin013:
    """Initialise the 0.13 fixture library at ``path`` by hand."""
    p = Plugin013(ffi, lib, ctypes.CDLL(str(path)), STATS013_FFI.dlopen(str(path)))
    block = p.fn("DrasiPluginInitFn", "drasi_plugin_init")()
    assert block != ffi.NULL
    p.reg = ffi.new("FfiPluginRegistration *", block[0])
    lib.free(block)
    return p


def close_plugin013(p: Plugin013) -> dict[str, int]:
    """Drop every factory of ``p``, wait for the library's threads and check
    that everything it handed out came back; the library's counters."""
    reg = p.reg
    for arr, count in (
        (reg.source_plugins, reg.source_plugin_count),
        (reg.reaction_plugins, reg.reaction_plugin_count),
        (reg.bootstrap_plugins, reg.bootstrap_plugin_count),
        (reg.identity_provider_plugins, reg.identity_provider_plugin_count),
        (reg.secret_store_plugins, reg.secret_store_plugin_count),
    ):
        for i in range(count):
            arr[i].drop_fn(arr[i].state)
        if count:
            p.lib.free(arr)
    p.stats_lib.drasi_fixture013_join_threads()
    stats = p.stats()
    assert stats["payloads_created"] == stats["payloads_released"]
    assert stats["receivers_created"] == stats["receivers_dropped"]
    assert stats["objects_created"] == stats["objects_dropped"]
    return stats
