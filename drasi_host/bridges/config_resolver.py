"""The config resolver a 0.13 plugin asks for ``Secret`` configuration values.

A 0.13 library takes one ``(ctx, cb)`` pair through its registration's
``set_config_resolver`` (ABI-0.13.md section 4); the last one set applies to
every component of the library.  The loader sets it for every 0.13 plugin it
loads: ``ctx`` is the key of a :class:`ResolverRoute` in
:data:`drasi_host._callbacks.handles` naming the :class:`CallbackContext` the
plugin was loaded with, and ``cb`` is the C shim ``dh13_config_resolver_ptr``.

The plugin calls ``cb(ctx, json)`` synchronously on one of its threads with
borrowed JSON ``{"kind":"Secret","name":"<name>"}``.  :func:`_resolve` reads
the context's ``config_resolver`` at that moment (so it may be replaced at
any time) and calls its ``resolve_secret(name)``: directly on the plugin
thread when it is a plain function, on the event loop captured at load time
when it is a coroutine function (:class:`~drasi_host.bridges._dispatch.LoopPortal`),
and straight through the plugin's ``get_secret_fn`` on the plugin thread when
it is a :class:`~drasi_host.proxies.services.SecretStoreProxy`.  The answer
is an ``FfiGetSecretResult`` of C-heap strings the plugin frees: the value,
or an error text (no resolver, a malformed request, the resolver raising, a
value that is not a string or holds NUL).  No exception reaches C.
"""

from __future__ import annotations

import json
from typing import Any

from .. import _abi, _abi013
from .._abi013 import CData, ffi
from .._callbacks import c_callback, handles
from ._dispatch import BridgeError, LoopPortal, failure_message

__all__ = ["ResolverRoute", "register_config_resolver"]


class ResolverRoute:
    """What the resolver ``ctx`` of one loaded library names: the callback
    context (whose ``config_resolver`` answers) and the event loop that was
    running when the library was loaded (for coroutine resolvers)."""

    def __init__(self, callbacks: Any, label: str) -> None:
        self.callbacks = callbacks
        self.label = label
        self.portal = LoopPortal(f"config resolver of {label}")
        self.key = handles.add(self)

    def close(self) -> None:
        """Forget the route: later requests naming it are answered with an error."""
        handles.remove(self.key)

    def resolve(self, name: str) -> str:
        """The secret ``name``, from the context's resolver (runs on a plugin thread)."""
        resolver = getattr(self.callbacks, "config_resolver", None)
        if resolver is None:
            raise BridgeError(
                f"no config resolver is configured on the host (CallbackContext("
                f"config_resolver=...)); cannot resolve secret {name!r}"
            )
        from ..proxies.services import SecretStoreProxy  # the proxies import the bridges

        if isinstance(resolver, SecretStoreProxy):
            value = resolver.get_secret_blocking(name)
        else:
            fn = getattr(resolver, "resolve_secret", None)
            if not callable(fn):
                raise BridgeError(
                    f"the config resolver {type(resolver).__name__} has no resolve_secret(name)"
                )
            value = self.portal.adapt(fn, "resolve_secret")(name)
        if not isinstance(value, str):
            raise BridgeError(f"resolve_secret({name!r}) returned {type(value).__name__}, not str")
        return value


def register_config_resolver(
    set_config_resolver: CData, callbacks: Any, label: str
) -> ResolverRoute:
    """Hand the library's ``set_config_resolver`` (a 0.13 function pointer,
    non-NULL) a fresh route to ``callbacks``; the caller closes the route when
    the library's plugin object is released."""
    route = ResolverRoute(callbacks, label)
    set_config_resolver(_abi013.key_ctx(route.key), _abi013.lib.dh13_config_resolver_ptr())
    return route


def _secret_name(text: str) -> str:
    """The name of a ``{"kind":"Secret","name":...}`` request; BridgeError otherwise."""
    try:
        request = json.loads(text)
    except ValueError:
        raise BridgeError(f"config value reference is not valid JSON: {text[:200]!r}") from None
    if not isinstance(request, dict):
        raise BridgeError(f"config value reference is not a JSON object: {text[:200]!r}")
    kind = request.get("kind")
    name = request.get("name")
    if kind != "Secret":
        raise BridgeError(f"config value reference of kind {kind!r} is not supported (only Secret)")
    if not isinstance(name, str):
        raise BridgeError(f"Secret reference without a string name: {text[:200]!r}")
    return name


def _error(exc: BaseException) -> CData:
    return _abi013.secret_error(failure_message(exc))


@ffi.def_extern(name="dh13_py_resolve")  # type: ignore[untyped-decorator]
@c_callback(_error)
def _resolve(ctx: CData, request: CData) -> CData:
    route = handles.get(_abi013.ctx_key(ctx))
    if type(route) is not ResolverRoute:
        raise BridgeError("the plugin's config resolver has been released")
    name = _secret_name(_abi.read_str(request, "config value reference"))
    try:
        value = route.resolve(name)
    except BridgeError:
        raise
    except BaseException as exc:
        raise BridgeError(f"resolving secret {name!r} failed: {failure_message(exc)}") from exc
    return _abi013.secret_result(value)
