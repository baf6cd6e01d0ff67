"""What every component instance proxy shares: the plugin vtable it owns (one
:class:`~drasi_host._native.Lifetime`), the lifecycle state and its rules,
the lifecycle calls that may block (run on call threads, counted), and
``initialize`` with host services.

State (``None`` until ``initialize``)::

    None --initialize--> STOPPED --start--> STARTING --> RUNNING
                           ^                    |  (failed: ERROR)
                           +--- STOPPED <-- STOPPING <--stop--+

``start`` needs an initialised component that is not starting, running or
stopping; ``stop`` on a stopped (or never initialised) component returns
without calling the plugin.  Every rule is checked before the plugin is
called.

Both ABI generations share this class: what differs (the runtime context,
the status values) goes through the proxy's
:class:`~drasi_host.proxies._generation.Generation`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, NoReturn, TypeVar

from .. import _abi
from .._abi import NULL
from .._native import NativeResource, drop_vtable
from ..bridges.identity import IdentityProviderVtableBuilder
from ..bridges.identity013 import Identity013Handle, build_identity_vtable013
from ..bridges.snapshot import build_snapshot_fetcher013
from ..bridges.state_store import StateStoreVtableBuilder
from ..errors import ClosedError, DrasiHostError, LifecycleError
from ..logs import CallbackContext, InstanceCallbackContext
from ..models import ComponentStatus
from ..payloads import PayloadCodec
from ._generation import GEN_04, Generation

__all__ = ["ComponentProxy", "PluginCallable"]

PluginCallable = Callable[..., Any]
_E = TypeVar("_E", bound=DrasiHostError)

_BUSY = (ComponentStatus.STARTING, ComponentStatus.RUNNING, ComponentStatus.STOPPING)


def _close_all(services: list[Any]) -> None:
    """Close host services kept for a plugin object, newest first."""
    while services:
        services.pop().close()


class ComponentProxy(NativeResource):
    """Base of :class:`SourceProxy` and :class:`ReactionProxy`.

    Built by a factory, which then calls :meth:`_describe` (and releases the
    object when that fails).
    """

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
        generation: Generation = GEN_04,
    ) -> None:
        super().__init__(f"{plugin_label} {self.component_type}")
        self._vt = vt
        self._gen = generation
        #: The ABI generation of the plugin: ``"0.4"`` or ``"0.13"``.
        self.abi_version = generation.abi_version
        self._codec = codec
        self.payload_format = media_type
        self._callbacks = callbacks
        self._plugin_label = plugin_label
        #: The plugin library's file name (for error attributes).
        self.plugin = plugin_label
        self.id = ""
        # Host services the plugin may use until its drop_fn has returned:
        # closed after it (owned first, so released last).
        services: list[Any] = []
        self._services = services
        self._life.own(lambda: _close_all(services))
        self._life.own(lambda: drop_vtable(vt))
        self._instance_ctx: InstanceCallbackContext | None = None
        self._state: ComponentStatus | None = None
        self._initializing = False

    def _describe(self) -> None:
        """Read what the plugin says about the object (id, type, auto start)."""
        vt = self._vt
        what = f"{self._plugin_label} {self.component_type}"
        with self._life.entered():
            try:
                _abi.require_functions(vt, self._required, what)
                self.id = _abi.read_str(vt.id_fn(vt.state), f"{what} id")
                self.type_name: str = _abi.read_str(vt.type_name_fn(vt.state), f"{what} type_name")
                self.auto_start: bool = _abi.call_bool(
                    vt.auto_start_fn, vt.state, what=f"{what} auto_start"
                )
            except DrasiHostError as exc:
                self._attributed(exc)
                raise
        self.label = f"{what} {self.id!r}"

    # ---- helpers for subclasses ---------------------------------------------------

    def _attributed(self, exc: _E) -> _E:
        """``exc`` with this object's plugin and component filled in."""
        if exc.plugin is None:
            exc.plugin = self.plugin
        if exc.component_id is None and self.id:
            exc.component_id = self.id
        return exc

    def _lifecycle_error(self, operation: str, message: str) -> NoReturn:
        raise LifecycleError(
            f"{self.label} {message}" if message.startswith("is ") else f"{self.label}: {message}",
            operation=operation,
            state=self._state,
            plugin=self.plugin,
            component_id=self.id,
        )

    def _require_initialized(self, operation: str) -> None:
        self._check_open()
        if self._state is None:
            self._lifecycle_error(operation, f"{operation}() before initialize()")

    async def _call_result(self, name: str) -> None:
        """Call ``<name>_fn`` (it returns an ``FfiResult``); PluginCallError on failure."""
        fn = getattr(self._vt, f"{name}_fn")
        result = await self._call(fn, self._vt.state)
        try:
            _abi.check_result(result, f"{self.label}: {name}", component=self.id)
        except DrasiHostError as exc:
            self._attributed(exc)
            raise

    # ---- what FFI 0.13 components add (None for 0.4 components) --------------------

    def _optional(self, field: str) -> Any:
        """The vtable function ``field`` when this generation's vtable has it
        and the plugin set it, else None."""
        if self._gen is GEN_04:
            return None
        fn = getattr(self._vt, field)
        return None if fn == NULL else fn

    def _optional_bool(self, field: str, name: str) -> bool | None:
        """What the optional ``bool`` function ``field`` answers (None without it)."""
        fn = self._optional(field)
        if fn is None:
            return None
        with self._life.entered():
            try:
                return _abi.call_bool(fn, self._vt.state, what=f"{self.label} {name}")
            except DrasiHostError as exc:
                self._attributed(exc)
                raise

    def properties(self) -> dict[str, Any] | None:
        """The component's configuration properties (FFI 0.13
        ``properties_fn``, a JSON object); None for a 0.4 component or when
        the plugin has no ``properties_fn``.  :class:`PluginProtocolError`
        when the plugin's text is not a JSON object."""
        fn = self._optional("properties_fn")
        if fn is None:
            return None
        with self._life.entered():
            raw = fn(self._vt.state)
        try:
            return _abi.take_json_object(raw, f"{self.label} properties")
        except DrasiHostError as exc:
            self._attributed(exc)
            raise

    # ---- lifecycle ---------------------------------------------------------------

    async def _initialize(
        self,
        instance_id: str,
        component_id: str,
        state_store: object | None,
        identity_provider: object | None,
        *,
        id_field: str,
        snapshot_fetcher: object | None = None,
    ) -> InstanceCallbackContext:
        self._check_open()
        if self._initializing or self._state is not None:
            self._lifecycle_error("initialize", "initialize() was already called")
        if component_id != self.id:
            raise ValueError(
                f"{self.label}: the runtime context's {id_field} is {component_id!r}, "
                f"not this {self.component_type}'s id {self.id!r}"
            )
        self._initializing = True
        created: list[Any] = []
        try:
            instance_ctx = InstanceCallbackContext(
                self._callbacks, instance_id, component_id, self.component_type
            )
            created.append(instance_ctx)
            store_vt = None
            if state_store is not None:
                # The StateStoreVtable is the same in both generations.
                store = StateStoreVtableBuilder.build(state_store)  # type: ignore[arg-type]
                created.append(store)
                store_vt = store.vtable
            identity_vt = self._identity_vtable(identity_provider, created)
            fetcher_vt = self._snapshot_fetcher_vtable(snapshot_fetcher, created)
            b = self._gen.borrowed()
            rc = self._gen.runtime_context(
                b,
                instance_id=instance_id,
                component_id=component_id,
                callback_key=instance_ctx.key,
                state_store=store_vt,
                identity_provider=identity_vt,
                snapshot_fetcher=fetcher_vt,
            )
        except BaseException:
            _close_all(created)
            self._initializing = False
            raise
        try:
            self._life.enter()
        except BaseException:
            _close_all(created)
            raise
        # From here the plugin may hold on to the services: they stay until
        # its drop_fn has returned.
        self._services.extend(created)
        self._life.leave()
        identity013 = [h for h in created if isinstance(h, Identity013Handle)]
        called = True
        try:
            await self._call(self._vt.initialize_fn, self._vt.state, rc)
        except ClosedError:
            called = False  # refused before the call: the plugin never saw the block
            raise
        finally:
            # The plugin copied the 0.13 identity block (and owns its state)
            # once initialize_fn ran, also when its caller was cancelled.
            for handle in identity013 if called else ():
                handle.handed_over()
        self._instance_ctx = instance_ctx
        self._state = ComponentStatus.STOPPED
        return instance_ctx

    def _identity_vtable(self, provider: object | None, created: list[Any]) -> Any:
        """The host-built ``IdentityProviderVtable *`` of ``provider`` for
        this generation (None for none); what must stay alive until the
        plugin's ``drop_fn`` has returned goes into ``created``."""
        if provider is None:
            return None
        if self._gen is GEN_04:
            identity = IdentityProviderVtableBuilder.build(provider)  # type: ignore[arg-type]
            created.append(identity)
            return identity.vtable
        # 0.13: the plugin copies the block during initialize_fn and owns
        # the state(s); the handle releases what it never took.
        handle = build_identity_vtable013(provider)
        created.append(handle)
        return handle.vtable

    def _snapshot_fetcher_vtable(self, fetcher: object | None, created: list[Any]) -> Any:
        """The host-built ``SnapshotFetcherVtable *`` of ``fetcher`` (FFI
        0.13 reactions; None for none and for 0.4, which has no place for
        it); its handle is closed once the plugin's ``drop_fn`` has returned."""
        if fetcher is None or self._gen is GEN_04:
            return None  # a 0.4 reaction has no place for one
        handle = build_snapshot_fetcher013(fetcher)
        created.append(handle)
        return handle.vtable

    @property
    def callback_context(self) -> InstanceCallbackContext | None:
        """The per-instance log/lifecycle routing set up by ``initialize``."""
        return self._instance_ctx

    async def start(self) -> None:
        """Start the component.  LifecycleError before ``initialize`` or when
        it is already starting, running or stopping; PluginCallError when the
        plugin reports a failure."""
        self._require_initialized("start")
        if self._state in _BUSY:
            self._lifecycle_error("start", f"start() while {self._state.name.lower()}")
        self._state = ComponentStatus.STARTING
        try:
            await self._start()
        except BaseException:
            self._state = ComponentStatus.ERROR
            raise
        self._state = ComponentStatus.RUNNING

    async def _start(self) -> None:
        await self._call_result("start")

    async def stop(self) -> None:
        """Stop the component; without calling the plugin when it is stopped
        or was never initialised."""
        self._check_open()
        if self._state is None or self._state in (
            ComponentStatus.STOPPED,
            ComponentStatus.STOPPING,
        ):
            return
        self._state = ComponentStatus.STOPPING
        try:
            await self._stop()
        except BaseException:
            self._state = ComponentStatus.ERROR
            raise
        self._state = ComponentStatus.STOPPED

    async def _stop(self) -> None:
        await self._call_result("stop")

    async def deprovision(self) -> None:
        await self._call_result("deprovision")

    async def status(self) -> ComponentStatus:
        """What the plugin reports.  ``ADDED`` and ``REMOVED`` come only from
        FFI 0.13 plugins (a 0.4 plugin reporting them is a
        :class:`PluginProtocolError`)."""
        raw = await self._call(self._vt.status_fn, self._vt.state)
        try:
            return self._gen.status(raw, f"{self.label}: status")
        except DrasiHostError as exc:
            self._attributed(exc)
            raise
