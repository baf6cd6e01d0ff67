"""A plugin that breaks the boundary rules (``libdrasi_hostile2``, built from
``plugins_fixture/lib_hostile2.c``): impossible registration counts, owned
strings and arrays whose lengths cannot be true, a C bool holding 0x42 and
log levels outside the ABI's list.  Each is refused with a typed error (or,
for log levels, reported in the message) without reading, writing or freeing
memory the host does not own; the process goes on normally."""

from __future__ import annotations

import gc
import logging
import shutil
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cffi
import pytest

from drasi_host import (
    CallbackContext,
    ComponentEvent,
    ComponentEventHistory,
    ComponentStatus,
    LogLevel,
    PluginProtocolError,
    _abi,
)
from drasi_host.loader import MAX_FACTORIES, load_plugin
from drasi_host.logs import DEFAULT_MAX_COMPONENTS

Stats = Callable[[Path], dict[str, int]]

_ffi = cffi.FFI()
_ffi.cdef(
    """
    void drasi_hostile2_set_registration(int mode);
    void drasi_hostile2_log(int level, int n, int distinct);
    """
)


def private_copy(src: Path, directory: Path) -> Path:
    """A copy of a built library: loading it gives a fresh library instance."""
    directory.mkdir(parents=True, exist_ok=True)
    dst = directory / src.name
    shutil.copy2(src, dst)
    return dst


@pytest.fixture
def hostile2(fixture_plugins: dict[str, Path], tmp_path: Path) -> tuple[Path, Any]:
    path = private_copy(fixture_plugins["hostile2"], tmp_path)
    return path, _ffi.dlopen(str(path))


@pytest.mark.parametrize(
    ("mode", "field", "count"),
    [
        (1, "source_plugins", 2**64 - 1),
        (2, "source_plugins", 2**40),
        (3, "reaction_plugins", 2**40),
    ],
)
def test_impossible_registration_counts_are_refused(
    hostile2: tuple[Path, Any], mode: int, field: str, count: int, fixture_stats_reader: Stats
) -> None:
    path, hooks = hostile2
    hooks.drasi_hostile2_set_registration(mode)
    with pytest.raises(PluginProtocolError) as info:
        load_plugin(path, CallbackContext("t"))
    assert f"{field} count {count} exceeds {MAX_FACTORIES}" in str(info.value)
    assert info.value.plugin == path.name
    # nothing of the impossible array was read or dropped
    assert fixture_stats_reader(path)["factories_dropped"] == 0
    # the same library loads normally afterwards
    hooks.drasi_hostile2_set_registration(0)
    with load_plugin(path, CallbackContext("t")) as plugin:
        assert sorted(f.kind for f in plugin.source_plugins) == [
            "badbool",
            "dangling-schema",
            "storm",
        ]


def test_dangling_owned_string_with_length_is_refused(hostile2: tuple[Path, Any]) -> None:
    path, _ = hostile2
    with load_plugin(path, CallbackContext("t")) as plugin:
        factory = next(f for f in plugin.source_plugins if f.kind == "dangling-schema")
        for _ in range(3):  # never dereferenced nor freed: repeatable
            with pytest.raises(PluginProtocolError, match="length 5 with cap 0"):
                factory.config_schema_json()


@pytest.mark.anyio
async def test_string_array_len_beyond_cap_is_refused(
    hostile2: tuple[Path, Any], fixture_stats_reader: Stats
) -> None:
    path, _ = hostile2
    with load_plugin(path, CallbackContext("t")) as plugin:
        (factory,) = plugin.reaction_plugins
        with pytest.raises(PluginProtocolError, match="len 100000 exceeds cap 1"):
            await factory.create_reaction("r", ["q"], {})
    stats = fixture_stats_reader(path)
    assert stats["reactions_created"] == stats["reactions_dropped"] == 1


@pytest.mark.anyio
async def test_bool_holding_0x42_is_a_protocol_error(
    hostile2: tuple[Path, Any], fixture_stats_reader: Stats
) -> None:
    path, _ = hostile2
    with load_plugin(path, CallbackContext("t")) as plugin:
        factory = next(f for f in plugin.source_plugins if f.kind == "badbool")
        with pytest.raises(PluginProtocolError, match="returned 0x42, not a C bool"):
            await factory.create_source("b", {})
    stats = fixture_stats_reader(path)
    assert stats["sources_created"] == stats["sources_dropped"] == 1


@pytest.mark.parametrize("level", [-1, 5, 2**31 - 1, -(2**31)])
def test_log_level_out_of_range_is_named_signed(
    hostile2: tuple[Path, Any], level: int, caplog: pytest.LogCaptureFixture
) -> None:
    path, hooks = hostile2
    callbacks = CallbackContext("t")
    caplog.set_level(logging.DEBUG, logger="drasi.plugin")
    with load_plugin(path, callbacks):
        hooks.drasi_hostile2_log(level, 1, 0)
    messages = [
        m for m in callbacks.log_registry.get("t", "") if m.message.endswith("hostile2 message 0")
    ]
    (message,) = messages
    assert message.level is LogLevel.ERROR
    assert message.message == f"[invalid log level {level}] hostile2 message 0"
    assert "4294967295" not in caplog.text
    assert f"[invalid log level {level}]" in caplog.text


