"""The factory proxies: one per factory vtable a plugin registers.

A factory's ``kind``, ``config_version`` and ``config_schema_name`` are read
once at load (strict UTF-8); ``config_schema_json()`` asks again each time and
frees the plugin's string.  The ``create_*`` calls run in a worker thread;
when a plugin refuses (NULL), the :class:`PluginCallError` carries what the
plugin logged during the call.  ``release()`` runs the factory's ``drop_fn``
exactly once (the owning :class:`LoadedPlugin` calls it).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import anyio

from .. import _abi
from .._abi import NULL, Borrowed, ffi, lib
from ..errors import DrasiHostError, PluginCallError, PluginProtocolError
from ..logs import CallbackContext, _Route
from ..payloads import PayloadCodec

__all__ = ["BootstrapPluginProxy", "ReactionPluginProxy", "SourcePluginProxy"]


def _config_json(config: Mapping[str, Any] | str | None) -> str:
    if config is None:
        return "{}"
    if isinstance(config, str):
        json.loads(config)  # reject malformed text here, not in the plugin
        return config
    return json.dumps(config, separators=(",", ":"))


class _Factory:
    component_type: ClassVar[str]
    _create_field: ClassVar[str]
    _instance_ctype: ClassVar[str]

    def __init__(
        self,
        vt: Any,
        plugin_label: str,
        codec: PayloadCodec | None,
        media_type: str | None,
        callbacks: CallbackContext,
        route: _Route,
    ) -> None:
        self._vt = vt
        self._codec = codec
        self.payload_format = media_type
        self._callbacks = callbacks
        self._route = route
        self._lock = threading.Lock()
        self._released = False
        self.plugin_label = plugin_label
        what = f"{plugin_label} {self.component_type} factory"
        required = (
            "kind_fn",
            "config_version_fn",
            "config_schema_json_fn",
            "config_schema_name_fn",
            self._create_field,
        )
        _abi.require_functions(vt, required, what)
        self.kind: str = _abi.read_str(vt.kind_fn(vt.state), f"{what} kind")
        what = f"{plugin_label} {self.component_type} factory {self.kind!r}"
        self.config_version: str = _abi.read_str(
            vt.config_version_fn(vt.state), f"{what} config_version"
        )
        self.config_schema_name: str = _abi.read_str(
            vt.config_schema_name_fn(vt.state), f"{what} config_schema_name"
        )
        self.label = what

    @staticmethod
    def drop_vtable(vt: Any) -> None:
        if vt.drop_fn != NULL:
            vt.drop_fn(vt.state)

    def release(self) -> None:
        """Run the factory's ``drop_fn`` (once; later calls do nothing)."""
        with self._lock:
            if self._released:
                return
            self._released = True
        self.drop_vtable(self._vt)

    @property
    def released(self) -> bool:
        return self._released

    def _check_open(self) -> None:
        if self._released:
            raise DrasiHostError(f"{self.label} is closed (its plugin was closed)")

    def config_schema_json(self) -> dict[str, Any]:
        """The factory's configuration schema, parsed."""
        self._check_open()
        text = _abi.take_owned_str(
            self._vt.config_schema_json_fn(self._vt.state), f"{self.label} config schema"
        )
        try:
            schema = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PluginProtocolError(
                f"{self.label}: config schema is not valid JSON: {exc}"
            ) from None
        if not isinstance(schema, dict):
            raise PluginProtocolError(
                f"{self.label}: config schema is a JSON {type(schema).__name__}, not an object"
            )
        return schema

    async def _create(self, what: str, *args: Any) -> Any:
        """Call the factory in a worker thread; the instance vtable, copied
        out of the plugin's heap block (which is freed)."""
        self._check_open()
        mark = self._route.mark()
        ptr = await anyio.to_thread.run_sync(
            getattr(self._vt, self._create_field), self._vt.state, *args
        )
        if ptr == NULL:
            raise PluginCallError(
                f"{self.label}: {what} refused by the plugin",
                plugin_message=self._route.logged_since(mark),
            )
        vt = ffi.new(f"{self._instance_ctype} *", ptr[0])
        lib.free(ptr)
        return vt

    def _proxy_options(self) -> dict[str, Any]:
        """What every instance proxy created by this factory is told."""
        return {
            "plugin_label": self.plugin_label,
            "codec": self._codec,
            "media_type": self.payload_format,
            "callbacks": self._callbacks,
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} kind={self.kind!r} version={self.config_version!r}>"


class SourcePluginProxy(_Factory):
    """A source factory (``SourcePluginVtable``)."""

    component_type = "source"
    _create_field = "create_source_fn"
    _instance_ctype = "SourceVtable"

    async def create_source(
        self, id: str, config: Mapping[str, Any] | str | None = None, auto_start: bool = True
    ) -> SourceProxy:
        b = Borrowed()
        vt = await self._create(
            f"create_source({id!r})", b.str(id), b.str(_config_json(config)), auto_start
        )
        return SourceProxy(vt, **self._proxy_options())


class ReactionPluginProxy(_Factory):
    """A reaction factory (``ReactionPluginVtable``)."""

    component_type = "reaction"
    _create_field = "create_reaction_fn"
    _instance_ctype = "ReactionVtable"

    async def create_reaction(
        self,
        id: str,
        query_ids: Sequence[str],
        config: Mapping[str, Any] | str | None = None,
        auto_start: bool = True,
    ) -> ReactionProxy:
        b = Borrowed()
        vt = await self._create(
            f"create_reaction({id!r})",
            b.str(id),
            b.str(json.dumps(list(query_ids))),
            b.str(_config_json(config)),
            auto_start,
        )
        return ReactionProxy(vt, **self._proxy_options())


class BootstrapPluginProxy(_Factory):
    """A bootstrap provider factory (``BootstrapPluginVtable``)."""

    component_type = "bootstrap"
    _create_field = "create_bootstrap_provider_fn"
    _instance_ctype = "BootstrapProviderVtable"

    async def create_bootstrap_provider(
        self,
        config: Mapping[str, Any] | str | None = None,
        source_config: Mapping[str, Any] | str | None = None,
    ) -> BootstrapProviderProxy:
        b = Borrowed()
        vt = await self._create(
            "create_bootstrap_provider",
            b.str(_config_json(config)),
            b.str(_config_json(source_config)),
        )
        return BootstrapProviderProxy(vt, **self._proxy_options(), log_route=self._route)


from .bootstrap import BootstrapProviderProxy  # noqa: E402
from .reaction import ReactionProxy  # noqa: E402
from .source import SourceProxy  # noqa: E402
