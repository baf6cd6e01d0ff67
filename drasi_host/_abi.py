"""All marshalling between Python values and the C ABI, in one place.

Rules enforced here (ABI.md section 1):

* plugin strings (``FfiStr``/``FfiOwnedStr``) are copied before use, checked
  for NULL and size, and decoded as strict UTF-8; a violation is a
  :class:`PluginProtocolError` naming what was being read;
* memory a plugin hands over is released with the C heap's ``free`` and only
  when ``cap > 0`` (arrays and strings) or the pointer is non-NULL (messages);
  an owned buffer whose ``len``/``cap`` cannot be true (``len > cap``, or
  ``len > 0`` with ``cap == 0``) is refused without being read or freed;
* every length or pointer a plugin provides is read once, then checked and
  used (the plugin may change its memory meanwhile);
* a C ``bool`` from a plugin must be 0 or 1 (:func:`call_bool`);
* memory the host hands to a plugin comes from ``malloc``; empty owned
  buffers get a dangling non-NULL pointer with ``cap == 0``;
* enum values outside the ABI's lists are reported, never trusted.
"""

from __future__ import annotations

import builtins
import enum
import json
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from ._ffi import ffi, lib
from .errors import PluginCallError, PluginProtocolError
from .models import (
    ComponentEvent,
    CredentialKind,
    Credentials,
    LifecycleEventType,
    LogLevel,
    LogMessage,
)

__all__ = ["ffi", "lib"]

#: Largest plugin string (ids, labels, schemas, messages) the host accepts.
MAX_STRING_LEN = 16 * 1024 * 1024
#: Largest string array (e.g. query ids) the host accepts.
MAX_ARRAY_LEN = 1_000_000

CData = Any
E = TypeVar("E", bound=enum.IntEnum)

NULL = ffi.NULL
_EMPTY = ffi.new("char[1]")  # a valid non-NULL pointer for empty borrowed strings
_DANGLING_STR = ffi.cast("char *", 1)
_DANGLING_ARRAY = ffi.cast("FfiOwnedStr *", 8)
_DANGLING_BYTES = ffi.cast("uint8_t *", 1)


# ---- plugin -> host --------------------------------------------------------


def _checked_bytes(ptr: CData, length: int, what: str) -> bytes:
    if length == 0:
        return b""
    if length > MAX_STRING_LEN:
        raise PluginProtocolError(f"{what}: string of {length} bytes exceeds {MAX_STRING_LEN}")
    if ptr == NULL:
        raise PluginProtocolError(f"{what}: NULL pointer with length {length}")
    return ffi.buffer(ptr, length)[:]  # type: ignore[no-any-return]


