"""``drasi-host tail``: watch a source plugin's events from the terminal.

:func:`run_tail` loads the library (or the first library of a directory whose
source factories include ``kind``), creates the source, initialises it with a
:class:`~drasi_host.bridges.state_store.MemoryStateStore`, starts it,
subscribes one query and writes every event it receives: one readable line per
event, or one JSON document per line.  It stops after ``count`` events, when
the source ends its stream, or on SIGINT/SIGTERM; the source is then stopped
and released before it returns.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import anyio

from .bridges.state_store import MemoryStateStore
from .errors import ConfigurationError, DrasiHostError
from .loader import LIBRARY_SUFFIXES, LoadedPlugin, load_plugin
from .logs import CallbackContext
from .models import (
    BootstrapEvent,
    ElementReference,
    SourceEventWrapper,
    SourceRuntimeContext,
    SubscriptionSettings,
)

__all__ = ["EXIT_INTERRUPTED", "event_line", "event_record", "plugin_files", "run_tail"]

#: Exit status after SIGINT (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130

_SUMMARY_WIDTH = 60
_log = logging.getLogger("drasi_host.tail")


def plugin_files(path: Path) -> list[Path]:
    """``path`` itself, or the plugin libraries in the directory ``path``."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix in LIBRARY_SUFFIXES)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    return [path]


def _open_source_plugin(
    path: Path, kind: str, callbacks: CallbackContext
) -> tuple[LoadedPlugin, Any]:
    """The loaded library and its source factory of ``kind``."""
    files = plugin_files(path)
    if not files:
        raise ConfigurationError(f"{path}: no plugin libraries in this directory")
    seen: list[str] = []
    failures: list[str] = []
    for file in files:
        try:
            plugin = load_plugin(file, callbacks)
        except DrasiHostError as exc:
            if len(files) == 1:
                raise
            failures.append(f"{file.name}: {exc}")
            continue
        for factory in plugin.source_plugins:
            if factory.kind == kind:
                return plugin, factory
        seen.extend(f.kind for f in plugin.source_plugins)
        plugin.close()
    found = ", ".join(sorted(set(seen))) or "none"
    skipped = f"; {len(failures)} could not be loaded" if failures else ""
    raise ConfigurationError(
        f"{path}: no source factory of kind {kind!r} (source kinds found: {found}){skipped}"
    )


