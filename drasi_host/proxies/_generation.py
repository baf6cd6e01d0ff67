"""The ABI generation of a plugin's components: one object per generation.

A factory chooses its :class:`Generation` once, from the plugin's
``abi_version`` (:func:`generation`), and hands it to every instance proxy it
creates.  Each place where the 0.4 and 0.13 ABIs differ for components
(ABI-0.13.md section 13.3) is a member here, so the proxies never test the
version themselves:

* ``ffi`` / ``lib``: the cffi declarations of the generation (the struct
  names are the same, the layouts are not) and :meth:`borrowed` strings of
  its ``FfiStr`` type;
* :meth:`created`: the result of a factory's ``create_*`` call (a bare
  pointer in 0.4, an ``FfiCreateResult`` by value in 0.13);
* :meth:`runtime_context`: the ``FfiRuntimeContext`` of ``initialize_fn``
  (80 bytes in 0.4, 96 in 0.13 with ``snapshot_fetcher`` and
  ``wal_provider``);
* :meth:`subscribe_args`: the arguments of ``subscribe_fn`` (6 in 0.4, 9 in
  0.13);
* :meth:`status`: the ``FfiComponentStatus`` values the generation has
  (0-5 in 0.4, 0-7 in 0.13);
* the data paths: :meth:`event_channel` and :meth:`push_ptr` (events the
  plugin pushes: routing hints and payloads in 0.4, MessagePack in 0.13),
  :meth:`result_channel`, :meth:`result_push_ptr` and :attr:`result_codec`
  (query results for reactions).

The vtable members both generations share have the same names, so each
proxy checks one list of required functions; what 0.13 adds is optional.

The unchanged primitives (strings, results, the state store) are marshalled
by :mod:`drasi_host._abi` for both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from .. import _abi, _abi013
from .._abi import NULL, Borrowed, ffi, lib
from .._events013 import RESULT_CODEC_013, EventChannel013, ResultChannel013
from ..channels import EventChannel, ResultChannel
from ..errors import DrasiHostError, PluginProtocolError
from ..models import ComponentStatus, SubscriptionSettings
from ..payloads import PayloadCodec

__all__ = ["GEN_013", "GEN_04", "Created", "Generation", "generation"]

CData = Any


def _address(ptr: CData) -> int:
    """The address a pointer of either cffi module holds."""
    return int(ffi.cast("uintptr_t", ptr))


class Created:
    """What a factory's ``create_*`` call produced: the plugin's heap block
    (``ptr``, NULL on failure) or the failure's text and code."""

    __slots__ = ("code", "message", "ptr")

    def __init__(self, ptr: CData, message: str | None = None, code: int | None = None) -> None:
        self.ptr = ptr
        self.message = message
        self.code = code

    @property
    def ok(self) -> bool:
        return bool(self.ptr != NULL)


