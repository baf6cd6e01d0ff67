"""What every component instance proxy shares: the plugin vtable it owns, the
lifecycle calls that may block (run in worker threads), ``initialize`` with
host services, and release of the plugin object exactly once."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any, ClassVar

import anyio

from .. import _abi
from .._abi import NULL, Borrowed, ffi, lib
from ..bridges.identity import IdentityProviderVtableBuilder
from ..bridges.state_store import StateStoreVtableBuilder
from ..errors import DrasiHostError
from ..logs import CallbackContext, InstanceCallbackContext
from ..models import ComponentStatus
from ..payloads import PayloadCodec

__all__ = ["ComponentProxy", "PluginCallable"]

PluginCallable = Callable[..., Any]


class _Releaser:
    """Runs the plugin's ``drop_fn`` once, then frees host services kept alive
    for the plugin (state store / identity vtables, callback contexts)."""

    def __init__(self, vt: Any) -> None:
        self.vt = vt
        self.before: list[Callable[[], None]] = []
        self.after: list[Any] = []
        self._lock = threading.Lock()
        self.done = False

    def __call__(self) -> None:
        with self._lock:
            if self.done:
                return
            self.done = True
        for fn in self.before:
            fn()
        if self.vt.drop_fn != NULL:
            self.vt.drop_fn(self.vt.state)
        for service in self.after:
            service.close()


class ComponentProxy:
    """Base of :class:`SourceProxy` and :class:`ReactionProxy`."""

    component_type: ClassVar[str] = "component"
    _required: ClassVar[tuple[str, ...]] = (
        "id_fn",
        "type_name_fn",
        "auto_start_fn",
        "start_fn",
        "stop_fn",
        "status_fn",
        "deprovision_fn",
        "initialize_fn",
    )

    def __init__(
        self,
        vt: Any,
        *,
        plugin_label: str,
        codec: PayloadCodec | None,
        media_type: str | None,
        callbacks: CallbackContext,
    ) -> None:
        self._vt = vt
        self._codec = codec
        self.payload_format = media_type
        self._callbacks = callbacks
        self._releaser = _Releaser(vt)
        self._finalizer = weakref.finalize(self, self._releaser)
        self._instance_ctx: InstanceCallbackContext | None = None
        try:
            _abi.require_functions(vt, self._required, f"{plugin_label} {self.component_type}")
            self.id: str = _abi.read_str(
                vt.id_fn(vt.state), f"{plugin_label} {self.component_type} id"
            )
            self.type_name: str = _abi.read_str(
                vt.type_name_fn(vt.state), f"{plugin_label} {self.component_type} type_name"
            )
            self.auto_start: bool = _abi.call_bool(
                vt.auto_start_fn, vt.state, what=f"{plugin_label} {self.component_type} auto_start"
            )
        except DrasiHostError:
            self._finalizer()
            raise
        self.label = f"{plugin_label} {self.component_type} {self.id!r}"

    # ---- helpers for subclasses ---------------------------------------------------

    def _check_open(self) -> None:
        if not self._finalizer.alive:
            raise DrasiHostError(f"{self.label} is closed")

    async def _call(self, fn: PluginCallable, *args: Any) -> Any:
        """Run a plugin function that may block in a worker thread."""
        self._check_open()
        return await anyio.to_thread.run_sync(fn, *args)

    async def _call_result(self, name: str) -> None:
        fn = getattr(self._vt, f"{name}_fn")
        result = await self._call(fn, self._vt.state)
        _abi.check_result(result, f"{self.label}: {name}", component=self.id)

    def _keep_until_drop(self, service: Any) -> None:
        self._releaser.after.append(service)

    def _release_first(self, fn: Callable[[], None]) -> None:
        self._releaser.before.append(fn)

    # ---- lifecycle ---------------------------------------------------------------

    async def _initialize(
        self,
        instance_id: str,
        component_id: str,
        state_store: object | None,
        identity_provider: object | None,
    ) -> InstanceCallbackContext:
        self._check_open()
        instance_ctx = InstanceCallbackContext(
            self._callbacks, instance_id, component_id, self.component_type
        )
        self._keep_until_drop(instance_ctx)
        b = Borrowed()
        rc = ffi.new("FfiRuntimeContext *")
        rc.instance_id = b.str(instance_id)
        rc.component_id = b.str(component_id)
        rc.log_callback = lib.dh_log_callback_ptr()
        rc.log_ctx = _abi.key_ctx(instance_ctx.key)
        rc.lifecycle_callback = lib.dh_lifecycle_callback_ptr()
        rc.lifecycle_ctx = _abi.key_ctx(instance_ctx.key)
        if state_store is not None:
            store = StateStoreVtableBuilder.build(state_store)  # type: ignore[arg-type]
            self._keep_until_drop(store)
            rc.state_store = store.vtable
        if identity_provider is not None:
            identity = IdentityProviderVtableBuilder.build(identity_provider)  # type: ignore[arg-type]
            self._keep_until_drop(identity)
            rc.identity_provider = identity.vtable
        await self._call(self._vt.initialize_fn, self._vt.state, rc)
        self._instance_ctx = instance_ctx
        return instance_ctx

    @property
    def callback_context(self) -> InstanceCallbackContext | None:
        """The per-instance log/lifecycle routing set up by ``initialize``."""
        return self._instance_ctx

    async def start(self) -> None:
        await self._call_result("start")

    async def stop(self) -> None:
        await self._call_result("stop")

    async def deprovision(self) -> None:
        await self._call_result("deprovision")

    async def status(self) -> ComponentStatus:
        raw = await self._call(self._vt.status_fn, self._vt.state)
        return _abi.to_enum(ComponentStatus, raw, f"{self.label}: status")

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    async def aclose(self) -> None:
        """Release the plugin object (its ``drop_fn``) and what the host kept
        for it; idempotent.  The release runs in a worker thread."""
        if self._finalizer.alive:
            await anyio.to_thread.run_sync(self._finalizer)

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<{type(self).__name__} {self.label} {state}>"