def decode_utf8(data: bytes, what: str, *, strict: bool = True) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not strict:
            return data.decode("utf-8", errors="replace")
        raise PluginProtocolError(
            f"{what}: invalid UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None


def read_str(value: CData, what: str, *, strict: bool = True) -> str:
    """Copy a borrowed ``FfiStr`` (its pointer and length are read once)."""
    ptr, n = value.ptr, value.len
    if n == 0:
        return ""
    if n <= MAX_STRING_LEN and ptr != NULL:
        # fast path (state-store keys are read millions of times): valid UTF-8
        try:
            return ffi.unpack(ptr, n).decode("utf-8")  # type: ignore[no-any-return]
        except UnicodeDecodeError:
            pass
    return decode_utf8(_checked_bytes(ptr, n, what), what, strict=strict)


def read_cstring(ptr: CData, what: str) -> str | None:
    """Copy a NUL-terminated string (or None for NULL), replacing bad UTF-8."""
    if ptr == NULL:
        return None
    raw: bytes = ffi.string(ptr, MAX_STRING_LEN)
    return raw.decode("utf-8", errors="replace")


def _check_owned(ptr: CData, n: int, cap: int, what: str, limit: int) -> bool:
    """Check that an owned buffer's ``ptr``, ``len`` and ``cap`` (each read
    once by the caller) can be true.  Returns whether the caller must ``free``
    ``ptr`` once it has copied the ``len`` elements.

    The rules (ABI.md section 1, "``cap == 0`` means no allocation"):

    * ``cap == 0``: nothing was allocated, so only ``len == 0`` is possible;
      ``{ptr = 0x1, len > 0, cap = 0}`` names bytes that do not exist and is
      refused without reading or freeing anything;
    * ``cap > 0``: one allocation of ``cap`` elements at a non-NULL ``ptr``
      holding ``len <= cap`` of them; ``len > cap`` (or a NULL ``ptr``) is
      refused without reading or freeing anything (the pointer cannot be
      trusted, and freeing a wrong pointer corrupts the heap: a leak is the
      safe failure);
    * ``len > limit`` of a consistent allocation is refused unread; the
      allocation is still freed.

    Raises :class:`PluginProtocolError`.
    """
    if cap == 0:
        if n:
            raise PluginProtocolError(
                f"{what}: length {n} with cap 0 (no allocation); not read, not freed"
            )
        return False
    if ptr == NULL:
        raise PluginProtocolError(f"{what}: NULL pointer with cap {cap}")
    if n > cap:
        raise PluginProtocolError(f"{what}: len {n} exceeds cap {cap}; not read, not freed")
    if n > limit:
        lib.free(ptr)
        raise PluginProtocolError(f"{what}: {n} elements exceeds the limit of {limit}")
    return True


def take_owned_str(value: CData, what: str) -> str:
    """Take an ``FfiOwnedStr`` from a plugin: copy it, then free it if ``cap > 0``
    (see :func:`_check_owned` for what is refused)."""
    ptr, n, cap = value.ptr, value.len, value.cap
    owned = _check_owned(ptr, n, cap, what, MAX_STRING_LEN)
    try:
        if n == 0:
            return ""
        return decode_utf8(ffi.buffer(ptr, n)[:], what)
    finally:
        if owned:
            lib.free(ptr)


def take_json_object(value: CData, what: str) -> dict[str, Any]:
    """Take an ``FfiOwnedStr`` holding a JSON object (as :func:`take_owned_str`)
    and parse it; :class:`PluginProtocolError` for invalid JSON or another
    JSON value."""
    value = take_json(value, what)
    if not isinstance(value, dict):
        raise PluginProtocolError(f"{what} is a JSON {type(value).__name__}, not an object")
    return value


def take_json(value: CData, what: str) -> Any:
    """Take an ``FfiOwnedStr`` holding JSON text (as :func:`take_owned_str`)
    and parse it; :class:`PluginProtocolError` for invalid JSON."""
    text = take_owned_str(value, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PluginProtocolError(f"{what} is not valid JSON: {exc}") from None


def take_string_array(value: CData, what: str) -> list[str]:
    """Take an ``FfiStringArray``: copy each string, free each and the array.

    ``data``, ``len`` and ``cap`` are read once and must be possible (see
    :func:`_check_owned`; at most :data:`MAX_ARRAY_LEN` strings); an
    impossible array is refused before any element is read.  A bad element
    is reported after every other element has been taken and freed.
    """
    n = value.len
    if n > MAX_ARRAY_LEN:
        raise PluginProtocolError(f"{what}: array of {n} strings exceeds {MAX_ARRAY_LEN}")
    data, cap = value.data, value.cap
    if n and data == NULL:
        raise PluginProtocolError(f"{what}: NULL array with length {n}")
    owned = _check_owned(data, n, cap, what, MAX_ARRAY_LEN)
    out: list[str] = []
    error: PluginProtocolError | None = None
    for i in range(n):
        # one read of the plugin's memory (either module's FfiOwnedStr)
        element = ffi.new(ffi.typeof(data), data[i])
        try:
            out.append(take_owned_str(element[0], f"{what}[{i}]"))
        except PluginProtocolError as exc:
            error = error or exc
    if owned:
        lib.free(data)
    if error is not None:
        raise error
    return out


def take_error_msg(ptr: CData) -> str | None:
    """Copy and free a plugin's heap error message."""
    if ptr == NULL:
        return None
    try:
        return read_cstring(ptr, "error message")
    finally:
        lib.free(ptr)


def check_result(result: CData, what: str, *, component: str | None = None) -> None:
    """Turn an ``FfiResult`` into None or a :class:`PluginCallError` (message freed)."""
    message = take_error_msg(result.error_msg)
    if result.error_code != 0:
        raise PluginCallError(
            f"{what} failed with code {result.error_code}",
            plugin_message=message,
            error_code=int(result.error_code),
            component=component,
        )


def require_functions(vt: CData, names: Iterable[builtins.str], what: builtins.str) -> None:
    """Refuse a plugin vtable whose required function pointers are NULL."""
    missing = [n for n in names if getattr(vt, n) == NULL]
    if missing:
        raise PluginProtocolError(f"{what}: NULL function pointer(s): {', '.join(missing)}")


def c_int(value: int) -> int:
    """A 4-byte C enum value as the signed ``int`` it is (cffi reads enums
    without negative members back unsigned: -1 would show as 4294967295)."""
    value = int(value)
    return value - 2**32 if value >= 2**31 else value


def to_enum(cls: type[E], value: int, what: str) -> E:
    value = c_int(value)
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(f"{m.name}={m.value}" for m in cls)
        raise PluginProtocolError(
            f"{what}: {value} is not a valid {cls.__name__} ({allowed})"
        ) from None


def call_bool(fn: CData, *args: Any, what: str) -> bool:
    """Call a plugin function returning a C ``bool`` and check the byte.

    A C99 ``_Bool`` (and a Rust ``bool``) holds 0 or 1; anything else (say
    0x42 left in the return register) is a plugin bug, reported as
    :class:`PluginProtocolError` rather than guessed at.  The function is
    called through a pointer of the same type returning ``uint8_t``, so the
    raw byte is seen (cffi would refuse it with a bare ``ValueError``).
    """
    ftype = ffi.typeof(fn)
    params = ", ".join(arg.cname for arg in ftype.args)
    raw = int(ffi.cast(f"uint8_t (*)({params})", fn)(*args))
    if raw > 1:
        raise PluginProtocolError(f"{what}: returned {raw:#x}, not a C bool (0 or 1)")
    return raw == 1


# ---- host -> plugin (borrowed for one call) ------------------------------


class Borrowed:
    """Keeps the buffers behind borrowed ``FfiStr`` values alive for one call.

    ``decl`` is the cffi declaration set whose ``FfiStr`` is made (the 0.4
    one by default; :mod:`drasi_host._abi013`'s for 0.13 calls: the layout is
    the same, the cffi types are not)."""

    __slots__ = ("_ffi", "_keep")

    def __init__(self, decl: Any = ffi) -> None:
        self._keep: list[CData] = []
        self._ffi = decl

    def str(self, text: str | bytes) -> CData:
        """An ``FfiStr`` (by value) pointing at a copy of ``text``."""
        data = text.encode("utf-8") if isinstance(text, str) else text
        s = self._ffi.new("FfiStr *")
        if data:
            buf = ffi.new("char[]", data)
            self._keep.append(buf)
            s.ptr = buf
        else:
            s.ptr = _EMPTY
        s.len = len(data)
        self._keep.append(s)
        return s[0]

    def str_array(self, items: Sequence[builtins.str]) -> tuple[CData, int]:
        """A ``const FfiStr *`` array and its length."""
        arr = self._ffi.new("FfiStr[]", max(len(items), 1))
        for i, item in enumerate(items):
            arr[i] = self.str(item)
        self._keep.append(arr)
        return arr, len(items)


# ---- host -> plugin (ownership passes to the plugin) ---------------------


def malloc_bytes(data: bytes) -> CData:
    """A ``uint8_t *`` copy of ``data`` on the C heap (the plugin frees it)."""
    ptr = ffi.cast("uint8_t *", lib.malloc(max(len(data), 1)))
    if ptr == NULL:
        raise MemoryError("malloc failed")
    if data:
        ffi.memmove(ptr, data, len(data))
    return ptr


def malloc_cstring(text: str) -> CData:
    """A NUL-terminated C-heap copy of ``text`` (the plugin frees it)."""
    data = text.encode("utf-8", errors="replace").replace(b"\x00", b"\\0") + b"\x00"
    return ffi.cast("char *", malloc_bytes(data))


def owned_str(text: str) -> CData:
    """An ``FfiOwnedStr`` value for a plugin: malloc'd, or dangling with cap 0 when empty."""
    data = text.encode("utf-8")
    value = ffi.new("FfiOwnedStr *")
    if data:
        value.ptr = ffi.cast("char *", malloc_bytes(data))
        value.len = value.cap = len(data)
    else:
        value.ptr = _DANGLING_STR
    return value[0]


def string_array(items: Iterable[str]) -> CData:
    """An ``FfiStringArray`` value for a plugin (all C heap; empty = dangling, cap 0)."""
    strs = [owned_str(s) for s in items]
    value = ffi.new("FfiStringArray *")
    if strs:
        data = ffi.cast("FfiOwnedStr *", lib.malloc(ffi.sizeof("FfiOwnedStr") * len(strs)))
        if data == NULL:
            raise MemoryError("malloc failed")
        for i, s in enumerate(strs):
            data[i] = s
        value.data = data
        value.len = value.cap = len(strs)
    else:
        value.data = _DANGLING_ARRAY
    return value[0]


def ok_result() -> CData:
    return ffi.new("FfiResult *")[0]


def error_result(message: str, code: int = 1) -> CData:
    value = ffi.new("FfiResult *")
    value.error_code = code
    value.error_msg = malloc_cstring(message)
    return value[0]


def get_found(data: bytes) -> CData:
    n = len(data)
    if not n:
        return ffi.new("FfiGetResult *", [_DANGLING_BYTES, 0, 0, True])[0]
    ptr = lib.malloc(n)
    if ptr == NULL:
        raise MemoryError("malloc failed")
    ffi.memmove(ptr, data, n)
    return ffi.new("FfiGetResult *", [ptr, n, n, True])[0]


def get_not_found() -> CData:
    value = ffi.new("FfiGetResult *")
    value.data = _DANGLING_BYTES
    return value[0]


def get_error(message: str, code: int = 1) -> CData:
    value = ffi.new("FfiGetResult *")
    value.data = _DANGLING_BYTES
    value.error_code = code
    value.error_msg = malloc_cstring(message)
    return value[0]


def read_bytes(ptr: CData, length: int, what: str, limit: int) -> bytes:
    """Copy ``length`` bytes a plugin lends (e.g. a state-store value)."""
    if length == 0:
        return b""
    if length > limit:
        raise PluginProtocolError(f"{what}: {length} bytes exceeds the limit of {limit}")
    if ptr == NULL:
        raise PluginProtocolError(f"{what}: NULL pointer with length {length}")
    return ffi.buffer(ptr, length)[:]  # type: ignore[no-any-return]


def ctx_key(ctx: CData) -> int:
    """The table key a context pointer carries."""
    return int(ffi.cast("uintptr_t", ctx))


def key_ctx(key: int) -> CData:
    return ffi.cast("void *", key)


# ---- callbacks' structs -----------------------------------------------------


def read_log_entry(entry: CData) -> LogMessage:
    """Copy an ``FfiLogEntry`` (bad UTF-8 replaced).

    A level outside the ABI's list (say -1, or 7) is not trusted: the message
    is kept at ERROR with the prefix ``[invalid log level <n>]`` naming the
    signed value the plugin sent.  Each field is read once."""
    raw = c_int(entry.level)
    try:
        level = LogLevel(raw)
        prefix = ""
    except ValueError:
        level = LogLevel.ERROR
        prefix = f"[invalid log level {raw}] "
    return LogMessage(
        level,
        prefix + read_str(entry.message, "log message", strict=False),
        read_str(entry.instance_id, "log instance_id", strict=False),
        read_str(entry.component_id, "log component_id", strict=False),
        read_str(entry.plugin_id, "log plugin_id", strict=False),
        read_str(entry.target, "log target", strict=False),
        int(entry.timestamp_us),
    )


def read_lifecycle_event(event: CData) -> tuple[ComponentEvent, str]:
    """Copy an ``FfiLifecycleEvent`` as a :class:`ComponentEvent` and its component type."""
    kind = to_enum(LifecycleEventType, event.event_type, "lifecycle event type")
    component_type = read_str(event.component_type, "lifecycle component_type", strict=False)
    return (
        ComponentEvent(
            read_str(event.component_id, "lifecycle component_id", strict=False),
            component_type,
            kind.to_status(),
            read_str(event.message, "lifecycle message", strict=False),
            int(event.timestamp_us),
        ),
        component_type,
    )


# ---- host services: state-store arguments and credentials ----------------
#
# Used by the state-store and identity bridges (drasi_host.bridges).


def read_str_array(ptr: CData, n: int, what: str) -> list[str]:
    """Copy ``n`` borrowed ``FfiStr`` values from a ``const FfiStr *`` array."""
    if n == 0:
        return []
    if n > MAX_ARRAY_LEN:
        raise PluginProtocolError(f"{what}: array of {n} strings exceeds {MAX_ARRAY_LEN}")
    if ptr == NULL:
        raise PluginProtocolError(f"{what}: NULL array with length {n}")
    return [read_str(ptr[i], f"{what}[{i}]") for i in range(n)]


def read_bytes_array(values: CData, lens: CData, n: int, what: str, limit: int) -> list[bytes]:
    """Copy ``n`` borrowed byte buffers given as parallel pointer and length arrays."""
    if n == 0:
        return []
    if n > MAX_ARRAY_LEN:
        raise PluginProtocolError(f"{what}: array of {n} values exceeds {MAX_ARRAY_LEN}")
    if values == NULL or lens == NULL:
        raise PluginProtocolError(f"{what}: NULL value or length array with length {n}")
    return [read_bytes(values[i], lens[i], f"{what}[{i}]", limit) for i in range(n)]


def discard_get_result(value: CData) -> None:
    """Free what an ``FfiGetResult`` built by :func:`get_found`/:func:`get_error`
    owns, when it will not be handed to a plugin after all."""
    if value.cap > 0 and value.data != NULL:
        lib.free(value.data)
    if value.error_msg != NULL:
        lib.free(value.error_msg)


def credentials_result(credentials: Credentials) -> CData:
    """A successful ``FfiCredentialsResult``: NUL-terminated C-heap fields per
    credential kind (UsernamePassword: username, password; Token: username,
    token; Certificate: cert PEM, key PEM, username or NULL); unused fields NULL."""
    kind = credentials.kind
    fields: tuple[str | None, str | None, str | None]
    if kind is CredentialKind.USERNAME_PASSWORD:
        fields = (credentials.username, credentials.password, None)
    elif kind is CredentialKind.TOKEN:
        fields = (credentials.username, credentials.token, None)
    elif kind is CredentialKind.CERTIFICATE:
        fields = (credentials.cert_pem, credentials.key_pem, credentials.username)
    else:  # pragma: no cover - CredentialKind has exactly three members
        raise ValueError(f"unknown credential kind {kind!r}")
    value = ffi.new("FfiCredentialsResult *")
    value.credentials.credential_type = int(kind)
    out = value.credentials
    try:
        for name, text in zip(("field1", "field2", "field3"), fields, strict=True):
            if text is not None:
                setattr(out, name, malloc_cstring(text))
    except BaseException:
        for name in ("field1", "field2", "field3"):
            ptr = getattr(out, name)
            if ptr != NULL:
                lib.free(ptr)
        raise
    return value[0]


def credentials_error(message: str, code: int = 1) -> CData:
    """A failed ``FfiCredentialsResult``: a C-heap message, NULL credential strings."""
    value = ffi.new("FfiCredentialsResult *")
    value.error_code = code
    value.error_msg = malloc_cstring(message)
    return value[0]


# ---- host-built bootstrap events (host -> plugin) --------------------------
#
# Used by the bootstrap bridge (drasi_host.proxies.bootstrap) to hand events
# from a Python bootstrap provider to a source plugin's FfiBootstrapSender.


def host_bootstrap_event(
    document: bytes,
    source_id: str,
    label: str,
    entity_id: str,
    timestamp_us: int,
    sequence: int,
) -> CData:
    """A borrowed ``FfiBootstrapEvent *`` envelope whose payload the receiver takes.

    ``opaque`` is one C-heap block from ``dh_payload_new``: the
    ``DrasiPayload`` header, the document, then the three routing hints.  The
    payload's ``len`` covers only the document; the envelope's ``FfiStr``
    hints point behind it, so they stay valid exactly until the payload is
    released, and ``drop_fn`` (``dh_payload_event_drop``) releases it all.
    The envelope itself is Python memory, borrowed for the ``send_fn`` call.
    Until the envelope is sent, :func:`release_host_event` frees the payload.
    """
    hints = [source_id.encode("utf-8"), label.encode("utf-8"), entity_id.encode("utf-8")]
    block = b"".join((document, *hints))
    payload = lib.dh_payload_new(block, len(block))
    if payload == NULL:
        raise MemoryError("malloc failed for a bootstrap event payload")
    payload.len = len(document)
    event = ffi.new("FfiBootstrapEvent *")
    try:
        event.timestamp_us = timestamp_us
        event.sequence = sequence
    except OverflowError:
        lib.dh_payload_event_drop(payload)
        raise
    base = ffi.cast("const char *", payload.data)
    offset = len(document)
    for name, hint in zip(("source_id", "label", "entity_id"), hints, strict=True):
        field = getattr(event, name)
        field.ptr = base + offset if hint else _EMPTY
        field.len = len(hint)
        offset += len(hint)
    event.opaque = payload
    event.drop_fn = ffi.addressof(lib, "dh_payload_event_drop")
    return event


def release_host_event(event: CData) -> None:
    """Release the payload of an envelope from :func:`host_bootstrap_event`
    that was never handed to a plugin."""
    if event.opaque != NULL:
        lib.dh_payload_event_drop(event.opaque)
        event.opaque = NULL
