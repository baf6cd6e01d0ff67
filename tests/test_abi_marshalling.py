"""Properties of the marshalling helpers of ``drasi_host._abi``.

Everything goes through the real C heap of the compiled module: strings and
arrays the host builds for plugins are ``malloc``'d and taken back (and
``free``'d) the way a plugin's would be, and plugin-side structs are built
with ``ffi.new`` and ``lib.malloc`` exactly as a plugin lays them out.  The
ownership rules of ABI.md section 1 are checked directly: an empty owned
buffer has ``cap == 0`` and a dangling non-NULL pointer (which is never
freed: freeing ``0x1`` would abort the process), over-long lengths are
refused before any byte is read, and error messages are freed (checked with
glibc's ``mallinfo2`` where available).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drasi_host import _abi
from drasi_host._abi import ffi, lib
from drasi_host.errors import PluginCallError, PluginProtocolError
from drasi_host.models import (
    ChangeOp,
    ComponentStatus,
    CredentialKind,
    DispatchMode,
    LifecycleEventType,
    LogLevel,
)

ALL_ENUMS: list[type[enum.IntEnum]] = [
    ComponentStatus,
    ChangeOp,
    DispatchMode,
    LogLevel,
    LifecycleEventType,
    CredentialKind,
]

int32s = st.integers(min_value=-(2**31), max_value=2**31 - 1)
invalid_utf8 = st.binary(min_size=1, max_size=64).filter(lambda b: not _decodes(b))


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_null(ptr: object) -> bool:
    return bool(ptr == ffi.NULL)


def _plugin_owned_str(data: bytes) -> Any:
    """An ``FfiOwnedStr`` as a plugin returns it: malloc'd bytes, cap == len."""
    value = ffi.new("FfiOwnedStr *")
    if data:
        buf = ffi.cast("char *", lib.malloc(len(data)))
        ffi.memmove(buf, data, len(data))
        value.ptr = buf
        value.len = value.cap = len(data)
    else:
        value.ptr = ffi.cast("char *", 1)
    return value[0]


def _borrowed(data: bytes) -> tuple[Any, Any]:
    """A borrowed ``FfiStr`` over ``data`` (and the buffer keeping it alive)."""
    buf = ffi.new("char[]", data)
    value = ffi.new("FfiStr *", {"ptr": buf, "len": len(data)})
    return value[0], buf


# ---- FfiOwnedStr ------------------------------------------------------------


@settings(deadline=None)
@given(st.text())
def test_owned_str_round_trip(text: str) -> None:
    value = _abi.owned_str(text)
    encoded = text.encode("utf-8")
    assert value.len == len(encoded)
    assert not _is_null(value.ptr)
    if encoded:
        assert value.cap == len(encoded)
        assert ffi.buffer(value.ptr, value.len)[:] == encoded
    else:
        assert value.cap == 0  # never allocated; take_owned_str must not free it
    assert _abi.take_owned_str(value, "owned") == text


@settings(deadline=None)
@given(st.binary(max_size=200))
def test_take_owned_str_from_plugin(data: bytes) -> None:
    value = _plugin_owned_str(data)
    if _decodes(data):
        assert _abi.take_owned_str(value, "schema") == data.decode("utf-8")
    else:
        with pytest.raises(PluginProtocolError, match=r"^schema: invalid UTF-8"):
            _abi.take_owned_str(value, "schema")


def test_take_owned_str_len_beyond_cap() -> None:
    value = _plugin_owned_str(b"abcdef")
    value.len = 100  # a plugin bug: reading 100 bytes would overrun the block
    with pytest.raises(PluginProtocolError, match="len 100 exceeds cap 6"):
        _abi.take_owned_str(value, "schema")


def test_take_owned_str_dangling_empty() -> None:
    for dangling in (1, 8):
        value = ffi.new("FfiOwnedStr *", {"ptr": ffi.cast("char *", dangling)})[0]
        assert _abi.take_owned_str(value, "empty") == ""


# ---- FfiStringArray ----------------------------------------------------------


@settings(deadline=None)
@given(st.lists(st.text(max_size=40), max_size=20))
def test_string_array_round_trip(items: list[str]) -> None:
    value = _abi.string_array(items)
    assert value.len == len(items)
    assert not _is_null(value.data)
    if items:
        assert value.cap == len(items)
        for i, item in enumerate(items):
            s = value.data[i]
            assert s.len == len(item.encode("utf-8"))
            assert not _is_null(s.ptr)
    else:
        assert value.cap == 0
    assert _abi.take_string_array(value, "query ids") == items


