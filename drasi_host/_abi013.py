"""The FFI 0.13 declarations of the host (``drasi_host._ffi013``).

The 0.13 generation declares the same type names as the 0.4 one at other
layouts, so its declarations live in a cffi module of their own
(``ffi_build/build_ffi013.py`` over ``cdefs/drasi_plugin_0_13.h``).  The
unchanged primitives (``FfiStr``, ``FfiOwnedStr``, ``FfiResult``, the log and
lifecycle callbacks) keep the marshalling of :mod:`drasi_host._abi`, which
reads cdata of either module.

Importing this module connects the two: the 0.13 callbacks of ``_ffi013``
(event pushes, the end-of-bootstrap result) get the channel entries of
``_ffi`` they feed, and the channels of ``_ffi`` get the 0.13 result
envelope functions of ``_ffi013`` (``ffi_build/chanops.h``).  The callback
pointers a 0.13 plugin is given are :func:`change_push_ptr`,
:func:`bootstrap_push_ptr`, :func:`bootstrap_result_ptr` and
:func:`result_push_ptr`, each with a channel key as its context.
"""

from __future__ import annotations

from typing import Any

from . import _abi
from ._ffi import ffi as ffi04
from ._ffi import lib as lib04
from ._ffi013 import ffi, lib
from .errors import PluginCallError, PluginProtocolError
from .models import CredentialKind, Credentials, LogLevel

__all__ = [
    "bootstrap_push_ptr",
    "bootstrap_result_ptr",
    "cast_fn",
    "change_push_ptr",
    "ffi",
    "leaked_payloads",
    "lib",
    "log_filter",
    "result_push_ptr",
]

CData = Any

NULL = ffi.NULL


def cast_fn(ctype: str, ptr: CData) -> CData:
    """``ptr`` (a pointer of either module, e.g. a ``dlsym`` result or a 0.4
    callback pointer) as the 0.13 function-pointer type ``ctype``."""
    return ffi.cast(ctype, int(ffi04.cast("uintptr_t", ptr)))


def _addr(ptr: CData, module_ffi: Any) -> int:
    return int(module_ffi.cast("uintptr_t", ptr))


def _connect() -> None:
    """Hand each module the other's functions (idempotent)."""
    lib.dh13_set_channel_ops(
        ffi.cast("DhPushBytesFn", _addr(lib04.dh_event_push_source_bytes_ptr(), ffi04)),
        ffi.cast("DhPushBytesFn", _addr(lib04.dh_event_push_bootstrap_bytes_ptr(), ffi04)),
        ffi.cast("DhEndStreamFn", _addr(lib04.dh_event_end_stream_ptr(), ffi04)),
        ffi.cast("DhStoreOutcomeFn", _addr(lib04.dh_bootstrap_outcome_store_ptr(), ffi04)),
    )
    lib04.dh_results_set_envelope013(
        ffi04.cast("DhResultMakeFn", _addr(lib.dh13_result_make_ptr(), ffi)),
        ffi04.cast("DhResultFreeFn", _addr(lib.dh13_result_free_ptr(), ffi)),
    )


_connect()


def change_push_ptr() -> CData:
    """The ``FfiChangePushCallbackFn`` for an ``FfiChangeReceiver``'s
    ``start_push_fn``; its context is the key of a 0.13 source-event channel."""
    return lib.dh13_change_push_ptr()


def bootstrap_push_ptr() -> CData:
    """The ``FfiBootstrapPushCallbackFn`` for an ``FfiBootstrapReceiver``'s
    ``start_push_fn``; its context is the key of a 0.13 bootstrap-event channel."""
    return lib.dh13_bootstrap_push_ptr()


def bootstrap_result_ptr() -> CData:
    """The ``FfiBootstrapResultCallbackFn`` for an ``FfiBootstrapResultReceiver``'s
    ``start_fn``; its context is the key of the same 0.13 bootstrap-event
    channel the events go to."""
    return lib.dh13_bootstrap_result_ptr()


def result_push_ptr() -> CData:
    """The 0.13 ``FfiResultPushCallbackFn`` for ``start_result_push_fn``; its
    context is the key of a 0.13 result channel."""
    return cast_fn("FfiResultPushCallbackFn", lib04.dh_result_pull013_ptr())


def leaked_payloads() -> int:
    """Payload buffers of 0.13 events leaked because their drop function was
    NULL (a plugin bug), since the process started."""
    return int(lib.dh13_leaked_payloads())


def log_filter(level: int) -> int:
    """The ``FfiLogLevelFilter`` for a Python ``logging`` level: a record of
    that level or above passes the plugin's filter.  Levels below ``DEBUG``
    (the host's ``TRACE``) mean Trace; above ``ERROR``, Error (the 0.13 log
    levels have nothing above Error)."""
    if level < 10:  # also NOTSET (0): forward everything
        return int(lib.FFI_LOG_FILTER_TRACE)
    if level < 20:
        return int(lib.FFI_LOG_FILTER_DEBUG)
    if level < 30:
        return int(lib.FFI_LOG_FILTER_INFO)
    if level < 40:
        return int(lib.FFI_LOG_FILTER_WARN)
    return int(lib.FFI_LOG_FILTER_ERROR)


def level_filter(level: LogLevel | int) -> int:
    """The ``FfiLogLevelFilter`` for a :class:`~drasi_host.models.LogLevel`
    (records of that level or more severe pass) or a ``logging`` level number
    (see :func:`log_filter`); TypeError for anything else (also ``bool``)."""
    if isinstance(level, LogLevel):
        return int(lib.dh13_log_filter_clamp(int(level) + 1))
    if isinstance(level, bool) or not isinstance(level, int):
        raise TypeError(
            f"a log level is a LogLevel or a logging level number, not {type(level).__name__}"
        )
    return int(lib.dh13_log_filter_clamp(log_filter(level)))


