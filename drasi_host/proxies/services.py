"""Identity providers and secret stores made by 0.13 plugins.

An identity-provider or secret-store factory (ABI-0.13.md section 4) returns
a bare heap block (``IdentityProviderVtable`` / ``SecretStoreProviderVtable``),
NULL on failure with the reason only in the plugin's log.  :func:`create_bare`
runs that call on a call thread, turns NULL into a :class:`PluginCallError`
carrying what the plugin logged meanwhile, copies the block out and frees it.

:class:`IdentityProviderProxy` and :class:`SecretStoreProxy` own the copied
vtable as :class:`~drasi_host._native.NativeResource` objects: ``aclose()``
(or ``async with``, or the finaliser with a ResourceWarning) calls the
plugin's ``drop_fn(state)`` exactly once, on the drop thread, after every call
in flight.  Their calls block inside the plugin, so they run on call threads.

An :class:`IdentityProviderProxy` is an
:class:`~drasi_host.bridges.identity.IdentityProvider`: any component may use
it as its ``identity_provider``.  A 0.4 component reaches it through the
host-built bridge (``get_credentials()`` without context); a 0.13 component
gets the plugin's own vtable through ``clone_fn`` (see
:func:`drasi_host.bridges.identity013.build_identity_vtable013`).  A
:class:`SecretStoreProxy` is a :class:`~drasi_host.protocols.ConfigResolver`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import anyio

from .. import _abi013
from .._abi013 import NULL, Borrowed, ffi
from .._native import NativeResource, drop_vtable
from ..errors import DrasiHostError, PluginCallError, PluginProtocolError
from ..logs import _Route
from ..models import Credentials
from ._generation import GEN_013

__all__ = ["IdentityProviderProxy", "SecretStoreProxy", "checked", "create_bare", "open_service"]


async def create_bare(factory: Any, what: str, ctype: str, config_text: str) -> Any:
    """Call ``factory``'s create function (a 0.13 identity-provider or
    secret-store factory: a bare pointer, NULL on failure) with the JSON
    ``config_text`` on a call thread; the instance vtable of C type ``ctype``,
    copied out of the plugin's heap block (which is freed).  NULL raises
    :class:`PluginCallError` with what the plugin logged during the call."""
    factory._check_open()
    route: _Route = factory._route
    vt = factory._vt
    mark = route.mark()
    b = Borrowed()
    ptr = await factory._call(getattr(vt, factory._create_field), vt.state, b.str(config_text))
    if ptr == NULL:
        raise PluginCallError(
            f"{factory.label}: {what} refused by the plugin",
            plugin_message=route.logged_since(mark),
            plugin=factory.plugin,
        )
    return GEN_013.copy_block(ptr, ctype)


S = TypeVar("S", bound="_ServiceProxy")
R = TypeVar("R", bound=NativeResource)


async def checked(proxy: R, check: Callable[[], None]) -> R:
    """``proxy`` (a new proxy owning its vtable) once ``check()`` passed;
    otherwise release it and raise what ``check`` raised."""
    try:
        check()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await proxy.aclose()
        raise
    return proxy


async def open_service(cls: type[S], vt: Any, factory: Any) -> S:
    """Wrap a copied instance vtable in ``cls`` (which owns it from here on);
    release it and raise when it is unusable."""
    proxy = cls(vt, plugin_label=factory.plugin_label, kind=factory.kind)
    return await checked(proxy, proxy._check)


class _ServiceProxy(NativeResource):
    """An owned plugin vtable with its required functions checked."""

    _what = "service"
    _required: tuple[str, ...] = ()

    def __init__(self, vt: Any, *, plugin_label: str, kind: str) -> None:
        super().__init__(f"{plugin_label} {self._what} {kind!r}")
        self._vt = vt
        self._life.own(lambda: drop_vtable(vt))
        #: The plugin library's file name (for error attributes).
        self.plugin = plugin_label
        #: The factory kind that made it.
        self.kind = kind

    def _check(self) -> None:
        """PluginProtocolError when a required function is NULL (the caller
        then releases the object)."""
        missing = [name for name in self._required if getattr(self._vt, name) == NULL]
        if missing:
            raise PluginProtocolError(
                f"{self.label}: the plugin left {', '.join(missing)} NULL", plugin=self.plugin
            )

    @property
    def released(self) -> bool:
        """Whether the plugin's ``drop_fn`` has run."""
        return self._life.released

    def _attributed(self, exc: DrasiHostError) -> DrasiHostError:
        if exc.plugin is None:
            exc.plugin = self.plugin
        return exc