def test_take_string_array_bad_element_frees_the_rest() -> None:
    arr = ffi.cast("FfiOwnedStr *", lib.malloc(3 * ffi.sizeof("FfiOwnedStr")))
    for i, data in enumerate([b"q1", b"\xff\xfe", b"q3"]):
        arr[i] = _plugin_owned_str(data)
    value = ffi.new("FfiStringArray *", {"data": arr, "len": 3, "cap": 3})[0]
    with pytest.raises(PluginProtocolError, match=r"query ids\[1\]: invalid UTF-8"):
        _abi.take_string_array(value, "query ids")


def test_take_string_array_null_data() -> None:
    value = ffi.new("FfiStringArray *", {"data": ffi.NULL, "len": 2, "cap": 2})[0]
    with pytest.raises(PluginProtocolError, match="NULL array with length 2"):
        _abi.take_string_array(value, "query ids")


def test_take_string_array_oversize_is_not_read() -> None:
    # A dangling pointer: any read would crash, so the length must be refused first.
    n = _abi.MAX_ARRAY_LEN + 1
    value = ffi.new("FfiStringArray *", {"data": ffi.cast("FfiOwnedStr *", 8), "len": n, "cap": 0})[
        0
    ]
    with pytest.raises(PluginProtocolError, match=f"array of {n} strings exceeds"):
        _abi.take_string_array(value, "query ids")


def test_take_string_array_empty_dangling() -> None:
    value = ffi.new("FfiStringArray *", {"data": ffi.cast("FfiOwnedStr *", 8)})[0]
    assert _abi.take_string_array(value, "query ids") == []


# ---- borrowed FfiStr -----------------------------------------------------------


@settings(deadline=None)
@given(st.text())
def test_borrowed_str_round_trip(text: str) -> None:
    borrowed = _abi.Borrowed()
    value = borrowed.str(text)
    assert value.len == len(text.encode("utf-8"))
    assert not _is_null(value.ptr)
    assert _abi.read_str(value, "id") == text


@settings(deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=30).map(lambda s: f"\x00{s}\x00"))
def test_borrowed_str_keeps_interior_nul(text: str) -> None:
    value = _abi.Borrowed().str(text)
    assert value.len == len(text.encode("utf-8"))
    assert _abi.read_str(value, "id") == text


@settings(deadline=None)
@given(st.binary())
def test_borrowed_bytes_round_trip(data: bytes) -> None:
    value = _abi.Borrowed().str(data)
    assert value.len == len(data)
    assert _abi._checked_bytes(value.ptr, value.len, "bytes") == data


def test_borrowed_str_non_ascii() -> None:
    text = "Ærøskøbing / 東京 / 🦀 / Ω"
    assert _abi.read_str(_abi.Borrowed().str(text), "id") == text


@settings(deadline=None)
@given(st.lists(st.text(max_size=20), max_size=10))
def test_borrowed_str_array(items: list[str]) -> None:
    borrowed = _abi.Borrowed()
    arr, n = borrowed.str_array(items)
    assert n == len(items)
    assert [_abi.read_str(arr[i], "label") for i in range(n)] == items


@settings(deadline=None)
@given(invalid_utf8)
def test_read_str_invalid_utf8(data: bytes) -> None:
    value, _keep = _borrowed(data)
    with pytest.raises(PluginProtocolError, match=r"^entity id: invalid UTF-8 \("):
        _abi.read_str(value, "entity id")
    assert _abi.read_str(value, "entity id", strict=False) == data.decode("utf-8", errors="replace")


@settings(deadline=None)
@given(st.integers(min_value=1, max_value=2**63))
def test_read_str_null_with_length(length: int) -> None:
    value = ffi.new("FfiStr *", {"ptr": ffi.NULL, "len": length})[0]
    with pytest.raises(PluginProtocolError, match="source id"):
        _abi.read_str(value, "source id")


