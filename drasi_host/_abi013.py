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

from ._ffi import ffi as ffi04
from ._ffi import lib as lib04
from ._ffi013 import ffi, lib

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
    if level <= 0:  # NOTSET: forward everything
        return int(lib.FFI_LOG_FILTER_TRACE)
    if level < 10:
        return int(lib.FFI_LOG_FILTER_TRACE)
    if level < 20:
        return int(lib.FFI_LOG_FILTER_DEBUG)
    if level < 30:
        return int(lib.FFI_LOG_FILTER_INFO)
    if level < 40:
        return int(lib.FFI_LOG_FILTER_WARN)
    return int(lib.FFI_LOG_FILTER_ERROR)
