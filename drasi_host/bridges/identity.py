"""The identity provider a plugin asks for credentials, and its C vtable.

A plugin that needs credentials (a database password, a token, a client
certificate) calls ``get_credentials_fn`` of the ``IdentityProviderVtable``
the host passes in ``FfiRuntimeContext`` (ABI.md section 8).  The host side:

* :class:`IdentityProvider`, the protocol (``get_credentials()``, plain or
  coroutine), and :class:`StaticIdentityProvider`, which always answers the
  same :class:`~drasi_host.models.Credentials`;
* :class:`IdentityProviderVtableBuilder`, which registers a provider in the
  callback handle table and fills a host-owned vtable with the C shims of
  ``drasi_host._ffi``; the :class:`IdentityHandle` it returns keeps the block
  and the provider alive until :meth:`IdentityHandle.close`;
* the ``extern "Python"`` functions behind the shims (``dh_py_id_*``).

Credentials are returned as NUL-terminated C-heap strings the plugin frees; a
failure has an error message and NULL credential strings (ABI.md 11.4).
``clone_fn`` gives the plugin a new state (a new table key) sharing the same
provider; each clone is released by its own ``drop_fn``.  The original state
belongs to the host: its ``drop_fn`` only marks it dropped, and
:meth:`IdentityHandle.close` releases it together with any clone the plugin
never dropped.  A call with a released state is answered with an error (or
NULL from ``clone_fn``), never a crash.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Mapping
from typing import Protocol

from .. import _abi
from .._abi import CData, ffi
from .._callbacks import c_callback, handles
from ..models import Credentials
from ._dispatch import BridgeError, LoopPortal, failure_message, log, required_method
from ._handle import VtableHandle

__all__ = [
    "IdentityHandle",
    "IdentityProvider",
    "IdentityProviderVtableBuilder",
    "StaticIdentityProvider",
]

_CLOSED = "identity provider is closed"


class IdentityProvider(Protocol):
    """Hands out credentials; ``get_credentials`` may be a coroutine function
    (it then runs on the host's event loop).  A provider whose
    ``get_credentials`` takes a keyword ``context`` receives the credential
    context a 0.13 plugin sends (``dict[str, str]``, empty when absent);
    others are called without arguments."""

    def get_credentials(self) -> Credentials | Awaitable[Credentials]:
        """The credentials a plugin should use now."""
        ...


class StaticIdentityProvider:
    """An :class:`IdentityProvider` that always answers the same credentials."""

    def __init__(self, credentials: Credentials) -> None:
        if not isinstance(credentials, Credentials):
            raise TypeError(
                f"StaticIdentityProvider needs Credentials, not {type(credentials).__name__}"
            )
        self.credentials = credentials

    def get_credentials(self, context: Mapping[str, str] | None = None) -> Credentials:
        """The credentials (``context`` is accepted and ignored)."""
        return self.credentials

    def __repr__(self) -> str:
        return f"StaticIdentityProvider({self.credentials!r})"


class _Shared:
    """One built vtable: the adapted provider, its clones and its bookkeeping."""

    def __init__(self, provider: IdentityProvider) -> None:
        getter = required_method(provider, "get_credentials", "an IdentityProvider")
        portal = LoopPortal(f"identity provider {type(provider).__name__}")
        self.get_credentials = portal.adapt(getter, "get_credentials")
        self.lock = threading.Lock()
        self.closed = False
        self.clones: set[int] = set()
        self.drop_calls = 0
        self.clones_made = 0
        self.clones_dropped = 0


class _State:
    """What one state pointer (a table key) stands for: the original or a clone."""

    __slots__ = ("is_clone", "shared")

    def __init__(self, shared: _Shared, is_clone: bool) -> None:
        self.shared = shared
        self.is_clone = is_clone


def _release(shared: _Shared, key: int) -> None:
    """Unregister the original state and every clone still registered."""
    with shared.lock:
        shared.closed = True
        keys = [key, *shared.clones]
        shared.clones.clear()
    for k in keys:
        handles.remove(k)


class IdentityHandle(VtableHandle[IdentityProvider]):
    """A built ``IdentityProviderVtable`` and what keeps it working.

    ``vtable`` is the ``IdentityProviderVtable *`` to put in
    ``FfiRuntimeContext``; the block is host-owned and lives as long as this
    handle.  :meth:`close` (after the component's own ``drop_fn`` has
    returned) releases the original state and all remaining clones, after
    which calls get errors; it is idempotent and also happens when the handle
    is collected.
    """

    def __init__(self, provider: IdentityProvider) -> None:
        self._shared = _Shared(provider)
        key = handles.add(_State(self._shared, is_clone=False))
        super().__init__(
            provider,
            self._shared,
            key,
            "IdentityProviderVtable",
            _abi.lib.dh_identity_vtable_init,
            functools.partial(_release, self._shared, key),
        )

    @property
    def live_clones(self) -> int:
        """Clones the plugin made and has not dropped yet."""
        with self._shared.lock:
            return len(self._shared.clones)

    @property
    def clones_made(self) -> int:
        return self._shared.clones_made


class IdentityProviderVtableBuilder:
    """Builds the ``IdentityProviderVtable`` through which a plugin asks for credentials."""

    @staticmethod
    def build(provider: IdentityProvider) -> IdentityHandle:
        """Register ``provider`` and fill a fresh host-owned vtable for it.

        Call it on the event loop thread when ``get_credentials`` is a
        coroutine function (it runs on the loop running here).
        """
        return IdentityHandle(provider)


# ------------------------------------------------- extern "Python" functions


def checked_credentials(credentials: object) -> Credentials:
    """``credentials`` when ``get_credentials()`` returned a
    :class:`~drasi_host.models.Credentials`, else TypeError."""
    if not isinstance(credentials, Credentials):
        raise TypeError(
            f"get_credentials() returned {type(credentials).__name__}, expected Credentials"
        )
    return credentials


def _state(state: CData) -> _State:
    found = handles.get(_abi.ctx_key(state))
    if type(found) is not _State:
        raise BridgeError(_CLOSED)
    return found


def _credentials_error(exc: BaseException) -> CData:
    return _abi.credentials_error(failure_message(exc))


def _null(exc: BaseException) -> CData:
    return _abi.NULL


def _nothing(exc: BaseException) -> None:
    return None


@ffi.def_extern(name="dh_py_id_get_credentials")  # type: ignore[untyped-decorator]
@c_callback(_credentials_error)
def _id_get_credentials(state: CData) -> CData:
    credentials = checked_credentials(_state(state).shared.get_credentials())
    return _abi.credentials_result(credentials)


@ffi.def_extern(name="dh_py_id_clone")  # type: ignore[untyped-decorator]
@c_callback(_null)
def _id_clone(state: CData) -> CData:
    shared = _state(state).shared
    key = handles.add(_State(shared, is_clone=True))
    with shared.lock:
        if not shared.closed:
            shared.clones.add(key)
            shared.clones_made += 1
            return _abi.key_ctx(key)
    handles.remove(key)
    raise BridgeError(_CLOSED)


@ffi.def_extern(name="dh_py_id_drop")  # type: ignore[untyped-decorator]
@c_callback(_nothing)
def _id_drop(state: CData) -> None:
    key = _abi.ctx_key(state)
    found = handles.get(key)
    if type(found) is not _State:
        return  # released already (a second drop of a clone, or after close)
    shared = found.shared
    if found.is_clone:
        with shared.lock:
            if key not in shared.clones:
                return  # a concurrent drop of the same clone won
            shared.clones.discard(key)
            shared.clones_dropped += 1
        handles.remove(key)
        return
    with shared.lock:
        shared.drop_calls += 1
        calls = shared.drop_calls
    if calls > 1:
        log.warning("a plugin called the identity provider drop_fn %d times", calls)
