"""The FFI 0.13 declarations of the host (``drasi_host._ffi013``).

The 0.13 generation declares the same type names as the 0.4 one at other
layouts, so its declarations live in a cffi module of their own
(``ffi_build/build_ffi013.py`` over ``cdefs/drasi_plugin_0_13.h``).  The
unchanged primitives (``FfiStr``, ``FfiOwnedStr``, ``FfiResult``, the log and
lifecycle callbacks) keep the marshalling of :mod:`drasi_host._abi`, which
reads cdata of either module.
"""

from __future__ import annotations

from typing import Any

from ._ffi import ffi as ffi04
from ._ffi013 import ffi, lib

__all__ = ["cast_fn", "ffi", "lib", "log_filter"]

CData = Any

NULL = ffi.NULL


def cast_fn(ctype: str, ptr: CData) -> CData:
    """``ptr`` (a pointer of either module, e.g. a ``dlsym`` result or a 0.4
    callback pointer) as the 0.13 function-pointer type ``ctype``."""
    return ffi.cast(ctype, int(ffi04.cast("uintptr_t", ptr)))


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