@settings(deadline=None)
@given(st.integers(min_value=_abi.MAX_STRING_LEN + 1, max_value=2**64 - 1))
def test_read_str_oversize_is_not_read(length: int) -> None:
    # ptr is a dangling 0x1: reading even one byte would crash the process.
    value = ffi.new("FfiStr *", {"ptr": ffi.cast("char *", 1), "len": length})[0]
    with pytest.raises(PluginProtocolError, match=f"string of {length} bytes exceeds"):
        _abi.read_str(value, "label")


def test_read_str_empty_with_any_pointer() -> None:
    for ptr in (ffi.NULL, ffi.cast("char *", 1), ffi.cast("char *", 8)):
        value = ffi.new("FfiStr *", {"ptr": ptr, "len": 0})[0]
        assert _abi.read_str(value, "label") == ""


def test_read_str_at_the_limit_reads_exactly_len() -> None:
    data = b"abc" + b"\xff" * 3  # only the first 3 bytes are in the string
    value, _keep = _borrowed(data)
    value.len = 3
    assert _abi.read_str(value, "label") == "abc"


# ---- NUL-terminated strings, byte buffers, context keys ----------------------


@settings(deadline=None)
@given(st.text())
def test_malloc_cstring(text: str) -> None:
    ptr = _abi.malloc_cstring(text)
    try:
        expected = text.encode("utf-8").replace(b"\x00", b"\\0")
        assert ffi.string(ptr) == expected
        assert ptr[len(expected)] == b"\x00"
        assert _abi.read_cstring(ptr, "msg") == text.replace("\x00", "\\0")
    finally:
        lib.free(ptr)


def test_read_cstring_null_and_bad_utf8() -> None:
    assert _abi.read_cstring(ffi.NULL, "msg") is None
    buf = ffi.new("char[]", b"bad \xff byte")
    assert _abi.read_cstring(buf, "msg") == "bad \ufffd byte"


@settings(deadline=None)
@given(st.binary(max_size=300))
def test_malloc_bytes_and_read_bytes(data: bytes) -> None:
    ptr = _abi.malloc_bytes(data)
    try:
        assert not _is_null(ptr)
        assert _abi.read_bytes(ptr, len(data), "value", limit=1000) == data
    finally:
        lib.free(ptr)


def test_read_bytes_limits() -> None:
    with pytest.raises(PluginProtocolError, match="value: NULL pointer with length 4"):
        _abi.read_bytes(ffi.NULL, 4, "value", limit=10)
    with pytest.raises(PluginProtocolError, match="11 bytes exceeds the limit of 10"):
        _abi.read_bytes(ffi.cast("uint8_t *", 1), 11, "value", limit=10)
    assert _abi.read_bytes(ffi.NULL, 0, "value", limit=10) == b""


@settings(deadline=None)
@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_ctx_key_round_trip(key: int) -> None:
    assert _abi.ctx_key(_abi.key_ctx(key)) == key


# ---- FfiResult ------------------------------------------------------------------


@settings(deadline=None)
@given(st.text(), st.integers(min_value=1, max_value=2**31 - 1))
def test_error_result_round_trip(message: str, code: int) -> None:
    result = _abi.error_result(message, code)
    assert result.error_code == code
    assert not _is_null(result.error_msg)
    with pytest.raises(PluginCallError) as info:
        _abi.check_result(result, "start", component="s1")
    err = info.value
    assert err.plugin_message == message.replace("\x00", "\\0")
    assert err.error_code == code
    assert err.component == "s1"
    assert str(err).startswith(f"start failed with code {code}")


@settings(deadline=None)
@given(st.text(min_size=1).filter(lambda s: "\x00" not in s))
def test_error_message_is_exact(message: str) -> None:
    with pytest.raises(PluginCallError) as info:
        _abi.check_result(_abi.error_result(message), "stop")
    assert info.value.plugin_message == message
    assert str(info.value) == f"stop failed with code 1: {message}"


def test_ok_result() -> None:
    result = _abi.ok_result()
    assert result.error_code == 0
    assert _is_null(result.error_msg)
    _abi.check_result(result, "start")  # no exception


def test_success_with_a_message_does_not_raise() -> None:
    result = ffi.new("FfiResult *", {"error_code": 0, "error_msg": _abi.malloc_cstring("x")})
    _abi.check_result(result[0], "start")  # no exception, and the message is freed


