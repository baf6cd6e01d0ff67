"""Structural types (``typing.Protocol``) the proxies satisfy and a host can
implement in pure Python.  ``StateStoreProvider`` and ``IdentityProvider``
live with their bridges and are re-exported from :mod:`drasi_host`; the host
services of 0.13 plugins are :class:`ConfigResolver` and
:class:`SnapshotFetcher`."""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import anyio.abc

from .models import (
    BootstrapContext,
    BootstrapEvent,
    BootstrapRequest,
    ComponentStatus,
    QueryResult,
    ReactionRuntimeContext,
    SourceRuntimeContext,
    SubscriptionSettings,
)

__all__ = [
    "BootstrapPluginDescriptor",
    "BootstrapProvider",
    "ConfigResolver",
    "Reaction",
    "ReactionPluginDescriptor",
    "SnapshotFetcher",
    "Source",
    "SourcePluginDescriptor",
]


class ConfigResolver(Protocol):
    """Resolves the ``Secret`` configuration values of 0.13 plugins
    (``CallbackContext(config_resolver=...)``): ``resolve_secret(name)``
    returns the secret, as a plain method (called on the plugin's thread) or
    a coroutine method (run on the host's event loop).  Raising makes the
    plugin's lookup fail with the exception's text.  A
    :class:`~drasi_host.proxies.services.SecretStoreProxy` qualifies."""

    def resolve_secret(self, name: str) -> str | Awaitable[str]: ...


class SnapshotFetcher(Protocol):
    """Gives 0.13 reactions the current rows of a query
    (``ReactionRuntimeContext(snapshot_fetcher=...)``):
    ``fetch_snapshot(query_id)`` returns the rows as mappings (JSON
    objects), as a plain method (called on the plugin's thread), a coroutine
    method (run on the host's event loop) or an async generator."""

    def fetch_snapshot(
        self, query_id: str
    ) -> (
        Iterable[Mapping[str, Any]]
        | Awaitable[Iterable[Mapping[str, Any]]]
        | AsyncIterable[Mapping[str, Any]]
    ): ...


class BootstrapProvider(Protocol):
    async def bootstrap(
        self,
        request: BootstrapRequest,
        context: BootstrapContext,
        event_tx: anyio.abc.ObjectSendStream[BootstrapEvent],
    ) -> int: ...


class _Component(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def type_name(self) -> str: ...
    @property
    def auto_start(self) -> bool: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def status(self) -> ComponentStatus: ...
    async def deprovision(self) -> None: ...
    async def aclose(self) -> None: ...


class Source(_Component, Protocol):
    async def initialize(self, context: SourceRuntimeContext) -> None: ...
    async def subscribe(self, settings: SubscriptionSettings) -> Any: ...
    async def set_bootstrap_provider(self, provider: BootstrapProvider) -> None: ...


class Reaction(_Component, Protocol):
    @property
    def query_ids(self) -> Sequence[str]: ...
    async def initialize(self, context: ReactionRuntimeContext) -> None: ...
    async def enqueue_query_result(self, result: QueryResult) -> int | None: ...


class _Descriptor(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def config_version(self) -> str: ...
    @property
    def config_schema_name(self) -> str: ...
    def config_schema_json(self) -> dict[str, Any]: ...


class SourcePluginDescriptor(_Descriptor, Protocol):
    async def create_source(
        self, id: str, config: Mapping[str, Any] | str | None = ..., auto_start: bool = ...
    ) -> Source: ...


class ReactionPluginDescriptor(_Descriptor, Protocol):
    async def create_reaction(
        self,
        id: str,
        query_ids: Sequence[str],
        config: Mapping[str, Any] | str | None = ...,
        auto_start: bool = ...,
    ) -> Reaction: ...


class BootstrapPluginDescriptor(_Descriptor, Protocol):
    async def create_bootstrap_provider(
        self,
        config: Mapping[str, Any] | str | None = ...,
        source_config: Mapping[str, Any] | str | None = ...,
    ) -> BootstrapProvider: ...
