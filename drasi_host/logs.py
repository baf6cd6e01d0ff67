"""Where plugin logs and lifecycle events go.

:class:`CallbackContext` is what a host hands the loader: every plugin's
global log and lifecycle callbacks are wired to it.  Each component instance
gets an :class:`InstanceCallbackContext` at ``initialize`` that routes its
logs by ``(instance_id, component_id)`` and its lifecycle events into the
component's history and status stream.  Both are reachable from C only
through keys in :data:`drasi_host._callbacks.handles`.

Every plugin log is also emitted on the standard :mod:`logging` module as a
record named ``drasi.plugin.<component_id or plugin_id>``: handled by that
logger when the application has created it, else by ``drasi.plugin`` (see
:func:`emit_plugin_record`).  Histories are bounded per component and in the
number of components, so a plugin that invents ids cannot grow memory.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs

from . import _abi
from ._callbacks import handles
from .channels import ThreadSafeQueue
from .models import ComponentEvent, ComponentStatus, LogMessage

__all__ = [
    "CallbackContext",
    "ComponentEventHistory",
    "InstanceCallbackContext",
    "LogRegistry",
]

DEFAULT_HISTORY = 1000
#: How many components (keys) a history keeps; the least recently written is
#: forgotten first.  Plugins may invent any number of component ids.
DEFAULT_MAX_COMPONENTS = 4096

#: Every plugin record goes through this logger or a registered descendant.
PLUGIN_LOGGER = "drasi.plugin"
_plugin_root = logging.getLogger(PLUGIN_LOGGER)
# Plugin logs reach the application's handlers; without any, they are not
# printed on their own (a refusal already shows in its exception).
_plugin_root.addHandler(logging.NullHandler())


def _plugin_logger(name: str) -> logging.Logger:
    """The logger that handles records named ``name`` (``drasi.plugin.<x>``).

    A logger of that name that already exists (an application asked for it,
    to give it a level or handlers) is used as it is.  Otherwise the record
    is handled by :data:`PLUGIN_LOGGER` under its own name: nothing is
    created per component id, so a plugin inventing ids cannot grow the
    ``logging`` module's registry of loggers without bound.
    """
    logger = logging.Logger.manager.loggerDict.get(name)
    return logger if isinstance(logger, logging.Logger) else _plugin_root


def emit_plugin_record(name: str, level: int, message: str, extra: dict[str, Any]) -> None:
    """Emit one plugin line as a :class:`logging.LogRecord` named ``name``."""
    logger = _plugin_logger(name)
    if logger.isEnabledFor(level):
        record = logger.makeRecord(name, level, "(plugin)", 0, "%s", (message,), None, extra=extra)
        logger.handle(record)


class _Fanout:
    """Bounded per-key histories plus live subscribers, safe from any thread.

    At most ``max_keys`` histories are kept; adding to a new key beyond that
    forgets the least recently written one."""

    def __init__(self, max_per_key: int, max_keys: int = DEFAULT_MAX_COMPONENTS) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, not {max_keys}")
        self._lock = threading.Lock()
        self._max = max_per_key
        self._max_keys = max_keys
        self._history: collections.OrderedDict[Any, collections.deque[Any]] = (
            collections.OrderedDict()
        )
        self._subscribers: dict[Any, list[ThreadSafeQueue[Any]]] = {}

    def add(self, key: Any, item: Any) -> None:
        with self._lock:
            history = self._history.get(key)
            if history is None:
                history = self._history[key] = collections.deque(maxlen=self._max)
                while len(self._history) > self._max_keys:
                    self._history.popitem(last=False)
            else:
                self._history.move_to_end(key)
            history.append(item)
            subscribers = list(self._subscribers.get(key, ()))
        for queue in subscribers:
            queue.put(item)

    def get(self, key: Any) -> list[Any]:
        with self._lock:
            return list(self._history.get(key, ()))

    def keys(self) -> list[Any]:
        with self._lock:
            return list(self._history)

    @asynccontextmanager
    async def subscribe(self, key: Any, maxlen: int) -> AsyncIterator[ThreadSafeQueue[Any]]:
        queue: ThreadSafeQueue[Any] = ThreadSafeQueue(maxlen)
        with self._lock:
            self._subscribers.setdefault(key, []).append(queue)
        try:
            yield queue
        finally:
            with self._lock:
                subs = self._subscribers.get(key, [])
                if queue in subs:
                    subs.remove(queue)
                if not subs:
                    self._subscribers.pop(key, None)
            queue.close()


class LogRegistry:
    """Bounded history of plugin log messages per ``(instance_id, component_id)``,
    for at most ``max_components`` components (the least recently logging one
    is forgotten first)."""

    def __init__(
        self,
        max_per_component: int = DEFAULT_HISTORY,
        *,
        max_components: int = DEFAULT_MAX_COMPONENTS,
    ) -> None:
        self._fanout = _Fanout(max_per_component, max_components)

    def add(self, message: LogMessage) -> None:
        self._fanout.add((message.instance_id, message.component_id), message)

    def get(self, instance_id: str, component_id: str) -> list[LogMessage]:
        return self._fanout.get((instance_id, component_id))

    def components(self) -> list[tuple[str, str]]:
        """Every ``(instance_id, component_id)`` that has logged."""
        return self._fanout.keys()

    async def subscribe(
        self, instance_id: str, component_id: str, *, maxlen: int = 10_000
    ) -> AsyncIterator[LogMessage]:
        """New messages for one component, as they arrive (runs until cancelled)."""
        async with self._fanout.subscribe((instance_id, component_id), maxlen) as queue:
            async for message in queue:
                yield message


class ComponentEventHistory:
    """Bounded history of :class:`ComponentEvent` per component, for at most
    ``max_components`` components (the least recently updated one is
    forgotten first)."""

    def __init__(
        self,
        max_per_component: int = DEFAULT_HISTORY,
        *,
        max_components: int = DEFAULT_MAX_COMPONENTS,
    ) -> None:
        self._fanout = _Fanout(max_per_component, max_components)

    def add(self, event: ComponentEvent) -> None:
        self._fanout.add(event.component_id, event)

    def get(self, component_id: str) -> list[ComponentEvent]:
        return self._fanout.get(component_id)

    def latest_status(self, component_id: str) -> ComponentStatus | None:
        events = self.get(component_id)
        return events[-1].status if events else None

    def components(self) -> list[str]:
        return self._fanout.keys()

    async def subscribe(
        self, component_id: str, *, maxlen: int = 10_000
    ) -> AsyncIterator[ComponentEvent]:
        """New events for one component, as they arrive (runs until cancelled)."""
        async with self._fanout.subscribe(component_id, maxlen) as queue:
            async for event in queue:
                yield event


class CallbackContext:
    """Receives the global log and lifecycle callbacks of loaded plugins.

    ``config_resolver`` (a :class:`~drasi_host.protocols.ConfigResolver`,
    e.g. a ``SecretStoreProxy``) answers the ``Secret`` configuration values
    of every 0.13 plugin loaded with this context; it is read at each
    request, so assigning the attribute later takes effect at once.  Without
    one, those lookups fail with a clear error in the plugin's log.
    """

    def __init__(
        self,
        instance_id: str,
        log_registry: LogRegistry | None = None,
        source_event_history: ComponentEventHistory | None = None,
        reaction_event_history: ComponentEventHistory | None = None,
        config_resolver: Any = None,
    ) -> None:
        self.instance_id = instance_id
        self.config_resolver = config_resolver
        self.log_registry = log_registry if log_registry is not None else LogRegistry()
        self.source_event_history = (
            source_event_history if source_event_history is not None else ComponentEventHistory()
        )
        self.reaction_event_history = (
            reaction_event_history
            if reaction_event_history is not None
            else ComponentEventHistory()
        )

    def history_for(self, component_type: str) -> ComponentEventHistory:
        return (
            self.reaction_event_history
            if component_type == "reaction"
            else self.source_event_history
        )

    # Called from plugin threads through _callbacks (the ctx key names a _Route).
    def record_log(self, message: LogMessage) -> None:
        self.log_registry.add(message)
        emit_plugin_record(
            f"{PLUGIN_LOGGER}.{message.component_id or message.plugin_id or 'unknown'}",
            message.level.to_logging(),
            message.message,
            {
                "drasi_instance_id": message.instance_id,
                "drasi_component_id": message.component_id,
                "drasi_plugin_id": message.plugin_id,
                "drasi_target": message.target,
            },
        )

    def record_event(self, event: ComponentEvent, component_type: str) -> None:
        self.history_for(component_type).add(event)


class _Route:
    """What a context key stands for: logs and lifecycle events of one plugin
    (global) or one component instance, with defaults for empty fields."""

    def __init__(
        self,
        sink: CallbackContext,
        *,
        instance_id: str = "",
        component_id: str = "",
        component_type: str = "",
        plugin_id: str = "",
    ) -> None:
        self.sink = sink
        self.instance_id = instance_id
        self.component_id = component_id
        self.component_type = component_type
        self.plugin_id = plugin_id
        self.status_queues: list[ThreadSafeQueue[ComponentEvent]] = []
        self._recent: collections.deque[tuple[int, LogMessage]] = collections.deque(maxlen=64)
        self._seq = 0
        self.key = handles.add(self)

    def mark(self) -> int:
        """A position in this route's log; see :meth:`messages_since`."""
        return self._seq

    def messages_since(self, mark: int) -> list[LogMessage]:
        """Recent messages logged through this route after ``mark``."""
        return [m for seq, m in list(self._recent) if seq > mark]

    def logged_since(self, mark: int) -> str | None:
        """What was logged after ``mark``, joined (for error messages), or None."""
        return "; ".join(m.message for m in self.messages_since(mark)) or None

    def on_ffi_log(self, entry: Any) -> None:
        message = _abi.read_log_entry(entry)
        instance_id = message.instance_id or self.instance_id or self.sink.instance_id
        component_id = message.component_id or self.component_id
        plugin_id = message.plugin_id or self.plugin_id
        if (instance_id, component_id, plugin_id) != (
            message.instance_id,
            message.component_id,
            message.plugin_id,
        ):
            message = attrs.evolve(
                message, instance_id=instance_id, component_id=component_id, plugin_id=plugin_id
            )
        self._seq += 1
        self._recent.append((self._seq, message))
        self.sink.record_log(message)

    def on_ffi_lifecycle(self, event: Any) -> None:
        component_event, component_type = _abi.read_lifecycle_event(event)
        if not component_event.component_id and self.component_id:
            component_event = attrs.evolve(component_event, component_id=self.component_id)
        self.sink.record_event(component_event, component_type or self.component_type)
        for queue in list(self.status_queues):
            queue.put(component_event)

    def close(self) -> None:
        handles.remove(self.key)
        for queue in self.status_queues:
            queue.close()


