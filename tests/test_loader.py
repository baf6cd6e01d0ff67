"""The loader against real plugin libraries compiled from ``plugins_fixture/``.

Discovery, metadata validation before ``drasi_plugin_init``, the load-time
errors of the broken fixture variants, ``load_all`` skipping bad files, and
release of every factory exactly once (``close``, ``with``, garbage
collection).  Tests that count a library's calls load a private copy of it:
a copy is a separate library instance with its own counters.
"""

from __future__ import annotations

import gc
import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cffi
import pytest
from lifetime_helpers import eventually

from drasi_host import (
    HOST_SDK_VERSION,
    CallbackContext,
    IncompatiblePluginError,
    PayloadFormatError,
    PluginLoader,
    PluginLoaderConfig,
    PluginLoadError,
    PluginProtocolError,
    host_target_triple,
)
from drasi_host.loader import load_plugin

Stats = Callable[[Path], dict[str, int]]

_probe_ffi = cffi.FFI()
_probe_ffi.cdef(
    """
    typedef struct {
        void *sources; size_t n_sources;
        void *reactions; size_t n_reactions;
        void *bootstraps; size_t n_bootstraps;
        void *set_log; void *set_lifecycle;
    } Registration;
    Registration *drasi_plugin_init(void);
    void free(void *);
    """
)
_libc = _probe_ffi.dlopen(None)


def private_copy(src: Path, directory: Path) -> Path:
    """A copy of a built library: loading it gives a fresh library instance."""
    directory.mkdir(parents=True, exist_ok=True)
    dst = directory / src.name
    shutil.copy2(src, dst)
    return dst


def call_init_directly(path: Path) -> None:
    """Call the library's ``drasi_plugin_init`` ourselves and free what it returns.

    The fixture's init logs "initialised" through the global log callback, so
    the library's ``log_calls`` counter grows only if a host had wired the
    callbacks, which the loader does right after its own init call.
    """
    lib: Any = _probe_ffi.dlopen(str(path))
    reg = lib.drasi_plugin_init()
    assert reg != _probe_ffi.NULL
    for array, count in (
        (reg.sources, reg.n_sources),
        (reg.reactions, reg.n_reactions),
        (reg.bootstraps, reg.n_bootstraps),
    ):
        if count:
            _libc.free(array)
    _libc.free(reg)


# ---- versions and discovery ----------------------------------------------------


def test_host_target_triple_and_sdk_version(fixture_plugins: dict[str, Path]) -> None:
    triple = host_target_triple()
    assert re.fullmatch(
        r"(x86_64|aarch64)-(unknown-linux-(gnu|musl)|apple-darwin|pc-windows-msvc)", triple
    ), triple
    major, minor, *_ = HOST_SDK_VERSION.split(".")
    assert f"{major}.{minor}" == "0.4"
    # the fixtures are built for this machine: their metadata names the same triple
    plugin = load_plugin(fixture_plugins["source"], CallbackContext("t"))
    with plugin:
        assert plugin.metadata is not None
        assert plugin.metadata.target_triple == triple
        assert plugin.metadata.sdk_version.startswith("0.4.")


def _touch(directory: Path, *names: str) -> None:
    for name in names:
        (directory / name).write_bytes(b"")