def ctx_key(ctx: CData) -> int:
    """The table key a 0.13 context or state pointer carries."""
    return int(ffi.cast("uintptr_t", ctx))


def key_ctx(key: int) -> CData:
    """A table key as a 0.13 ``void *`` context."""
    return ffi.cast("void *", key)


class Borrowed(_abi.Borrowed):
    """Keeps the buffers behind borrowed 0.13 ``FfiStr`` values (and byte
    buffers) alive for one call."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(ffi)

    def bytes(self, data: bytes) -> tuple[CData, int]:
        """A borrowed ``const uint8_t *`` copy of ``data`` and its length."""
        buf = ffi.new("uint8_t[]", max(len(data), 1))
        if data:
            ffi.memmove(buf, data, len(data))
        self._keep.append(buf)
        return buf, len(data)


def secret_result(value: str) -> CData:
    """A successful ``FfiGetSecretResult``: ``value`` as a C-heap string the
    plugin frees.  ValueError for a value holding NUL (it cannot cross)."""
    if "\x00" in value:
        raise ValueError("the secret contains a NUL character, which cannot be passed to C")
    out = ffi.new("FfiGetSecretResult *")
    out.value = ffi.cast("char *", _abi.malloc_cstring(value))
    return out[0]


def secret_error(message: str) -> CData:
    """A failed ``FfiGetSecretResult`` carrying ``message`` (C heap), no value."""
    return _error_result("FfiGetSecretResult", message or "secret lookup failed")


def credentials_result(credentials: Any) -> CData:
    """A successful 0.13 ``FfiCredentialsResult`` (layout unchanged from 0.4;
    C-heap fields as :func:`drasi_host._abi.credentials_result`)."""
    value = _abi.credentials_result(credentials)
    out = ffi.new("FfiCredentialsResult *")
    out.credentials.credential_type = int(value.credentials.credential_type)
    for name in ("field1", "field2", "field3"):
        setattr(out.credentials, name, ffi.cast("char *", getattr(value.credentials, name)))
    return out[0]


def credentials_error(message: str) -> CData:
    """A failed 0.13 ``FfiCredentialsResult``: a C-heap message, NULL fields."""
    return _error_result("FfiCredentialsResult", message or "credentials refused")


def _error_result(ctype: str, message: str) -> CData:
    """A ``ctype`` (by value) with error code 1 and ``message`` on the C
    heap for the plugin to free; every other field zero."""
    out = ffi.new(f"{ctype} *")
    out.error_code = 1
    out.error_msg = ffi.cast("char *", _abi.malloc_cstring(message))
    return out[0]


def _take_cstring(ptr: CData, what: str) -> str | None:
    """Copy a plugin's C-heap string as strict UTF-8 and free it (None for NULL);
    freed also when it is refused."""
    if ptr == NULL:
        return None
    try:
        raw: bytes = ffi.string(ptr, _abi.MAX_STRING_LEN)
    finally:
        lib.free(ptr)
    return _abi.decode_utf8(raw, what)


def take_secret_result(value: CData, what: str) -> str:
    """Take a plugin's ``FfiGetSecretResult``: the secret ("" for success with
    a NULL value), or :class:`PluginCallError` with the plugin's message.
    Both strings are freed whatever happens."""
    code, message_ptr, value_ptr = int(value.error_code), value.error_msg, value.value
    message = _abi.take_error_msg(message_ptr)
    if code != 0:
        if value_ptr != NULL:
            lib.free(value_ptr)
        raise PluginCallError(f"{what} failed", plugin_message=message, code=code)
    return _take_cstring(value_ptr, f"{what} value") or ""


def take_credentials_result(value: CData, what: str) -> Credentials:
    """Take a plugin's ``FfiCredentialsResult`` (the inverse of
    :func:`credentials_result`): every string is copied and freed, then the
    result is a :class:`Credentials`, a :class:`PluginCallError` carrying the
    plugin's message, or a :class:`PluginProtocolError` (unknown credential
    type, a required field NULL, invalid UTF-8)."""
    code = int(value.error_code)
    message_ptr = value.error_msg
    creds = value.credentials
    kind_raw = _abi.c_int(creds.credential_type)
    pointers = (creds.field1, creds.field2, creds.field3)
    texts: list[str | None] = []
    error: BaseException | None = None
    message = _abi.take_error_msg(message_ptr)
    for i, ptr in enumerate(pointers):
        try:
            texts.append(_take_cstring(ptr, f"{what} field{i + 1}"))
        except PluginProtocolError as exc:
            texts.append(None)
            error = error or exc
    if code != 0:
        raise PluginCallError(f"{what} failed", plugin_message=message, code=code)
    if error is not None:
        raise error
    try:
        kind = CredentialKind(kind_raw)
    except ValueError:
        raise PluginProtocolError(f"{what}: unknown credential type {kind_raw}") from None
    f1, f2, f3 = texts
    try:
        if kind is CredentialKind.USERNAME_PASSWORD:
            return Credentials(kind, username=f1, password=f2)
        if kind is CredentialKind.TOKEN:
            return Credentials(kind, username=f1, token=f2)
        return Credentials(kind, cert_pem=f1, key_pem=f2, username=f3)
    except ValueError as exc:
        raise PluginProtocolError(f"{what}: {exc}") from None
