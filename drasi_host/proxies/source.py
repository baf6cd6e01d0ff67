"""``SourceProxy``: a source instance created by a plugin (``SourceVtable``)."""

from __future__ import annotations

import functools
import logging
from typing import Any

import anyio
import attrs

from .. import _abi
from .._abi import NULL
from .._native import Lifetime, drop_vtable, on_drop_thread, run_blocking
from ..errors import DrasiHostError, PluginCallError, PluginProtocolError
from ..models import DispatchMode, SourceRuntimeContext, SubscriptionSettings
from ._component import ComponentProxy
from ._generation import GEN_04
from .bootstrap import (
    BootstrapProviderProxy,
    build_host_provider_vtable013,
    build_provider_vtable,
    build_provider_vtable013,
    check_same_abi,
    discard_provider_vtable,
    discard_provider_vtable013,
)
from .receivers import (
    DEFAULT_CAPACITY,
    DEFAULT_MAX_BYTES,
    BootstrapReceiverProxy,
    ChangeReceiverProxy,
)

__all__ = ["SourceProxy", "SubscriptionResponse"]

_log = logging.getLogger("drasi_host.source")


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
    """A plugin source.  Blocking calls run on call threads; ``aclose()``
    (or ``async with``) closes open receivers, then drops the source."""

    component_type = "source"
    _required = (*ComponentProxy._required, "dispatch_mode_fn", "subscribe_fn")

    # ---- what FFI 0.13 sources add (None for 0.4 sources) ----------------------------

    def describe_schema(self) -> dict[str, Any] | None:
        """The schema the source describes (FFI 0.13 ``describe_schema_fn``:
        ``{"nodes": [...], "relations": [...]}``), or None when it describes
        none (JSON ``null``), for a 0.4 source, or without the function.
        :class:`PluginProtocolError` for text that is neither."""
        fn = self._optional("describe_schema_fn")
        if fn is None:
            return None
        with self._life.entered():
            raw = fn(self._vt.state)
        what = f"{self.label} describe_schema"
        try:
            value = _abi.take_json(raw, what)
            if value is not None and not isinstance(value, dict):
                raise PluginProtocolError(
                    f"{what} is a JSON {type(value).__name__}, not an object or null"
                )
        except DrasiHostError as exc:
            self._attributed(exc)
            raise
        return value

    @property
    def supports_replay(self) -> bool | None:
        """Whether the source can resume from a stored position (FFI 0.13
        ``supports_replay_fn``); None for a 0.4 source or without the function."""
        return self._optional_bool("supports_replay_fn", "supports_replay")

    @property
    def dispatch_mode(self) -> DispatchMode:
        with self._life.entered():
            raw = self._vt.dispatch_mode_fn(self._vt.state)
        try:
            return _abi.to_enum(DispatchMode, raw, f"{self.label}: dispatch_mode")
        except DrasiHostError as exc:
            self._attributed(exc)
            raise

    async def initialize(self, context: SourceRuntimeContext) -> None:
        """Hand the plugin its runtime context, once, before anything else.
        ``context.source_id`` must be this source's id (ValueError)."""
        if not isinstance(context, SourceRuntimeContext):
            raise TypeError(
                f"{self.label}: initialize() needs a SourceRuntimeContext, "
                f"not {type(context).__name__}"
            )
        await self._initialize(
            context.instance_id,
            context.source_id,
            context.state_store,
            context.identity_provider,
            id_field="source_id",
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
        push blocks (back-pressure).  The receivers belong to the source too:
        closing it closes them first."""
        if not isinstance(settings, SubscriptionSettings):
            raise TypeError(
                f"{self.label}: subscribe() needs SubscriptionSettings, "
                f"not {type(settings).__name__}"
            )
        self._require_initialized("subscribe")
        gen = self._gen
        b = gen.borrowed()
        ctx = self.callback_context
        mark = ctx.mark() if ctx is not None else 0
        ptr = await self._call(
            self._vt.subscribe_fn, self._vt.state, *gen.subscribe_args(b, settings)
        )
        if ptr == NULL:
            raise PluginCallError(
                f"{self.label}: subscribe({settings.query_id!r}) failed",
                plugin_message=ctx.logged_since(mark) if ctx is not None else None,
                plugin=self.plugin,
                component_id=self.id,
            )
        # 64 bytes in 0.4, 80 in 0.13 (position handle, bootstrap result receiver).
        resp = gen.copy_block(ptr, "FfiSubscriptionResponse")
        fields = [
            ("receiver", "FfiChangeReceiver"),
            ("bootstrap_receiver", "FfiBootstrapReceiver"),
        ]
        if gen is not GEN_04:
            fields.append(("bootstrap_result_receiver", "FfiBootstrapResultReceiver"))
            if resp.position_handle_ptr != NULL:
                # Releasing it needs Rust's Arc; never asked for, so leaked.
                _log.warning(
                    "%s: subscribe returned a position handle that was not requested; leaked",
                    self.label,
                )
        # What the plugin handed over, released newest first if anything fails.
        vtables: list[Any] = []
        for field, ctype in fields:
            block = getattr(resp, field)
            vtables.append(None if block == NULL else gen.copy_block(block, ctype))
        change_vt, boot_vt = vtables[0], vtables[1]
        result_vt = vtables[2] if len(vtables) > 2 else None
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
            if change_vt is None:
                raise PluginProtocolError(
                    f"{self.label}: subscribe returned a NULL change receiver"
                )
            # A receiver proxy owns its vtable from the start, also when its
            # constructor fails (it then drops it itself).
            vt, change_vt = change_vt, None
            receiver = ChangeReceiverProxy(
                vt,
                codec=self._codec,
                label=self.label,
                capacity=capacity,
                max_bytes=max_bytes,
                generation=gen,
            )
            receivers.append(receiver)
            bootstrap_receiver = None
            if boot_vt is not None:
                vt, boot_vt = boot_vt, None
                rvt, result_vt = result_vt, None
                bootstrap_receiver = BootstrapReceiverProxy(
                    vt,
                    codec=self._codec,
                    label=self.label,
                    capacity=capacity,
                    max_bytes=max_bytes,
                    generation=gen,
                    result_vt=rvt,
                )
                receivers.append(bootstrap_receiver)
            elif result_vt is not None:  # a result without events: nothing to wait for
                orphan, result_vt = result_vt, None
                await on_drop_thread(functools.partial(drop_vtable, orphan))
            for r in receivers:
                self._adopt(r)
        except BaseException as exc:
            orphans = [vt for vt in (change_vt, boot_vt, result_vt) if vt is not None]
            await _release(receivers, orphans)
            if isinstance(exc, DrasiHostError):
                self._attributed(exc)
                raise
            raise
        return SubscriptionResponse(query_id, source_id, receiver, bootstrap_receiver)

    def _adopt(self, receiver: Any) -> None:
        """Make ``receiver`` part of this source (closed and released first)."""
        life = getattr(receiver, "_life", None)
        if isinstance(life, Lifetime):
            self._life.adopt(life)
        else:
            self._check_open()
            self._life.own(receiver._finalizer)

    async def set_bootstrap_provider(self, provider: Any) -> None:
        """Give the plugin a bootstrap provider: any object with an async
        ``bootstrap(request, context, event_tx)`` (a Python provider, or a
        :class:`BootstrapProviderProxy` from another plugin).  The plugin owns
        what it is given; a provider proxy stays alive until it lets go.

        A provider proxy must speak the source's ABI generation
        (:class:`DrasiHostError` naming both otherwise).  An FFI 0.13 source
        gets a 0.13 provider proxy's plugin directly (leased until the source
        drops it), and a Python provider through a host-built push-based
        stream (its events encoded as MessagePack, then its count as the
        end-of-bootstrap result; a provider that raises ends the stream with
        a failed result)."""
        self._check_open()
        try:
            _abi.require_functions(self._vt, ("set_bootstrap_provider_fn",), self.label)
            check_same_abi(provider, self.abi_version, self.label)
            if self._gen is GEN_04:
                vt = build_provider_vtable(provider, codec=self._codec, label=self.label)
                discard = discard_provider_vtable
            elif isinstance(provider, BootstrapProviderProxy):
                vt = build_provider_vtable013(provider)
                discard = discard_provider_vtable013
            else:
                vt = build_host_provider_vtable013(provider, label=self.label)
                discard = discard_provider_vtable013
        except DrasiHostError as exc:
            self._attributed(exc)
            raise
        life = self._life
        try:
            life.enter()
        except BaseException:
            discard(vt)
            raise
        fn, state = self._vt.set_bootstrap_provider_fn, self._vt.state

        def hand_over() -> None:
            try:
                fn(state, vt)  # the plugin owns vt from here
            finally:
                life.leave()

        await run_blocking(
            hand_over,
            on_abandon=lambda: life.fail("set_bootstrap_provider was abandoned by its caller"),
        )


async def _release(receivers: list[Any], orphans: list[Any]) -> None:
    """Release, newest first, the receivers of a failed subscribe and the
    receiver vtables no proxy owns yet (their drop_fn on the drop thread)."""
    with anyio.CancelScope(shield=True):
        for receiver in reversed(receivers):
            await receiver.aclose()
        for vt in reversed(orphans):
            await on_drop_thread(functools.partial(drop_vtable, vt))