def test_error_without_message() -> None:
    result = ffi.new("FfiResult *", {"error_code": -7})[0]
    with pytest.raises(PluginCallError) as info:
        _abi.check_result(result, "deprovision")
    assert info.value.plugin_message is None
    assert info.value.error_code == -7


# ---- FfiGetResult -------------------------------------------------------------


@settings(deadline=None)
@given(st.binary(max_size=500))
def test_get_found(data: bytes) -> None:
    value = _abi.get_found(data)
    assert value.found
    assert value.error_code == 0
    assert _is_null(value.error_msg)
    assert value.len == len(data)
    assert not _is_null(value.data)
    if data:
        assert value.cap == len(data)
        assert ffi.buffer(value.data, value.len)[:] == data
        lib.free(value.data)  # the plugin's side of the contract
    else:
        assert value.cap == 0


def test_get_not_found() -> None:
    value = _abi.get_not_found()
    assert not value.found
    assert (value.len, value.cap, value.error_code) == (0, 0, 0)
    assert not _is_null(value.data)
    assert _is_null(value.error_msg)


@settings(deadline=None)
@given(st.text(), st.integers(min_value=1, max_value=2**31 - 1))
def test_get_error(message: str, code: int) -> None:
    value = _abi.get_error(message, code)
    assert not value.found
    assert (value.len, value.cap, value.error_code) == (0, 0, code)
    assert not _is_null(value.data)
    assert _abi.take_error_msg(value.error_msg) == message.replace("\x00", "\\0")


# ---- enums ------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_ENUMS, ids=lambda c: c.__name__)
@settings(deadline=None)
@given(value=int32s)
def test_to_enum(cls: type[enum.IntEnum], value: int) -> None:
    valid = {m.value for m in cls}
    if value in valid:
        assert _abi.to_enum(cls, value, "status") == cls(value)
    else:
        with pytest.raises(PluginProtocolError) as info:
            _abi.to_enum(cls, value, "status")
        text = str(info.value)
        assert text.startswith(f"status: {value} is not a valid {cls.__name__}")
        for member in cls:
            assert f"{member.name}={member.value}" in text


@pytest.mark.parametrize("cls", ALL_ENUMS, ids=lambda c: c.__name__)
def test_to_enum_every_member(cls: type[enum.IntEnum]) -> None:
    for member in cls:
        assert _abi.to_enum(cls, member.value, "x") is member
    with pytest.raises(PluginProtocolError):
        _abi.to_enum(cls, len(cls), "x")
    with pytest.raises(PluginProtocolError):
        _abi.to_enum(cls, -1, "x")


# ---- log entries and lifecycle events --------------------------------------------


def _set_raw_enum(struct_ptr: Any, field: str, value: int) -> None:
    """Store any 32-bit value in an enum field, as a buggy plugin could."""
    ffi.cast("int32_t *", ffi.addressof(struct_ptr, field))[0] = value


def _invalid_value_text(value: int) -> str:
    """The value as reported: as written, or as the unsigned 32-bit pattern
    (an enum with no negative constants is unsigned to the C compiler)."""
    return f"({value}|{value % 2**32})"


def _log_entry(level: int, message: bytes, borrowed: _abi.Borrowed) -> Any:
    entry = ffi.new("FfiLogEntry *")
    _set_raw_enum(entry, "level", level)
    entry.plugin_id = borrowed.str("plugin-a")
    entry.target = borrowed.str("drasi::source")
    entry.message = borrowed.str(message)
    entry.timestamp_us = 1_700_000_000_123_456
    entry.instance_id = borrowed.str("inst-1")
    entry.component_id = borrowed.str("")
    return entry


@settings(deadline=None)
@given(st.sampled_from(list(LogLevel)), st.text())
def test_read_log_entry(level: LogLevel, message: str) -> None:
    borrowed = _abi.Borrowed()
    entry = _log_entry(int(level), message.encode("utf-8"), borrowed)
    msg = _abi.read_log_entry(entry)
    assert msg.level is level
    assert msg.message == message
    assert msg.plugin_id == "plugin-a"
    assert msg.target == "drasi::source"
    assert msg.instance_id == "inst-1"
    assert msg.component_id == ""
    assert msg.timestamp_us == 1_700_000_000_123_456


