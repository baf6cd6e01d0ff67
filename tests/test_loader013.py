"""Loading FFI 0.13 plugins beside 0.4 ones: dispatch on the metadata before
init, the 0.13 load sequence (five factory arrays, log-level pushdown, the
registration block freed), factories behind the same proxy classes, and the
ABI of each plugin in ``drasi-host inspect``."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cffi
import pytest

from drasi_host import (
    SUPPORTED_SDK_VERSIONS,
    BootstrapPluginProxy,
    CallbackContext,
    IdentityProviderPluginProxy,
    IncompatiblePluginError,
    PluginLoader,
    PluginLoaderConfig,
    PluginLoadError,
    PluginProtocolError,
    ReactionPluginProxy,
    SecretStorePluginProxy,
    SourcePluginProxy,
    _abi013,
    host_target_triple,
)
from drasi_host.cli import main
from drasi_host.loader import PLUGIN_LOGGER, load_plugin

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")

_stats_ffi = cffi.FFI()
_stats_ffi.cdef(
    "\n".join(
        line
        for line in (ROOT / "plugins_fixture" / "v013" / "stats013.h").read_text().splitlines()
        if not line.lstrip().startswith("#")
    )
)


def stats(path: Path) -> dict[str, int]:
    """The counters of the loaded 0.13 fixture library at ``path``."""
    lib: Any = _stats_ffi.dlopen(str(path))
    out = _stats_ffi.new("DrasiFixture013Stats *")
    lib.drasi_fixture013_stats(out)
    return {k: int(getattr(out, k)) for k, _ in _stats_ffi.typeof("DrasiFixture013Stats").fields}


@pytest.fixture(scope="module")
def built013(tmp_path_factory: pytest.TempPathFactory, fixture_builder: Any) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("loader013")
    built: dict[str, Path] = fixture_builder.build_fixtures_013(out)
    return built


def fresh_dir(directory: Path, *libraries: Path) -> Path:
    """A directory holding private copies of ``libraries`` (each copy is a
    library instance of its own, with its own counters)."""
    directory.mkdir(parents=True, exist_ok=True)
    for library in libraries:
        shutil.copy2(library, directory / library.name)
    return directory


@pytest.fixture
def mixed_dir(tmp_path: Path, built013: dict[str, Path], fixture_plugins: dict[str, Path]) -> Path:
    """0.4 and 0.13 fixture plugins in one directory."""
    return fresh_dir(
        tmp_path / "plugins",
        fixture_plugins["source"],
        fixture_plugins["reaction"],
        built013["v013_all"],
        built013["v013_services"],
    )


@pytest.fixture
def plugin_logger_level() -> Iterator[logging.Logger]:
    logger = logging.getLogger(PLUGIN_LOGGER)
    saved = logger.level
    yield logger
    logger.setLevel(saved)


def test_supported_versions() -> None:
    assert SUPPORTED_SDK_VERSIONS == ("0.4", "0.13")


def test_one_loader_loads_both_generations(
    mixed_dir: Path, fixture_plugins: dict[str, Path], built013: dict[str, Path]
) -> None:
    loader = PluginLoader(PluginLoaderConfig(plugin_dir=mixed_dir))
    plugins = loader.load_all(CallbackContext("mixed"))
    by_name = {p.name: p for p in plugins}
    try:
        assert set(by_name) == {p.name for p in mixed_dir.iterdir()}
        v04 = by_name[fixture_plugins["source"].name]
        assert v04.abi_version == "0.4"
        assert by_name[fixture_plugins["reaction"].name].abi_version == "0.4"
        assert v04.identity_provider_plugins == [] and v04.secret_store_plugins == []
        assert v04.payload_format == "application/json"

        every = by_name[built013["v013_all"].name]
        assert every.abi_version == "0.13"
        assert every.payload_format is None
        assert every.metadata is not None and every.metadata.sdk_version == "0.13.0"
        assert "abi=0.13" in repr(every)
        groups: list[tuple[list[Any], type[Any], str]] = [
            (every.source_plugins, SourcePluginProxy, "fixture013"),
            (every.reaction_plugins, ReactionPluginProxy, "fixture013-reaction"),
            (every.bootstrap_plugins, BootstrapPluginProxy, "fixture013-bootstrap"),
            (every.identity_provider_plugins, IdentityProviderPluginProxy, "fixture013-identity"),
            (every.secret_store_plugins, SecretStorePluginProxy, "fixture013-secrets"),
        ]
        for factories, cls, kind in groups:
            assert len(factories) == 1
            (factory,) = factories
            assert type(factory) is cls
            assert factory.abi_version == "0.13"
            assert factory.kind == kind
            assert factory.config_version == "1.0.0"
            assert factory.config_schema_name.startswith("fixture013.")
            assert factory.config_schema_json()["type"] == "object"
        assert v04.source_plugins[0].abi_version == "0.4"

        services = by_name[built013["v013_services"].name]
        assert [f.kind for f in services.identity_provider_plugins] == ["fixture013-identity"]
        assert [f.kind for f in services.secret_store_plugins] == ["fixture013-secrets"]
        assert services.source_plugins == services.reaction_plugins == []
    finally:
        for plugin in plugins:
            plugin.close()
    # every 0.13 factory was dropped exactly once
    assert stats(mixed_dir / built013["v013_all"].name)["factories_dropped"] == 5
    assert stats(mixed_dir / built013["v013_services"].name)["factories_dropped"] == 2
    assert all(f.released for p in plugins for f in p.source_plugins + p.secret_store_plugins)


@pytest.mark.parametrize(
    ("level", "expected"),
    [(logging.WARNING, 2), (logging.DEBUG, 4), (logging.INFO, 3), (5, 5), (logging.CRITICAL, 1)],
)
def test_log_level_pushed_down_at_load(
    tmp_path: Path,
    built013: dict[str, Path],
    plugin_logger_level: logging.Logger,
    level: int,
    expected: int,
) -> None:
    plugin_logger_level.setLevel(level)
    path = fresh_dir(tmp_path, built013["v013_source"]) / built013["v013_source"].name
    with load_plugin(path, CallbackContext("t")) as plugin:
        assert plugin.abi_version == "0.13"
        assert stats(path)["log_level"] == expected


def test_log_filter_mapping() -> None:
    assert [_abi013.log_filter(v) for v in (0, 5, 10, 15, 20, 30, 40, 50)] == [
        5,
        5,
        4,
        4,
        3,
        2,
        1,
        1,
    ]


def test_other_versions_refused_before_init(tmp_path: Path, built013: dict[str, Path]) -> None:
    path = fresh_dir(tmp_path, built013["v013_badsdk"]) / built013["v013_badsdk"].name
    with pytest.raises(IncompatiblePluginError) as info:
        load_plugin(path, CallbackContext("t"))
    message = str(info.value)
    for text in ("0.12.0", "0.4", "0.13", str(path)):
        assert text in message
    assert info.value.path == path
    # drasi_plugin_init never ran: it would have marked the level as never set (-1)
    assert stats(path)["log_level"] == 0
    assert stats(path)["factories_dropped"] == 0


@pytest.mark.anyio
async def test_013_components_are_created_behind_the_same_proxies(
    tmp_path: Path, built013: dict[str, Path]
) -> None:
    path = fresh_dir(tmp_path, built013["v013_all"]) / built013["v013_all"].name
    async with load_plugin(path, CallbackContext("t")) as plugin:
        source = await plugin.source_plugins[0].create_source("s1", {})
        reaction = await plugin.reaction_plugins[0].create_reaction("r1", ["q"], {})
        provider = await plugin.bootstrap_plugins[0].create_bootstrap_provider({})
        assert {type(o).__name__ for o in (source, reaction, provider)} == {
            "SourceProxy",
            "ReactionProxy",
            "BootstrapProviderProxy",
        }
        assert {o.abi_version for o in (source, reaction, provider)} == {"0.13"}
        assert stats(path)["objects_created"] == 3
        for obj in (source, reaction, provider):
            await obj.aclose()
    assert stats(path)["objects_dropped"] == 3


def test_inspect_shows_the_abi(
    mixed_dir: Path,
    fixture_plugins: dict[str, Path],
    built013: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["inspect", str(mixed_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count("  abi 0.4\n") == 2 and out.count("  abi 0.13\n") == 2
    assert "identity  fixture013-identity" in out
    assert "secrets   fixture013-secrets" in out
    assert "payload format: MessagePack (fixed by the ABI)" in out

    assert main(["inspect", "--json", str(mixed_dir)]) == 0
    report = {Path(e["path"]).name: e for e in json.loads(capsys.readouterr().out)}
    assert report[fixture_plugins["source"].name]["abi_version"] == "0.4"
    assert report[fixture_plugins["source"].name]["identity_providers"] == []
    every = report[built013["v013_all"].name]
    assert every["abi_version"] == "0.13"
    assert every["secret_stores"] == [
        {
            "kind": "fixture013-secrets",
            "config_version": "1.0.0",
            "config_schema_name": "fixture013.ServiceConfig",
        }
    ]


def test_inspect_names_supported_versions_for_a_refused_plugin(
    tmp_path: Path, built013: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    directory = fresh_dir(tmp_path / "p", built013["v013_badsdk"], built013["v013_reaction"])
    assert main(["inspect", str(directory)]) == 1
    captured = capsys.readouterr()
    assert "abi 0.13" in captured.out
    assert "FAILED (IncompatiblePluginError)" in captured.err
    assert "0.12.0" in captured.err and "0.4, 0.13" in captured.err


# ---- hostile 0.13 registrations ---------------------------------------------

_HOSTILE_REGISTRATION = r"""
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "drasi_plugin_0_13.h"