def test_discover_globs_ignore_suffix_and_skip_others(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "libdrasi_source_b.so",
        "libdrasi_source_a.dylib",
        "libdrasi_reaction_x.dll",
        "libdrasi_source_c.so.cmd",  # not a library suffix
        "libdrasi_notes.txt",
        "libother.so",
        "README",
    )
    (tmp_path / "libdrasi_dir.so").mkdir()  # a directory, not a file
    default = PluginLoader(PluginLoaderConfig(plugin_dir=tmp_path)).discover()
    assert [p.name for p in default] == [
        "libdrasi_reaction_x.dll",
        "libdrasi_source_a.dylib",
        "libdrasi_source_b.so",
    ]
    only_sources = PluginLoader(
        PluginLoaderConfig(tmp_path, file_patterns=["libdrasi_source_*"])
    ).discover()
    assert [p.name for p in only_sources] == ["libdrasi_source_a.dylib", "libdrasi_source_b.so"]
    # the pattern is matched against the name without its suffix: an exact stem matches
    exact = PluginLoader(
        PluginLoaderConfig(tmp_path, file_patterns=["libdrasi_reaction_x"])
    ).discover()
    assert [p.name for p in exact] == ["libdrasi_reaction_x.dll"]
    # ... and a pattern naming the suffix does not
    with_suffix = PluginLoader(PluginLoaderConfig(tmp_path, file_patterns=["*.so"])).discover()
    assert with_suffix == []
    several = PluginLoader(
        PluginLoaderConfig(tmp_path, file_patterns=["*_x", "libdrasi_source_b"])
    ).discover()
    assert [p.name for p in several] == ["libdrasi_reaction_x.dll", "libdrasi_source_b.so"]


def test_missing_directory_gives_empty_list_and_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "no-such-dir"
    loader = PluginLoader(PluginLoaderConfig(plugin_dir=missing))
    with caplog.at_level(logging.WARNING, logger="drasi_host.loader"):
        assert loader.discover() == []
        assert loader.load_all(CallbackContext("t")) == []
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all(str(missing) in r.getMessage() for r in warnings)


# ---- metadata and load-time errors ----------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [("badsdk", ["0.3.1", "0.4"]), ("badtriple", ["riscv64gc-unknown-none-elf"])],
)
def test_incompatible_plugins_rejected_before_init(
    name: str,
    expected: list[str],
    fixture_plugins: dict[str, Path],
    fixture_stats_reader: Stats,
    tmp_path: Path,
) -> None:
    path = private_copy(fixture_plugins[name], tmp_path)
    with pytest.raises(IncompatiblePluginError) as info:
        load_plugin(path, CallbackContext("t"))
    message = str(info.value)
    assert str(path) in message
    for text in expected:
        assert text in message
    assert info.value.path == path
    assert isinstance(info.value, PluginLoadError)
    # init never ran: no callback was ever wired, so the plugin's own init call logs nothing
    assert fixture_stats_reader(path)["log_calls"] == 0
    call_init_directly(path)
    assert fixture_stats_reader(path)["log_calls"] == 0
    assert fixture_stats_reader(path)["factories_dropped"] == 0


def test_init_probe_sees_a_loaded_plugin(
    fixture_plugins: dict[str, Path], fixture_stats_reader: Stats, tmp_path: Path
) -> None:
    """Control for the test above: after a real load, the probe does see the callbacks."""
    path = private_copy(fixture_plugins["nometa"], tmp_path)
    with load_plugin(path, CallbackContext("t")):
        before = fixture_stats_reader(path)["log_calls"]
        call_init_directly(path)
        assert fixture_stats_reader(path)["log_calls"] == before + 1


