"""The identity provider of a 0.13 component: ``IdentityProviderVtable`` for
``FfiRuntimeContext.identity_provider`` (ABI-0.13.md sections 6 and 10).

A 0.13 plugin copies the four fields of the block **by value** during
``initialize_fn`` and never reads the block again; it later calls
``drop_fn(state)`` once for every state it holds: the original and each
state ``clone_fn`` gave it.  So the block is transient and every state is
owned by the plugin.  :func:`build_identity_vtable013` makes one of two kinds:

* **host-built**, for any Python :class:`~drasi_host.bridges.identity.IdentityProvider`:
  each state is its own key in :data:`drasi_host._callbacks.handles`, the
  original and every clone alike, counted together; ``drop_fn`` forgets the
  key it is given (a second drop of the same state, or a drop after
  :meth:`Identity013Handle.close`, is ignored).  ``get_credentials_fn``
  decodes the credential context (UTF-8 JSON of a string -> string object;
  NULL, empty, invalid or any other JSON is an empty context) and calls
  ``provider.get_credentials(context=...)`` when the method takes a
  ``context`` keyword (or ``**kwargs``), else ``provider.get_credentials()``;
  a coroutine method runs on the event loop that was running when the
  vtable was built.
* **the plugin's own**, for an :class:`~drasi_host.proxies.services.IdentityProviderProxy`
  of a 0.13 plugin (section 4, last paragraph): the block holds a new state
  made by that plugin's ``clone_fn`` and the plugin's own functions, so the
  component talks to the identity plugin directly, and the component's
  ``drop_fn`` releases that clone.
"""

from __future__ import annotations

import functools
import inspect
import json
import threading
from collections.abc import Callable
from typing import Any

from .. import _abi013
from .._abi013 import CData, ffi
from .._callbacks import c_callback, handles
from ._dispatch import BridgeError, LoopPortal, failure_message, log, required_method
from .identity import checked_credentials

__all__ = ["Identity013Handle", "accepts_context", "build_identity_vtable013", "read_context"]

_CLOSED = "identity provider is closed"