class InstanceCallbackContext:
    """Per-instance routing handed to a plugin at ``initialize``: logs keyed by
    instance and component, lifecycle events into the component's history and
    into :meth:`status_stream` subscribers."""

    def __init__(
        self, sink: CallbackContext, instance_id: str, component_id: str, component_type: str
    ) -> None:
        self._route = _Route(
            sink,
            instance_id=instance_id,
            component_id=component_id,
            component_type=component_type,
        )
        self.instance_id = instance_id
        self.component_id = component_id
        self.component_type = component_type
        self.sink = sink

    @property
    def key(self) -> int:
        return self._route.key

    def mark(self) -> int:
        """A position in this component's log (see :meth:`logged_since`)."""
        return self._route.mark()

    def logged_since(self, mark: int) -> str | None:
        """What the component logged after ``mark``, joined, or None."""
        return self._route.logged_since(mark)

    def logs(self) -> list[LogMessage]:
        return self.sink.log_registry.get(self.instance_id, self.component_id)

    def events(self) -> list[ComponentEvent]:
        return self.sink.history_for(self.component_type).get(self.component_id)

    async def status_stream(self, *, maxlen: int = 1000) -> AsyncIterator[ComponentEvent]:
        """Lifecycle events of this component as they arrive (until closed)."""
        queue: ThreadSafeQueue[ComponentEvent] = ThreadSafeQueue(maxlen)
        self._route.status_queues.append(queue)
        try:
            async for event in queue:
                yield event
        finally:
            if queue in self._route.status_queues:
                self._route.status_queues.remove(queue)

    def close(self) -> None:
        """Forget the context: later plugin calls naming it are dropped."""
        self._route.close()


def now_us() -> int:
    return time.time_ns() // 1000