def test_nometa_loads_with_a_warning(
    fixture_plugins: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    path = fixture_plugins["nometa"]
    with caplog.at_level(logging.WARNING, logger="drasi_host.loader"):
        plugin = load_plugin(path, CallbackContext("t"))
    with plugin:
        assert plugin.metadata is None
        assert [f.kind for f in plugin.source_plugins] == ["nometa"]
        assert plugin.payload_format == "application/json"
    assert any(
        str(path) in r.getMessage() and "metadata" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
    )


def test_noinit_and_initnull(fixture_plugins: dict[str, Path]) -> None:
    path = fixture_plugins["noinit"]
    with pytest.raises(PluginLoadError, match="missing required symbol drasi_plugin_init") as info:
        load_plugin(path, CallbackContext("t"))
    assert info.value.path == path and str(path) in str(info.value)
    assert not isinstance(info.value, IncompatiblePluginError)

    path = fixture_plugins["initnull"]
    with pytest.raises(PluginLoadError, match="returned NULL") as info:
        load_plugin(path, CallbackContext("t"))
    assert info.value.path == path


def test_badformat_refused_naming_the_format(fixture_plugins: dict[str, Path]) -> None:
    path = fixture_plugins["badformat"]
    with pytest.raises(PayloadFormatError) as info:
        load_plugin(path, CallbackContext("t"))
    assert "application/x-unknown" in str(info.value)
    assert str(path) in str(info.value)


def test_badutf8_kind_is_a_protocol_error(
    fixture_plugins: dict[str, Path], fixture_stats_reader: Stats, tmp_path: Path
) -> None:
    path = private_copy(fixture_plugins["badutf8"], tmp_path)
    with pytest.raises(PluginProtocolError) as info:
        load_plugin(path, CallbackContext("t"))
    assert str(path) in str(info.value)
    assert "invalid UTF-8" in str(info.value)
    # the factory that could not be wrapped was still released, exactly once
    assert fixture_stats_reader(path)["factories_dropped"] == 1


def test_payload_formats(fixture_plugins: dict[str, Path]) -> None:
    callbacks = CallbackContext("t")
    with load_plugin(fixture_plugins["source"], callbacks) as plugin:
        assert plugin.payload_format == "application/json"
    with load_plugin(fixture_plugins["opaque"], callbacks) as plugin:
        assert plugin.payload_format is None
        assert [f.kind for f in plugin.source_plugins] == ["opaque"]
        assert [f.kind for f in plugin.reaction_plugins] == ["opaque-reaction"]


def test_multi_factories(fixture_plugins: dict[str, Path]) -> None:
    with load_plugin(fixture_plugins["multi"], CallbackContext("t")) as plugin:
        assert [f.kind for f in plugin.source_plugins] == ["multi-a", "multi-b"]
        assert [f.kind for f in plugin.reaction_plugins] == ["multi-r1", "multi-r2", "multi-r3"]
        assert [f.kind for f in plugin.bootstrap_plugins] == ["multi-b1", "multi-b2"]
        assert plugin.metadata is not None and plugin.metadata.plugin_version == "1.0.0"
        assert plugin.path == fixture_plugins["multi"]
        assert "sources=2 reactions=3 bootstrap=2" in repr(plugin)


def test_unopenable_files(tmp_path: Path) -> None:
    with pytest.raises(PluginLoadError, match="no such file"):
        load_plugin(tmp_path / "libdrasi_missing.so", CallbackContext("t"))
    fake = tmp_path / "libdrasi_fake.so"
    fake.write_text("this is not a shared library\n")
    with pytest.raises(PluginLoadError, match="cannot open library") as info:
        PluginLoader(PluginLoaderConfig(tmp_path)).load_plugin(fake, CallbackContext("t"))
    assert info.value.path == fake


def test_load_all_skips_bad_files_and_keeps_going(
    fixture_plugins: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = ["multi", "nometa", "opaque", "source"]
    bad = ["badformat", "badsdk", "badtriple", "badutf8", "initnull", "noinit"]
    for name in good + bad:
        src = fixture_plugins[name]
        (tmp_path / src.name).symlink_to(src)
    (tmp_path / "libdrasi_junk.so").write_text("not a library")
    (tmp_path / "libdrasi_notes.txt").write_text("not a plugin")

    loader = PluginLoader(PluginLoaderConfig(plugin_dir=tmp_path))
    assert len(loader.discover()) == len(good) + len(bad) + 1
    with caplog.at_level(logging.ERROR, logger="drasi_host.loader"):
        plugins = loader.load_all(CallbackContext("t"))
    try:
        names = [p.path.name for p in plugins]
        assert names == sorted(fixture_plugins[n].name for n in good)
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == len(bad) + 1
        for name in bad:
            assert any(fixture_plugins[name].name in e for e in errors), name
        assert any("libdrasi_junk.so" in e for e in errors)
    finally:
        for p in plugins:
            p.close()


def test_load_plugin_raises_where_load_all_skips(fixture_plugins: dict[str, Path]) -> None:
    loader = PluginLoader(PluginLoaderConfig(plugin_dir=fixture_plugins["badsdk"].parent))
    with pytest.raises(IncompatiblePluginError):
        loader.load_plugin(fixture_plugins["badsdk"], CallbackContext("t"))


# ---- release of factories ---------------------------------------------------------


def test_close_drops_every_factory_once(
    fixture_plugins: dict[str, Path], fixture_stats_reader: Stats, tmp_path: Path
) -> None:
    path = private_copy(fixture_plugins["multi"], tmp_path)
    plugin = load_plugin(path, CallbackContext("t"))
    assert fixture_stats_reader(path)["factories_dropped"] == 0
    assert not plugin.closed
    plugin.close()
    assert plugin.closed
    assert fixture_stats_reader(path)["factories_dropped"] == 7
    plugin.close()
    assert fixture_stats_reader(path)["factories_dropped"] == 7
    assert all(f.released for f in plugin.source_plugins + plugin.reaction_plugins)


def test_context_manager_drops_factories(
    fixture_plugins: dict[str, Path], fixture_stats_reader: Stats, tmp_path: Path
) -> None:
    path = private_copy(fixture_plugins["multi"], tmp_path)
    with load_plugin(path, CallbackContext("t")) as plugin:
        assert fixture_stats_reader(path)["factories_dropped"] == 0
        assert len(plugin.bootstrap_plugins) == 2
    assert fixture_stats_reader(path)["factories_dropped"] == 7
    plugin.close()
    assert fixture_stats_reader(path)["factories_dropped"] == 7


@pytest.mark.anyio
async def test_async_context_manager_drops_factories(
    fixture_plugins: dict[str, Path], fixture_stats_reader: Stats, tmp_path: Path
) -> None:
    path = private_copy(fixture_plugins["multi"], tmp_path)
    async with load_plugin(path, CallbackContext("t")):
        assert fixture_stats_reader(path)["factories_dropped"] == 0
    assert fixture_stats_reader(path)["factories_dropped"] == 7


def test_garbage_collection_drops_factories(
    fixture_plugins: dict[str, Path], fixture_stats_reader: Stats, tmp_path: Path
) -> None:
    path = private_copy(fixture_plugins["multi"], tmp_path)
    plugin = load_plugin(path, CallbackContext("t"))
    factory_count = (
        len(plugin.source_plugins) + len(plugin.reaction_plugins) + len(plugin.bootstrap_plugins)
    )
    with pytest.warns(ResourceWarning, match="plugin libdrasi_multi"):
        del plugin
        gc.collect()
    assert factory_count == 7
    assert eventually(lambda: fixture_stats_reader(path)["factories_dropped"] == 7)


@pytest.mark.anyio
async def test_same_library_loaded_twice_both_usable(fixture_plugins: dict[str, Path]) -> None:
    callbacks = CallbackContext("t")
    first = load_plugin(fixture_plugins["source"], callbacks)
    second = load_plugin(fixture_plugins["source"], callbacks)
    try:
        a = await first.source_plugins[0].create_source("twice-a", {"event_count": 1})
        b = await second.source_plugins[0].create_source("twice-b", {"event_count": 1})
        await a.aclose()
        first.close()  # the library stays loaded: the second plugin still works
        assert second.source_plugins[0].config_schema_json()["type"] == "object"
        c = await second.source_plugins[0].create_source("twice-c")
        assert (b.id, c.id) == ("twice-b", "twice-c")
        await b.aclose()
        await c.aclose()
    finally:
        first.close()
        second.close()
    # and a third load after both were closed
    with load_plugin(fixture_plugins["source"], callbacks) as third:
        assert third.source_plugins[0].kind == "fixture"