def accepts_context(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` can be called with the keyword argument ``context``."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        (p.name == "context" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        or p.kind is p.VAR_KEYWORD
        for p in params
    )


def read_context(data: bytes) -> dict[str, str]:
    """The credential context of ``data``: a JSON object of strings, else empty."""
    if not data:
        return {}
    try:
        value = json.loads(data.decode("utf-8"))
    except ValueError:  # also UnicodeDecodeError
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return {}
    return value


class _Shared:
    """One host-built vtable: the adapted provider and the live states."""

    def __init__(self, provider: Any) -> None:
        getter = required_method(provider, "get_credentials", "an IdentityProvider")
        self.portal = LoopPortal(f"identity provider {type(provider).__name__}")
        self.getter = getter
        self.with_context = accepts_context(getter)
        # Also refuses a coroutine method when no event loop is running here.
        self.plain = self.portal.adapt(getter, "get_credentials")
        self.lock = threading.Lock()
        self.closed = False
        self.live: set[int] = set()
        self.drop_calls = 0
        self.clones_made = 0

    def get_credentials(self, context: dict[str, str]) -> Any:
        if not self.with_context:
            return self.plain()
        call = functools.partial(self.getter, context=context)
        return self.portal.adapt(call, "get_credentials")()


class _State:
    """What one state pointer (a table key) stands for."""

    __slots__ = ("shared",)

    def __init__(self, shared: _Shared) -> None:
        self.shared = shared


def _add_state(shared: _Shared) -> int:
    key = handles.add(_State(shared))
    with shared.lock:
        if not shared.closed:
            shared.live.add(key)
            return key
    handles.remove(key)
    raise BridgeError(_CLOSED)


class Identity013Handle:
    """What :func:`build_identity_vtable013` returns.

    ``vtable`` is the ``IdentityProviderVtable *`` (a ``drasi_host._ffi013``
    pointer) for ``FfiRuntimeContext.identity_provider``.  The block belongs
    to the handle (the plugin copies it during ``initialize_fn``); the states
    in it belong to the plugin once ``initialize_fn`` has been called.
    """

    def __init__(self, provider: Any) -> None:
        from ..proxies.services import IdentityProviderProxy  # the proxies import the bridges

        self.provider = provider
        self._shared: _Shared | None = None
        self._proxy: IdentityProviderProxy | None = None
        self._handed_over = False
        self._closed = False
        if isinstance(provider, IdentityProviderProxy):
            self._proxy = provider
            self._vtable = provider._clone_vtable()
        else:
            self._shared = _Shared(provider)
            self._vtable = ffi.new("IdentityProviderVtable *")
            _abi013.lib.dh13_identity_vtable_init(
                self._vtable, _abi013.key_ctx(_add_state(self._shared))
            )

    @property
    def vtable(self) -> CData:
        """The block to put in ``FfiRuntimeContext.identity_provider``."""
        return self._vtable

    @property
    def plugin_owned(self) -> bool:
        """True when the block carries an identity plugin's own functions."""
        return self._proxy is not None

    @property
    def live_states(self) -> int:
        """Host-built states the plugin holds and has not dropped (0 for a
        plugin's own vtable, whose states the host cannot see)."""
        if self._shared is None:
            return 0
        with self._shared.lock:
            return len(self._shared.live)

    @property
    def drop_calls(self) -> int:
        """``drop_fn`` calls on host-built states (each state counts once)."""
        return 0 if self._shared is None else self._shared.drop_calls

    @property
    def clones_made(self) -> int:
        return 0 if self._shared is None else self._shared.clones_made

    def handed_over(self) -> None:
        """Record that ``initialize_fn`` has been called with the block: the
        plugin owns the state(s) in it from now on and drops them."""
        self._handed_over = True

    def close(self) -> None:
        """Release what the plugin no longer may use; idempotent.

        Host-built: forget every state still registered (the plugin's later
        calls get errors, its later drops are ignored) and the provider.
        The plugin's own vtable: when :meth:`handed_over` was never called,
        drop the clone in the block with the identity plugin's ``drop_fn``
        (nobody else will); otherwise nothing (the component drops it).
        """
        if self._closed:
            return
        self._closed = True
        if self._shared is not None:
            shared = self._shared
            with shared.lock:
                shared.closed = True
                keys = list(shared.live)
                shared.live.clear()
            for key in keys:
                handles.remove(key)
        elif not self._handed_over:
            vt = self._vtable
            vt.drop_fn(vt.state)

    def __enter__(self) -> Identity013Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "plugin" if self._proxy is not None else "host"
        state = "closed" if self._closed else "open"
        return f"<Identity013Handle {type(self.provider).__name__} {kind} {state}>"


def build_identity_vtable013(provider: Any) -> Identity013Handle:
    """The 0.13 ``IdentityProviderVtable`` of ``provider`` for a component's
    ``FfiRuntimeContext`` (ABI-0.13.md sections 6 and 10).

    How the runtime-context code of a 0.13 source or reaction uses it:

    1. ``handle = build_identity_vtable013(provider)`` on the event loop
       thread, before ``initialize_fn`` (a coroutine ``get_credentials`` runs
       on the loop running here).  It raises TypeError for an object without
       ``get_credentials`` and ClosedError for a closed
       :class:`~drasi_host.proxies.services.IdentityProviderProxy`.
    2. ``rc.identity_provider = handle.vtable`` (``rc`` an
       ``FfiRuntimeContext *`` of ``drasi_host._ffi013``); call
       ``initialize_fn``; then call ``handle.handed_over()`` (also when
       ``initialize_fn`` failed after the plugin may have copied the block).
       If ``initialize_fn`` is never called, skip ``handed_over()``.
    3. Keep the handle with the component's host services and call
       ``handle.close()`` once the component's own ``drop_fn`` has returned
       (or at once when ``initialize_fn`` was never called).  The block must
       stay alive until ``initialize_fn`` returns; the handle keeps it.
       Never call the vtable's ``drop_fn`` yourself: the plugin drops every
       state it holds, and ``close()`` releases what it did not.
    """
    return Identity013Handle(provider)


# ------------------------------------------------- extern "Python" functions


def _shared(state: CData) -> _Shared:
    found = handles.get(_abi013.ctx_key(state))
    if type(found) is not _State:
        raise BridgeError(_CLOSED)
    return found.shared


def _credentials_error(exc: BaseException) -> CData:
    return _abi013.credentials_error(failure_message(exc))


def _null(exc: BaseException) -> CData:
    return _abi013.NULL


def _nothing(exc: BaseException) -> None:
    return None


@ffi.def_extern(name="dh13_py_id_get_credentials")  # type: ignore[untyped-decorator]
@c_callback(_credentials_error)
def _id_get_credentials(state: CData, context_json: CData, context_len: int) -> CData:
    shared = _shared(state)
    data = b""
    if context_json != _abi013.NULL and 0 < context_len <= 1 << 20:
        data = ffi.buffer(context_json, context_len)[:]
    credentials = checked_credentials(shared.get_credentials(read_context(data)))
    return _abi013.credentials_result(credentials)


@ffi.def_extern(name="dh13_py_id_clone")  # type: ignore[untyped-decorator]
@c_callback(_null)
def _id_clone(state: CData) -> CData:
    shared = _shared(state)
    key = _add_state(shared)
    with shared.lock:
        shared.clones_made += 1
    return _abi013.key_ctx(key)


@ffi.def_extern(name="dh13_py_id_drop")  # type: ignore[untyped-decorator]
@c_callback(_nothing)
def _id_drop(state: CData) -> None:
    key = _abi013.ctx_key(state)
    found = handles.get(key)
    if type(found) is not _State:
        return  # dropped already, or released by close()
    shared = found.shared
    with shared.lock:
        if key not in shared.live:
            return  # a concurrent drop of the same state won
        shared.live.discard(key)
        shared.drop_calls += 1
        left = len(shared.live)
    handles.remove(key)
    if left == 0:
        log.debug("identity provider: the plugin dropped its last state")