class IdentityProviderProxy(_ServiceProxy):
    """An identity provider made by a 0.13 plugin (``IdentityProviderVtable``).

    ``await get_credentials(context=None)`` asks the plugin for credentials
    with ``context`` (a mapping of strings, sent as JSON; None or empty sends
    no context) and returns :class:`~drasi_host.models.Credentials`;
    :class:`PluginCallError` carries the plugin's message when it refuses.
    """

    _what = "identity provider"
    _required = ("get_credentials_fn", "clone_fn", "drop_fn")

    async def get_credentials(self, context: Mapping[str, str] | None = None) -> Credentials:
        data = b""
        if context:
            if not isinstance(context, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in context.items()
            ):
                raise TypeError(f"{self.label}: a credential context maps str to str")
            data = json.dumps(dict(context), separators=(",", ":"), ensure_ascii=False).encode()
        b = Borrowed()
        ptr, n = b.bytes(data) if data else (NULL, 0)
        vt = self._vt
        result = await self._call(vt.get_credentials_fn, vt.state, ptr, n)
        try:
            return _abi013.take_credentials_result(result, f"{self.label}: get_credentials")
        except DrasiHostError as exc:
            raise self._attributed(exc) from None

    def _clone_vtable(self) -> Any:
        """A fresh ``IdentityProviderVtable`` block holding a new state made by
        the plugin's ``clone_fn``: whoever receives it owns that state and
        drops it with the plugin's ``drop_fn``.  ClosedError once closing;
        DrasiHostError when the plugin's clone_fn returns NULL."""
        vt = self._vt
        with self._life.entered():
            state = vt.clone_fn(vt.state)
        if state == NULL:
            raise DrasiHostError(f"{self.label}: clone_fn returned NULL", plugin=self.plugin)
        block = ffi.new("IdentityProviderVtable *", vt[0])
        block.state = state
        return block


class SecretStoreProxy(_ServiceProxy):
    """A secret store made by a 0.13 plugin (``SecretStoreProviderVtable``).

    ``await get_secret(name)`` returns the secret (a success without a value
    is ``""``); :class:`PluginCallError` carries the plugin's message when the
    lookup fails.  It is a :class:`~drasi_host.protocols.ConfigResolver`
    (``resolve_secret`` is ``get_secret``): as a ``CallbackContext``'s
    ``config_resolver`` it answers other plugins' secret references through
    ``get_secret_fn`` on their own thread, without the event loop.
    """

    _what = "secret store"
    _required = ("get_secret_fn", "drop_fn")

    async def get_secret(self, name: str) -> str:
        if not isinstance(name, str):
            raise TypeError(f"{self.label}: a secret name is a str, not {type(name).__name__}")
        b = Borrowed()
        vt = self._vt
        result = await self._call(vt.get_secret_fn, vt.state, b.str(name))
        return self._take(result, name)

    async def resolve_secret(self, name: str) -> str:
        """:meth:`get_secret` (the :class:`~drasi_host.protocols.ConfigResolver` method)."""
        return await self.get_secret(name)

    def get_secret_blocking(self, name: str) -> str:
        """:meth:`get_secret` on the calling thread, which it blocks (a plugin
        thread serving a config-resolver request; never the event loop)."""
        b = Borrowed()
        vt = self._vt
        with self._life.entered():
            result = vt.get_secret_fn(vt.state, b.str(name))
        return self._take(result, name)

    def _take(self, result: Any, name: str) -> str:
        try:
            return _abi013.take_secret_result(result, f"{self.label}: get_secret({name!r})")
        except DrasiHostError as exc:
            raise self._attributed(exc) from None
