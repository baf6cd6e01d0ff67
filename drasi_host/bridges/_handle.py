"""What the state-store and identity handles share: a host-owned vtable whose
``state`` is a handle-table key, the provider behind it, and a release that
runs once (on :meth:`VtableHandle.close`, on leaving ``with``, or when the
handle is collected), kept by a :class:`~drasi_host._native.Lifetime`.

The release is host code only (it forgets table keys), so it runs on the
thread that closes the handle: on the drop thread when the component that
was given the vtable is released after its ``drop_fn``."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

from .. import _abi
from .._abi import CData, ffi
from .._native import Lifetime

__all__ = ["VtableHandle"]

P = TypeVar("P")
H = TypeVar("H", bound="VtableHandle[Any]")


class _DropCounter(Protocol):
    @property
    def drop_calls(self) -> int: ...


class VtableHandle(Generic[P]):
    """A built vtable of C type ``ctype``, filled by ``init_vtable(vt, state)``
    with ``key`` as its state; ``release`` runs once when the handle closes."""

    def __init__(
        self,
        provider: P,
        counter: _DropCounter,
        key: int,
        ctype: str,
        init_vtable: Callable[[CData, CData], None],
        release: Callable[[], None],
    ) -> None:
        self._provider = provider
        self._counter = counter
        self._key = key
        self._life = Lifetime(f"{type(self).__name__} {type(provider).__name__}")
        self._life.own(release)
        # Collected while open: released where the collector runs (host code
        # only, never a plugin call), without a warning (components hold
        # their handles until the plugin has dropped them).
        self._closer = weakref.finalize(self, self._life.close, here=True)
        self._vtable = ffi.new(f"{ctype} *")
        init_vtable(self._vtable, _abi.key_ctx(key))

    @property
    def vtable(self) -> CData:
        """The host-owned vtable pointer to put in ``FfiRuntimeContext``."""
        return self._vtable

    @property
    def provider(self) -> P:
        return self._provider

    @property
    def key(self) -> int:
        """The handle-table key carried in ``vtable.state``."""
        return self._key

    @property
    def closed(self) -> bool:
        return self._life.closing

    @property
    def dropped(self) -> bool:
        """Whether the plugin has called ``drop_fn`` (on the original state)."""
        return self._counter.drop_calls > 0

    @property
    def drop_calls(self) -> int:
        """``drop_fn`` calls on the original state (more than one is a plugin bug)."""
        return self._counter.drop_calls

    def close(self) -> None:
        """Unregister the provider; later calls through the vtable get errors."""
        self._closer.detach()
        self._life.close(here=True)

    def __enter__(self: H) -> H:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("dropped" if self.dropped else "open")
        return f"<{type(self).__name__} {type(self._provider).__name__} key={self._key:#x} {state}>"
