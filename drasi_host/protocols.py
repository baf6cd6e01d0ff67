"""Structural types (``typing.Protocol``) the proxies satisfy and a host can
implement in pure Python.  ``StateStoreProvider`` and ``IdentityProvider``
live with their bridges and are re-exported from :mod:`drasi_host`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    "Reaction",
    "ReactionPluginDescriptor",
    "Source",
    "SourcePluginDescriptor",
]


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