def _plain(value: Any) -> Any:
    """``value`` with datetimes as RFC 3339 text and element references as
    ``source_id/element_id``, for printing."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, ElementReference):
        return f"{value.source_id}/{value.element_id}"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _summary(properties: dict[str, Any]) -> str:
    text = ", ".join(f"{k}={_plain(v)!r}" for k, v in properties.items())
    if len(text) > _SUMMARY_WIDTH:
        text = text[: _SUMMARY_WIDTH - 1] + "…"
    return "{" + text + "}"


def event_line(event: SourceEventWrapper) -> str:
    """One readable line: op, label, id and a short property summary."""
    prefix = f"bootstrap #{event.sequence} " if isinstance(event, BootstrapEvent) else ""
    control = event.control
    if control is not None:
        return f"{prefix}control {control.kind} {_summary(control.data)}"
    change = event.change
    if change is None:
        size = "no payload" if event.payload is None else f"{len(event.payload)} bytes"
        detail = f"(opaque, {size})"
    else:
        detail = _summary(change.element.properties)
    return f"{prefix}{event.op.name.lower():6} {event.label} {event.entity_id} {detail}"


def event_record(event: SourceEventWrapper) -> dict[str, Any]:
    """The event as a JSON-ready dict."""
    record: dict[str, Any] = {
        "source_id": event.source_id,
        "timestamp_us": event.timestamp_us,
        "op": event.op.name.lower(),
        "label": event.label,
        "id": event.entity_id,
    }
    if isinstance(event, BootstrapEvent):
        record["bootstrap"] = True
        record["sequence"] = event.sequence
    control = event.control
    if control is not None:
        record["control"] = {"kind": control.kind, "data": _plain(control.data)}
    change = event.change
    if change is None:
        record["element"] = None
    else:
        element = change.element
        record["element"] = {
            "type": element.type,
            "source_id": element.reference.source_id,
            "id": element.reference.element_id,
            "labels": list(element.labels),
            "effective_from": element.effective_from,
            "properties": _plain(element.properties),
            "in_node": None if element.in_node is None else element.in_node.element_id,
            "out_node": None if element.out_node is None else element.out_node.element_id,
        }
    return record


def _writer(stream: TextIO, as_json: bool) -> Callable[[SourceEventWrapper], None]:
    def write(event: SourceEventWrapper) -> None:
        if as_json:
            text = json.dumps(event_record(event), default=str, ensure_ascii=False)
        else:
            text = event_line(event)
        stream.write(text + "\n")
        stream.flush()

    return write


async def _stream(
    source: Any,
    settings: SubscriptionSettings,
    instance_id: str,
    count: int | None,
    write: Callable[[SourceEventWrapper], None],
    on_ready: Callable[[], None],
) -> None:
    """Initialise, start and subscribe ``source``, then write its events."""
    await source.initialize(
        SourceRuntimeContext(instance_id, settings.source_id, state_store=MemoryStateStore())
    )
    await source.start()
    response = await source.subscribe(settings)
    on_ready()
    printed = 0
    try:
        receivers: list[Any] = [response.bootstrap_receiver, response.receiver]
        for receiver in receivers:
            if receiver is None or (count is not None and printed >= count):
                continue
            async for event in receiver:
                write(event)
                printed += 1
                if count is not None and printed >= count:
                    break
    finally:
        with anyio.CancelScope(shield=True):
            await response.aclose()


async def _tail(
    path: Path,
    kind: str,
    config: dict[str, Any],
    settings: SubscriptionSettings,
    count: int | None,
    write: Callable[[SourceEventWrapper], None],
    on_ready: Callable[[], None],
) -> int:
    callbacks = CallbackContext(instance_id="drasi-host-tail")
    plugin, factory = _open_source_plugin(path, kind, callbacks)
    interrupted = False
    failure: Exception | None = None
    try:
        source = await factory.create_source(settings.source_id, config)
        try:
            async with anyio.create_task_group() as tg:

                async def watch_signals() -> None:
                    nonlocal interrupted
                    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                        async for _ in signals:
                            interrupted = True
                            tg.cancel_scope.cancel()
                            return

                tg.start_soon(watch_signals)
                try:
                    await _stream(source, settings, callbacks.instance_id, count, write, on_ready)
                except Exception as exc:  # re-raised below as it is, not in a group
                    failure = exc
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await source.stop()
                except DrasiHostError as exc:  # already stopped or failed: go on
                    _log.debug("stopping the source: %s", exc)
                await source.aclose()
    finally:
        plugin.close()
    if failure is not None:
        raise failure
    return EXIT_INTERRUPTED if interrupted else 0


def run_tail(
    path: Path,
    kind: str,
    *,
    config: dict[str, Any] | None = None,
    source_id: str = "tail",
    query_id: str = "drasi-host-tail",
    nodes: Sequence[str] = (),
    relations: Sequence[str] = (),
    bootstrap: bool = False,
    count: int | None = None,
    as_json: bool = False,
    stream: TextIO | None = None,
    on_ready: Callable[[], None] = lambda: None,
) -> int:
    """Tail a source; returns the exit status (0, or 130 after SIGINT/SIGTERM).

    ``on_ready`` is called once the source runs and the query is subscribed."""
    if count is not None and count < 0:
        raise ConfigurationError(f"--count must be 0 or more, not {count}")
    settings = SubscriptionSettings(source_id, query_id, bootstrap, list(nodes), list(relations))
    write = _writer(stream or sys.stdout, as_json)
    return anyio.run(_tail, path, kind, dict(config or {}), settings, count, write, on_ready)