def test_valid_log_levels_pass_unchanged(hostile2: tuple[Path, Any]) -> None:
    path, hooks = hostile2
    callbacks = CallbackContext("t")
    with load_plugin(path, callbacks):
        for level in LogLevel:
            hooks.drasi_hostile2_log(int(level), 1, 0)
    got = [m.level for m in callbacks.log_registry.get("t", "") if "hostile2 message" in m.message]
    assert got == list(LogLevel)


def test_memory_stays_bounded_over_50000_component_ids(
    hostile2: tuple[Path, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Every log line names a new component id: the histories keep at most
    ``DEFAULT_MAX_COMPONENTS`` components and no ``Logger`` is created per id,
    yet each record is still named ``drasi.plugin.<component_id>``."""
    path, hooks = hostile2
    callbacks = CallbackContext("t")
    loggers_before = set(logging.Logger.manager.loggerDict)
    with load_plugin(path, callbacks):
        tracemalloc.start()
        try:
            # fill the histories first (traced, so that what replaces them is
            # balanced by what they release)
            hooks.drasi_hostile2_log(int(LogLevel.INFO), 2 * DEFAULT_MAX_COMPONENTS, 1)
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            hooks.drasi_hostile2_log(int(LogLevel.INFO), 50_000, 1)
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        with caplog.at_level(logging.INFO, logger="drasi.plugin"):
            hooks.drasi_hostile2_log(int(LogLevel.INFO), 3, 1)
    components = callbacks.log_registry.components()
    assert len(components) == DEFAULT_MAX_COMPONENTS
    assert ("t", "c0") in components  # the last three lines, most recent
    assert grown < 2_000_000, f"{grown} bytes kept for 50,000 new component ids"
    new_loggers = set(logging.Logger.manager.loggerDict) - loggers_before
    assert not [name for name in new_loggers if name.startswith("drasi.plugin.")]
    assert [r.name for r in caplog.records if r.getMessage().startswith("hostile2")] == [
        "drasi.plugin.c0",
        "drasi.plugin.c1",
        "drasi.plugin.c2",
    ]


def test_event_history_is_bounded_in_components() -> None:
    history = ComponentEventHistory(max_per_component=2, max_components=3)
    for k in range(10):
        history.add(ComponentEvent(f"c{k}", "source", ComponentStatus.RUNNING, "", k))
    history.add(ComponentEvent("c8", "source", ComponentStatus.STOPPED, "", 10))
    assert history.components() == ["c7", "c9", "c8"]
    assert history.latest_status("c8") is ComponentStatus.STOPPED
    assert history.get("c0") == []


def test_registered_logger_of_a_component_is_honoured(hostile2: tuple[Path, Any]) -> None:
    """An application that asks for ``drasi.plugin.<id>`` gets that logger's
    level and handlers applied to the component's lines."""
    path, hooks = hostile2
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("drasi.plugin.c1")
    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        with load_plugin(path, CallbackContext("t")):
            hooks.drasi_hostile2_log(int(LogLevel.INFO), 3, 1)  # c0, c1, c2 at INFO
            hooks.drasi_hostile2_log(int(LogLevel.WARN), 2, 1)  # c0, c1 at WARN
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    assert [(r.name, r.levelno) for r in records] == [("drasi.plugin.c1", logging.WARNING)]


# ---- the owned-buffer rules, case by case -------------------------------------


def _owned(ptr: int, n: int, cap: int) -> Any:
    return _abi.ffi.new(
        "FfiOwnedStr *", {"ptr": _abi.ffi.cast("char *", ptr), "len": n, "cap": cap}
    )[0]


@pytest.mark.parametrize(
    ("ptr", "n", "cap", "match"),
    [
        (1, 5, 0, "length 5 with cap 0"),  # dangling with a length: no bytes exist
        (8, 2**63, 0, "length 9223372036854775808 with cap 0"),
        (0, 3, 3, "NULL pointer with cap 3"),
        (0x1000, 100_000, 1, "len 100000 exceeds cap 1"),  # never read, never freed
        (0x1000, 2**64 - 1, 2, "exceeds cap 2"),
    ],
)
def test_impossible_owned_strings_are_refused_untouched(
    ptr: int, n: int, cap: int, match: str
) -> None:
    # ptr 0x1000 is unmapped: reading or freeing it would crash the test process
    with pytest.raises(PluginProtocolError, match=match):
        _abi.take_owned_str(_owned(ptr, n, cap), "owned")


@pytest.mark.parametrize(
    ("n", "cap", "match"),
    [
        (3, 0, "length 3 with cap 0"),
        (5, 2, "len 5 exceeds cap 2"),
        (2**40, 2**41, "exceeds 1000000"),
    ],
)
def test_impossible_string_arrays_are_refused_untouched(n: int, cap: int, match: str) -> None:
    value = _abi.ffi.new(
        "FfiStringArray *",
        {"data": _abi.ffi.cast("FfiOwnedStr *", 0x1000), "len": n, "cap": cap},
    )[0]
    with pytest.raises(PluginProtocolError, match=match):
        _abi.take_string_array(value, "ids")
