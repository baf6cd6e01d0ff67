"""The factory proxies: one per factory vtable a plugin registers.

A factory's ``kind``, ``config_version`` and ``config_schema_name`` are read
once at load (strict UTF-8); ``config_schema_json()`` asks again each time and
frees the plugin's string.  The ``create_*`` calls check their arguments
(TypeError, :class:`ConfigurationError`) before the plugin sees anything,
then run on a call thread; when a plugin refuses (NULL), the
:class:`PluginCallError` carries what the plugin logged during the call.
Each factory is a :class:`~drasi_host._native.NativeResource` owned by its
:class:`~drasi_host.loader.LoadedPlugin`: closing the plugin closes it, and
its ``drop_fn`` runs once no call is in flight.

Factories of both ABI generations use these classes (``abi_version`` says
which): the factory layout is the same in 0.4 and 0.13, so describing and
releasing a factory is too.  What differs goes through the factory's
:class:`~drasi_host.proxies._generation.Generation`, chosen once and handed
to every instance it creates: a 0.13 ``create_*`` returns an
``FfiCreateResult`` whose error text becomes the ``plugin_message`` of the
:class:`PluginCallError` (with what the plugin logged during the call).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from .. import _abi
from .._native import NativeResource, drop_vtable
from ..errors import ConfigurationError, DrasiHostError, PluginCallError, PluginProtocolError
from ..logs import CallbackContext, _Route
from ..payloads import PayloadCodec
from ._generation import Generation, generation
from .bootstrap import BootstrapProviderProxy
from .reaction import ReactionProxy
from .services import (
    IdentityProviderProxy,
    SecretStoreProxy,
    checked,
    create_bare,
    open_service,
)
from .source import SourceProxy

__all__ = [
    "BootstrapPluginProxy",
    "IdentityProviderPluginProxy",
    "ReactionPluginProxy",
    "SecretStorePluginProxy",
    "SourcePluginProxy",
]

_P = TypeVar("_P", SourceProxy, ReactionProxy, BootstrapProviderProxy)


def config_json(
    config: Mapping[str, Any] | str | None,
    what: str,
    *,
    plugin: str | None = None,
    component_id: str | None = None,
) -> str:
    """The JSON text of a component configuration: a mapping, JSON text
    holding an object, or None (``{}``); anything else raises
    :class:`ConfigurationError` naming ``what``."""
    if config is None:
        return "{}"
    if isinstance(config, str):
        try:
            value = json.loads(config)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"{what}: the configuration is not valid JSON: {exc}",
                plugin=plugin,
                component_id=component_id,
            ) from exc
        if not isinstance(value, dict):
            raise ConfigurationError(
                f"{what}: the configuration is a JSON {type(value).__name__}, not an object",
                plugin=plugin,
                component_id=component_id,
            )
        return config
    if not isinstance(config, Mapping):
        raise ConfigurationError(
            f"{what}: the configuration must be a mapping, JSON text or None, "
            f"not {type(config).__name__}",
            plugin=plugin,
            component_id=component_id,
        )
    try:
        return json.dumps(dict(config), separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"{what}: the configuration is not JSON-serialisable: {exc}",
            plugin=plugin,
            component_id=component_id,
        ) from exc


class _Factory(NativeResource):
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
        *,
        abi_version: str = "0.4",
    ) -> None:
        # Owned by its LoadedPlugin, whose finalizer covers it.
        super().__init__(f"{plugin_label} {self.component_type} factory", finalize=False)
        self._vt = vt
        self._life.own(lambda: drop_vtable(vt))
        self._codec = codec
        self.payload_format = media_type
        self._callbacks = callbacks
        self._route = route
        self.plugin_label = plugin_label
        #: The plugin library's file name (for error attributes).
        self.plugin = plugin_label
        #: The ABI generation of the plugin: ``"0.4"`` or ``"0.13"``.
        self.abi_version = abi_version
        self._gen: Generation = generation(abi_version)

    def _describe(self) -> None:
        """Read kind, config version and schema name (the loader releases the
        factory when this fails)."""
        vt = self._vt
        what = self.label
        try:
            required = (
                "kind_fn",
                "config_version_fn",
                "config_schema_json_fn",
                "config_schema_name_fn",
                self._create_field,
            )
            _abi.require_functions(vt, required, what)
            with self._life.entered():
                self.kind: str = _abi.read_str(vt.kind_fn(vt.state), f"{what} kind")
                what = f"{self.plugin_label} {self.component_type} factory {self.kind!r}"
                self.config_version: str = _abi.read_str(
                    vt.config_version_fn(vt.state), f"{what} config_version"
                )
                self.config_schema_name: str = _abi.read_str(
                    vt.config_schema_name_fn(vt.state), f"{what} config_schema_name"
                )
        except DrasiHostError as exc:
            if exc.plugin is None:
                exc.plugin = self.plugin
            raise
        self.label = what

    @property
    def released(self) -> bool:
        """Whether the factory's ``drop_fn`` has run."""
        return self._life.released

    def config_schema_json(self) -> dict[str, Any]:
        """The factory's configuration schema, parsed."""
        with self._life.entered():
            raw = self._vt.config_schema_json_fn(self._vt.state)
        try:
            text = _abi.take_owned_str(raw, f"{self.label} config schema")
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
        except DrasiHostError as exc:
            if exc.plugin is None:
                exc.plugin = self.plugin
            raise
        return schema

    def _config(self, config: Mapping[str, Any] | str | None, component_id: str | None) -> str:
        what = f"{self.label}: " + (
            f"{self.component_type} {component_id!r}"
            if component_id is not None
            else self.component_type
        )
        return config_json(config, what, plugin=self.plugin, component_id=component_id)

    async def _create(self, what: str, component_id: str | None, *args: Any) -> Any:
        """Call the factory on a call thread; the instance vtable, copied
        out of the plugin's heap block (which is freed).

        A refusal is a :class:`PluginCallError` whose ``plugin_message`` is
        the plugin's error text (0.13), then what it logged during the call,
        one per line; ``code`` is the 0.13 error code."""
        self._check_open()
        mark = self._route.mark()
        raw = await self._call(getattr(self._vt, self._create_field), self._vt.state, *args)
        created = self._gen.created(raw)
        if not created.ok:
            logged = self._route.logged_since(mark)
            told = "\n".join(t for t in (created.message, logged) if t) or None
            raise PluginCallError(
                f"{self.label}: {what} refused by the plugin",
                plugin_message=told,
                code=created.code,
                plugin=self.plugin,
                component_id=component_id,
            )
        return self._gen.copy_block(created.ptr, self._instance_ctype)

    async def _open(self, proxy: _P) -> _P:
        """Finish a new instance proxy (it owns its vtable already): describe
        it, or release it and raise."""
        return await checked(proxy, proxy._describe)

    def _proxy_options(self) -> dict[str, Any]:
        """What every instance proxy created by this factory is told."""
        return {
            "plugin_label": self.plugin_label,
            "codec": self._codec,
            "media_type": self.payload_format,
            "callbacks": self._callbacks,
            "generation": self._gen,
        }

    def __repr__(self) -> str:
        kind = getattr(self, "kind", "?")
        version = getattr(self, "config_version", "?")
        return f"<{type(self).__name__} kind={kind!r} version={version!r}>"