class Generation:
    """The members every generation provides (see the module doc)."""

    abi_version: ClassVar[str]
    #: The cffi declarations (``ffi``) and compiled module (``lib``).
    ffi: ClassVar[Any]
    lib: ClassVar[Any]
    #: The highest ``FfiComponentStatus`` value of the generation.
    max_status: ClassVar[int]

    def borrowed(self) -> Borrowed:
        """Buffers for ``FfiStr`` arguments of one call, in this generation's types."""
        return Borrowed(self.ffi)

    def copy_block(self, ptr: CData, ctype: str) -> CData:
        """A host-owned copy of the plugin's heap block ``ptr`` (a ``ctype``),
        then ``free(ptr)``."""
        copy = self.ffi.new(f"{ctype} *", self.ffi.cast(f"{ctype} *", ptr)[0])
        lib.free(ptr)
        return copy

    def created(self, raw: CData) -> Created:
        """Interpret what a ``create_*`` call returned (plugin messages freed)."""
        raise NotImplementedError

    def subscribe_args(self, b: Borrowed, settings: SubscriptionSettings) -> tuple[Any, ...]:
        """The arguments of ``subscribe_fn`` after ``state``."""
        return (
            b.str(settings.source_id),
            bool(settings.enable_bootstrap),
            b.str(settings.query_id),
            b.str(_abi_json(settings.nodes)),
            b.str(_abi_json(settings.relations)),
        )

    def runtime_context(
        self,
        b: Borrowed,
        *,
        instance_id: str,
        component_id: str,
        callback_key: int,
        state_store: CData | None,
        identity_provider: CData | None,
        snapshot_fetcher: CData | None = None,
    ) -> CData:
        """A ``FfiRuntimeContext *`` for ``initialize_fn``: the per-instance
        log and lifecycle callbacks with ``callback_key`` as their context,
        and the host-built service vtables given (pointers of either cffi
        module, or None for NULL).  ``b`` keeps the strings alive."""
        rc = self.ffi.new("FfiRuntimeContext *")
        rc.instance_id = b.str(instance_id)
        rc.component_id = b.str(component_id)
        rc.log_callback = self._fn("LogCallbackFn", lib.dh_log_callback_ptr())
        rc.log_ctx = _abi.key_ctx(callback_key)
        rc.lifecycle_callback = self._fn("LifecycleCallbackFn", lib.dh_lifecycle_callback_ptr())
        rc.lifecycle_ctx = _abi.key_ctx(callback_key)
        if state_store is not None:
            rc.state_store = self._ptr("const StateStoreVtable *", state_store)
        if identity_provider is not None:
            rc.identity_provider = self._ptr("const IdentityProviderVtable *", identity_provider)
        return rc

    def status(self, raw: int, what: str) -> ComponentStatus:
        """A status a plugin reported; PluginProtocolError outside the
        generation's values."""
        value = _abi.c_int(raw)
        if 0 <= value <= self.max_status:
            return ComponentStatus(value)
        allowed = ", ".join(
            f"{m.name}={m.value}" for m in ComponentStatus if m.value <= self.max_status
        )
        raise PluginProtocolError(f"{what}: {value} is not a valid ComponentStatus ({allowed})")

    # ---- data paths -------------------------------------------------------------------

    def event_channel(
        self, kind: int, codec: PayloadCodec | None, label: str, capacity: int, max_bytes: int
    ) -> EventChannel:
        """A native channel for the events a receiver of ``kind``
        (``DH_KIND_SOURCE_EVENTS`` / ``DH_KIND_BOOTSTRAP_EVENTS``) pushes."""
        raise NotImplementedError

    def push_ptr(self, kind: int) -> CData:
        """The push callback handed to a receiver's ``start_push_fn``."""
        raise NotImplementedError

    def result_channel(self) -> ResultChannel:
        """The results channel of a reaction."""
        raise NotImplementedError

    def result_push_ptr(self) -> CData:
        """The callback handed to a reaction's ``start_result_push_fn``."""
        raise NotImplementedError

    #: The codec of the query results a reaction takes (None: the plugin's own).
    result_codec: ClassVar[PayloadCodec | None] = None

    # ---- helpers ------------------------------------------------------------------

    def _fn(self, ctype: str, ptr: CData) -> CData:
        return ptr

    def _ptr(self, ctype: str, ptr: CData) -> CData:
        return self.ffi.cast(ctype, _address(ptr))

    def __repr__(self) -> str:
        return f"<Generation {self.abi_version}>"


def _abi_json(labels: Sequence[str]) -> str:
    return json.dumps(list(labels), ensure_ascii=False)