int drops = 0;
int level = -1;

static const PluginMetadata meta = {
    {"0.13.0", 6}, {"0", 1}, {"0", 1}, {"0", 1}, {TRIPLE, sizeof(TRIPLE) - 1}, {"", 0}, {"", 0}
};
const PluginMetadata *drasi_plugin_metadata(void) { return &meta; }

static FfiStr text(const char *s) { FfiStr r = {s, strlen(s)}; return r; }
static FfiStr kind(const void *s) { (void)s; return text("hostile-kind"); }
static FfiOwnedStr schema(const void *s) {
    FfiOwnedStr r = {malloc(2), 2, 2}; memcpy(r.ptr, "{}", 2); (void)s; return r;
}
static FfiCreateResult create(void *s, FfiStr a, FfiStr b, bool c) {
    FfiCreateResult r = {NULL, 1, NULL}; (void)s; (void)a; (void)b; (void)c; return r;
}
static void drop(void *s) { (void)s; __atomic_add_fetch(&drops, 1, __ATOMIC_SEQ_CST); }
static void set_level(FfiLogLevelFilter f) { level = (int)f; }

FfiPluginRegistration *drasi_plugin_init(void)
{
    FfiPluginRegistration *reg = calloc(1, sizeof *reg);
    SourcePluginVtable *sources = calloc(2, sizeof *sources);
    for (int i = 0; i < 2; i++) {
        sources[i].kind_fn = kind;
        sources[i].config_version_fn = kind;
        sources[i].config_schema_json_fn = schema;
        sources[i].config_schema_name_fn = kind;
        sources[i].create_source_fn = create;
        sources[i].drop_fn = drop;
    }
    reg->source_plugins = sources;
    reg->source_plugin_count = 2;
    reg->reaction_plugins = (ReactionPluginVtable *)(uintptr_t)8;
    reg->bootstrap_plugins = (BootstrapPluginVtable *)(uintptr_t)8;
    reg->identity_provider_plugins = (IdentityProviderPluginVtable *)(uintptr_t)8;
    reg->secret_store_plugins = (SecretStorePluginVtable *)(uintptr_t)8;
    reg->set_log_level = set_level;
#if MODE == 1  /* a count no array can have */
    reg->secret_store_plugin_count = (size_t)1 << 40;
#elif MODE == 2  /* init failed */
    free(sources);
    free(reg);
    return NULL;
#elif MODE == 3  /* the second factory has no kind_fn */
    sources[1].kind_fn = NULL;
#elif MODE == 4  /* a NULL identity array with a count */
    reg->identity_provider_plugins = NULL;
    reg->identity_provider_plugin_count = 1;
#endif
    return reg;
}
"""


def hostile_registration(tmp_path: Path, mode: int) -> tuple[Path, Any]:
    """A 0.13 library whose registration is broken as ``mode`` says, and its
    ``drops`` / ``level`` counters."""
    source = tmp_path / f"hostile_reg{mode}.c"
    source.write_text(_HOSTILE_REGISTRATION)
    out = tmp_path / f"libdrasi_hostile_reg{mode}.so"
    subprocess.run(
        [
            shutil.which("cc") or "cc",
            "-shared",
            "-fPIC",
            "-std=c11",
            f"-I{ROOT / 'cdefs'}",
            f'-DTRIPLE="{host_target_triple()}"',
            f"-DMODE={mode}",
            "-o",
            str(out),
            str(source),
        ],
        check=True,
    )
    counters = cffi.FFI()
    counters.cdef("extern int drops; extern int level;")
    return out, counters.dlopen(str(out))


@pytest.mark.parametrize(
    ("mode", "error", "text", "drops"),
    [
        (1, PluginProtocolError, "secret_store_plugins count 1099511627776", 2),
        (2, PluginLoadError, "drasi_plugin_init returned NULL", 0),
        (3, PluginProtocolError, "kind_fn", 2),
        (4, PluginProtocolError, "identity_provider_plugins is NULL with count 1", 2),
    ],
)
def test_hostile_registrations_give_typed_errors(
    tmp_path: Path, mode: int, error: type[Exception], text: str, drops: int
) -> None:
    path, counters = hostile_registration(tmp_path, mode)
    with pytest.raises(error, match=re.escape(text)) as info:
        load_plugin(path, CallbackContext("t"))
    assert getattr(info.value, "plugin", None) == path.name
    # every factory that was handed over is dropped exactly once, also on failure
    deadline = time.monotonic() + 5
    while counters.drops < drops and time.monotonic() < deadline:
        time.sleep(0.01)
    assert counters.drops == drops


def test_a_good_registration_of_the_hostile_library_loads(tmp_path: Path) -> None:
    path, counters = hostile_registration(tmp_path, 0)
    with load_plugin(path, CallbackContext("t")) as plugin:
        assert [f.kind for f in plugin.source_plugins] == ["hostile-kind"] * 2
        assert counters.level == _abi013.log_filter(
            logging.getLogger(PLUGIN_LOGGER).getEffectiveLevel()
        )
    assert counters.drops == 2