class SourcePluginProxy(_Factory):
    """A source factory (``SourcePluginVtable``)."""

    component_type = "source"
    _create_field = "create_source_fn"
    _instance_ctype = "SourceVtable"

    async def create_source(
        self, id: str, config: Mapping[str, Any] | str | None = None, auto_start: bool = True
    ) -> SourceProxy:
        if not isinstance(id, str):
            raise TypeError(f"{self.label}: a source id is a str, not {type(id).__name__}")
        text = self._config(config, id)
        b = self._gen.borrowed()
        vt = await self._create(
            f"create_source({id!r})", id, b.str(id), b.str(text), bool(auto_start)
        )
        return await self._open(SourceProxy(vt, **self._proxy_options()))


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
        if not isinstance(id, str):
            raise TypeError(f"{self.label}: a reaction id is a str, not {type(id).__name__}")
        if isinstance(query_ids, (str, bytes)) or not isinstance(query_ids, Sequence):
            raise TypeError(
                f"{self.label}: create_reaction({id!r}) takes query_ids as a list of str, "
                f"not {type(query_ids).__name__} {query_ids!r}"
            )
        ids = list(query_ids)
        for qid in ids:
            if not isinstance(qid, str):
                raise TypeError(
                    f"{self.label}: create_reaction({id!r}): query id {qid!r} is "
                    f"{type(qid).__name__}, not str"
                )
        text = self._config(config, id)
        b = self._gen.borrowed()
        vt = await self._create(
            f"create_reaction({id!r})",
            id,
            b.str(id),
            b.str(json.dumps(ids, ensure_ascii=False)),
            b.str(text),
            bool(auto_start),
        )
        return await self._open(ReactionProxy(vt, **self._proxy_options()))


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
        text = self._config(config, None)
        source_text = config_json(
            source_config, f"{self.label}: source configuration", plugin=self.plugin
        )
        b = self._gen.borrowed()
        vt = await self._create("create_bootstrap_provider", None, b.str(text), b.str(source_text))
        return await self._open(
            BootstrapProviderProxy(vt, **self._proxy_options(), log_route=self._route)
        )


class IdentityProviderPluginProxy(_Factory):
    """An identity-provider factory (``IdentityProviderPluginVtable``, FFI
    0.13 plugins only): ``kind``, ``config_version``, ``config_schema_name``,
    ``config_schema_json()`` and ``create_identity_provider(config)``."""

    component_type = "identity provider"
    _create_field = "create_identity_provider_fn"
    _instance_ctype = "IdentityProviderVtable"

    async def create_identity_provider(
        self, config: Mapping[str, Any] | str | None = None
    ) -> IdentityProviderProxy:
        """A new identity provider of the plugin; :class:`PluginCallError`
        with what the plugin logged when it refuses (NULL)."""
        text = self._config(config, None)
        vt = await create_bare(self, "create_identity_provider", self._instance_ctype, text)
        return await open_service(IdentityProviderProxy, vt, self)


class SecretStorePluginProxy(_Factory):
    """A secret-store factory (``SecretStorePluginVtable``, FFI 0.13 plugins
    only): ``kind``, ``config_version``, ``config_schema_name``,
    ``config_schema_json()`` and ``create_secret_store(config)``."""

    component_type = "secret store"
    _create_field = "create_secret_store_fn"
    _instance_ctype = "SecretStoreProviderVtable"

    async def create_secret_store(
        self, config: Mapping[str, Any] | str | None = None
    ) -> SecretStoreProxy:
        """A new secret store of the plugin; :class:`PluginCallError` with
        what the plugin logged when it refuses (NULL)."""
        text = self._config(config, None)
        vt = await create_bare(self, "create_secret_store", self._instance_ctype, text)
        return await open_service(SecretStoreProxy, vt, self)
