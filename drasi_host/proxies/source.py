"""``SourceProxy``: a source instance created by a plugin (``SourceVtable``)."""

from __future__ import annotations

import json
from typing import Any

import attrs

from .. import _abi
from .._abi import NULL, Borrowed, ffi, lib
from ..errors import PluginCallError, PluginProtocolError
from ..models import DispatchMode, SourceRuntimeContext, SubscriptionSettings
from ._component import ComponentProxy
from .bootstrap import attach_bootstrap_provider
from .receivers import (
    DEFAULT_CAPACITY,
    DEFAULT_MAX_BYTES,
    BootstrapReceiverProxy,
    ChangeReceiverProxy,
)

__all__ = ["SourceProxy", "SubscriptionResponse"]


@attrs.define
class SubscriptionResponse:
    """What ``subscribe`` returns: the receivers of one query's subscription."""

    query_id: str
    source_id: str
    receiver: ChangeReceiverProxy
    bootstrap_receiver: BootstrapReceiverProxy | None = None

    async def aclose(self) -> None:
        await self.receiver.aclose()
        if self.bootstrap_receiver is not None:
            await self.bootstrap_receiver.aclose()


class SourceProxy(ComponentProxy):
    """A plugin source.  Blocking calls run in worker threads; ``aclose()``
    (or ``async with``) closes open receivers, then drops the source."""

    component_type = "source"
    _required = (*ComponentProxy._required, "dispatch_mode_fn", "subscribe_fn")

    @property
    def dispatch_mode(self) -> DispatchMode:
        self._check_open()
        return _abi.to_enum(
            DispatchMode, self._vt.dispatch_mode_fn(self._vt.state), f"{self.label}: dispatch_mode"
        )

    async def initialize(self, context: SourceRuntimeContext) -> None:
        await self._initialize(
            context.instance_id, context.source_id, context.state_store, context.identity_provider
        )

    async def subscribe(
        self,
        settings: SubscriptionSettings,
        *,
        capacity: int = DEFAULT_CAPACITY,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> SubscriptionResponse:
        """Subscribe a query; ``capacity`` (events) and ``max_bytes`` (routing
        hints + payloads) bound what each receiver queues before the plugin's
        push blocks (back-pressure)."""
        b = Borrowed()
        ctx = self.callback_context
        mark = ctx.mark() if ctx is not None else 0
        ptr = await self._call(
            self._vt.subscribe_fn,
            self._vt.state,
            b.str(settings.source_id),
            bool(settings.enable_bootstrap),
            b.str(settings.query_id),
            b.str(json.dumps(list(settings.nodes))),
            b.str(json.dumps(list(settings.relations))),
        )
        if ptr == NULL:
            raise PluginCallError(
                f"{self.label}: subscribe({settings.query_id!r}) failed",
                plugin_message=ctx.logged_since(mark) if ctx is not None else None,
                component=self.id,
            )
        resp = ffi.new("FfiSubscriptionResponse *", ptr[0])
        lib.free(ptr)
        receivers: list[Any] = []
        try:
            try:
                query_id = _abi.take_owned_str(
                    resp.query_id, f"{self.label}: subscription query_id"
                )
            finally:
                source_id = _abi.take_owned_str(
                    resp.source_id, f"{self.label}: subscription source_id"
                )
        except PluginProtocolError:
            self._drop_receivers(resp)
            raise
        if resp.receiver == NULL:
            self._drop_receivers(resp)
            raise PluginProtocolError(f"{self.label}: subscribe returned a NULL change receiver")
        change_vt = ffi.new("FfiChangeReceiver *", resp.receiver[0])
        lib.free(resp.receiver)
        boot_vt = None
        if resp.bootstrap_receiver != NULL:
            boot_vt = ffi.new("FfiBootstrapReceiver *", resp.bootstrap_receiver[0])
            lib.free(resp.bootstrap_receiver)
        receiver = ChangeReceiverProxy(
            change_vt, codec=self._codec, label=self.label, capacity=capacity, max_bytes=max_bytes
        )
        receivers.append(receiver)
        bootstrap_receiver = None
        if boot_vt is not None:
            bootstrap_receiver = BootstrapReceiverProxy(
                boot_vt,
                codec=self._codec,
                label=self.label,
                capacity=capacity,
                max_bytes=max_bytes,
            )
            receivers.append(bootstrap_receiver)
        for r in receivers:
            self._release_first(r.close_now)
        return SubscriptionResponse(query_id, source_id, receiver, bootstrap_receiver)

    @staticmethod
    def _drop_receivers(resp: Any) -> None:
        for field in ("receiver", "bootstrap_receiver"):
            ptr = getattr(resp, field)
            if ptr != NULL:
                if ptr.drop_fn != NULL:
                    ptr.drop_fn(ptr.state)
                lib.free(ptr)

    async def set_bootstrap_provider(self, provider: Any) -> None:
        """Give the plugin a bootstrap provider: any object with an async
        ``bootstrap(request, context, event_tx)`` (a Python provider, or a
        :class:`BootstrapProviderProxy` from another plugin)."""
        self._check_open()
        await attach_bootstrap_provider(self._vt, provider, codec=self._codec, label=self.label)