@settings(deadline=None)
@given(int32s.filter(lambda v: not 0 <= v <= 4))
def test_read_log_entry_invalid_level(level: int) -> None:
    borrowed = _abi.Borrowed()
    msg = _abi.read_log_entry(_log_entry(level, b"boom", borrowed))
    assert msg.level is LogLevel.ERROR
    assert re.fullmatch(rf"\[invalid log level {_invalid_value_text(level)}\] boom", msg.message)


@settings(deadline=None)
@given(invalid_utf8)
def test_read_log_entry_bad_utf8_is_replaced(data: bytes) -> None:
    borrowed = _abi.Borrowed()
    msg = _abi.read_log_entry(_log_entry(2, data, borrowed))
    assert msg.message == data.decode("utf-8", errors="replace")


def _lifecycle(event_type: int, message: str, borrowed: _abi.Borrowed) -> Any:
    event = ffi.new("FfiLifecycleEvent *")
    event.component_id = borrowed.str("r1")
    event.component_type = borrowed.str("reaction")
    _set_raw_enum(event, "event_type", event_type)
    event.message = borrowed.str(message)
    event.timestamp_us = 42
    return event


EXPECTED_STATUS = {
    0: ComponentStatus.STARTING,
    1: ComponentStatus.RUNNING,
    2: ComponentStatus.STOPPING,
    3: ComponentStatus.STOPPED,
    4: ComponentStatus.ERROR,
}


@settings(deadline=None)
@given(st.sampled_from(sorted(EXPECTED_STATUS)), st.text())
def test_read_lifecycle_event(event_type: int, message: str) -> None:
    borrowed = _abi.Borrowed()
    event, component_type = _abi.read_lifecycle_event(_lifecycle(event_type, message, borrowed))
    assert component_type == "reaction"
    assert event.component_id == "r1"
    assert event.component_type == "reaction"
    assert event.status is EXPECTED_STATUS[event_type]
    assert event.message == message
    assert event.timestamp_us == 42


@settings(deadline=None)
@given(int32s.filter(lambda v: v not in EXPECTED_STATUS))
def test_read_lifecycle_event_invalid_type(event_type: int) -> None:
    borrowed = _abi.Borrowed()
    with pytest.raises(
        PluginProtocolError,
        match=rf"^lifecycle event type: {_invalid_value_text(event_type)} is not a valid "
        r"LifecycleEventType \(STARTING=0, STARTED=1, STOPPING=2, STOPPED=3, ERROR=4\)$",
    ):
        _abi.read_lifecycle_event(_lifecycle(event_type, "", borrowed))


# ---- no leaks on the C heap ------------------------------------------------------


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _heap_in_use() -> Callable[[], int] | None:
    """Bytes in use on glibc's heap, or None when mallinfo2 is unavailable."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    fn = getattr(libc, "mallinfo2", None)
    if fn is None:
        return None
    fn.restype = _MallInfo2
    fn.argtypes = []
    return lambda: int(fn().uordblks + fn().hblkhd)


_in_use = _heap_in_use()
_needs_mallinfo = pytest.mark.skipif(_in_use is None, reason="needs glibc's mallinfo2")
_MESSAGE = "x" * 2000
_ROUNDS = 5000  # a leak of each message would show as ~10 MB


def _growth(step: Callable[[], None]) -> int:
    assert _in_use is not None
    for _ in range(200):
        step()
    before = _in_use()
    for _ in range(_ROUNDS):
        step()
    return _in_use() - before


@_needs_mallinfo
def test_check_result_frees_the_message() -> None:
    def step() -> None:
        with pytest.raises(PluginCallError):
            _abi.check_result(_abi.error_result(_MESSAGE), "start")

    assert _growth(step) < 1_000_000


@_needs_mallinfo
def test_take_owned_str_and_array_free() -> None:
    def step() -> None:
        _abi.take_owned_str(_abi.owned_str(_MESSAGE), "s")
        _abi.take_string_array(_abi.string_array([_MESSAGE, "", "q"]), "a")

    assert _growth(step) < 1_000_000


@_needs_mallinfo
def test_leak_detector_sees_a_leak() -> None:
    # The measurement above is meaningful: a real leak of the same size shows.
    leaked: list[object] = []

    def step() -> None:
        leaked.append(_abi.malloc_cstring(_MESSAGE))

    try:
        assert _growth(step) > 5_000_000
    finally:
        for ptr in leaked:
            lib.free(ptr)