class _Gen04(Generation):
    """The 0.4 ABI (``ABI.md``)."""

    abi_version = "0.4"
    ffi = ffi
    lib = lib
    max_status = int(ComponentStatus.ERROR)

    def created(self, raw: CData) -> Created:
        """0.4: the block, or NULL with the reason only in the plugin's log."""
        return Created(raw)

    def event_channel(
        self, kind: int, codec: PayloadCodec | None, label: str, capacity: int, max_bytes: int
    ) -> EventChannel:
        return EventChannel(kind, codec, label, capacity, max_bytes)

    def push_ptr(self, kind: int) -> CData:
        if kind == lib.DH_KIND_BOOTSTRAP_EVENTS:
            return lib.dh_bootstrap_push_ptr()
        return lib.dh_change_push_ptr()

    def result_channel(self) -> ResultChannel:
        return ResultChannel()

    def result_push_ptr(self) -> CData:
        return lib.dh_result_pull_ptr()


class _Gen013(Generation):
    """The FFI 0.13 ABI (``ABI-0.13.md``)."""

    abi_version = "0.13"
    ffi = _abi013.ffi
    lib = _abi013.lib
    max_status = int(ComponentStatus.REMOVED)

    def created(self, raw: CData) -> Created:
        """0.13 (section 3): an ``FfiCreateResult``.  A non-zero code (any
        value) is a failure with the plugin's text (``free()``d; NULL means
        "unknown error"; decoded lossily); code 0 with a NULL block is the
        failure "factory returned null".  A block that comes with a failure
        code is not trusted and left alone."""
        code, ptr, msg = _abi.c_int(raw.error_code), raw.ptr, raw.error_msg
        text = _abi.take_error_msg(msg)
        if code != 0:
            return Created(NULL, text if text is not None else "unknown error", code)
        if ptr == NULL:
            return Created(NULL, "factory returned null", 0)
        return Created(ptr)

    def subscribe_args(self, b: Borrowed, settings: SubscriptionSettings) -> tuple[Any, ...]:
        """0.13 adds ``resume_from_ptr/len`` (NULL, 0: from now) and
        ``request_position_handle`` (false: releasing the handle needs Rust)."""
        return (*super().subscribe_args(b, settings), NULL, 0, False)

    def runtime_context(
        self,
        b: Borrowed,
        *,
        instance_id: str,
        component_id: str,
        callback_key: int,
        state_store: CData | None,
        identity_provider: CData | None,
        snapshot_fetcher: CData | None = None,
    ) -> CData:
        """0.13 adds ``snapshot_fetcher`` (reactions) and ``wal_provider``
        (always NULL: it passes unserialised Rust values, section 10)."""
        rc = super().runtime_context(
            b,
            instance_id=instance_id,
            component_id=component_id,
            callback_key=callback_key,
            state_store=state_store,
            identity_provider=identity_provider,
        )
        if snapshot_fetcher is not None:
            rc.snapshot_fetcher = self._ptr("const SnapshotFetcherVtable *", snapshot_fetcher)
        rc.wal_provider = NULL
        return rc

    def _fn(self, ctype: str, ptr: CData) -> CData:
        return _abi013.cast_fn(ctype, ptr)

    def event_channel(
        self, kind: int, codec: PayloadCodec | None, label: str, capacity: int, max_bytes: int
    ) -> EventChannel:
        """0.13: the payloads are MessagePack whatever ``codec`` says."""
        return EventChannel013(kind, label, capacity, max_bytes)

    def push_ptr(self, kind: int) -> CData:
        if kind == lib.DH_KIND_BOOTSTRAP_EVENTS:
            return _abi013.bootstrap_push_ptr()
        return _abi013.change_push_ptr()

    def result_channel(self) -> ResultChannel:
        return ResultChannel013()

    def result_push_ptr(self) -> CData:
        return _abi013.result_push_ptr()

    result_codec = RESULT_CODEC_013


GEN_04: Generation = _Gen04()
GEN_013: Generation = _Gen013()
_BY_VERSION = {g.abi_version: g for g in (GEN_04, GEN_013)}


def generation(abi_version: str) -> Generation:
    """The :class:`Generation` of ``abi_version`` (``"0.4"`` or ``"0.13"``)."""
    try:
        return _BY_VERSION[abi_version]
    except KeyError:
        raise DrasiHostError(f"no ABI generation {abi_version!r} in this host") from None
