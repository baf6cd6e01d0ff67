"""The data model: enums and value classes shared by the proxies, the bridges
and the payload codecs.

Design:

* The enums are :class:`enum.IntEnum` whose values are the C values of the ABI
  (``FfiComponentStatus``, ``FfiChangeOp``, ...), so marshalling is a plain
  ``int()`` one way and an enum lookup the other.
* The payload documents (:class:`SourceChange`, :class:`Element`,
  :class:`ElementReference`, :class:`ResultDiff`, :class:`QueryResult`) are
  frozen :class:`msgspec.Struct` classes: the codecs of
  :mod:`drasi_host.payloads` decode payload bytes straight into them and
  encode them straight to bytes.  Calling one of these classes checks and
  converts its arguments (labels and grouping keys become tuples, the element
  and diff types are checked, a naive timestamp gets UTC); decoding does not
  repeat that work, the typed decoder has done it.  Every other value object
  is a frozen attrs class.
* Fields holding JSON documents (``properties``, ``data``, ``metadata``, ...)
  are dicts: they take part in ``==`` but not in ``hash()``, so equal objects
  still hash equally and a value whose documents differ simply collides.
* Events received from a plugin (:class:`SourceEventWrapper`,
  :class:`BootstrapEvent`, :class:`ControlEvent`) live in :mod:`drasi_host.events` and are
  re-exported here.
* Query result timestamps are timezone-aware; a naive ``datetime`` is taken
  to be UTC and gets ``tzinfo=UTC`` attached when the :class:`QueryResult` is
  built.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any, Literal, overload

import attrs
import msgspec

from drasi_host.events import BootstrapEvent, ControlEvent, SourceEventWrapper

#: The ``logging`` level plugin TRACE messages are logged at (below DEBUG).
TRACE = 5

ElementType = Literal["node", "relation"]
DiffType = Literal["ADD", "DELETE", "UPDATE", "aggregation", "noop"]

ELEMENT_TYPES: tuple[str, ...] = ("node", "relation")
DIFF_TYPES: tuple[str, ...] = ("ADD", "DELETE", "UPDATE", "aggregation", "noop")
#: The largest ``effective_from`` (an unsigned 64-bit integer).
U64_MAX = 2**64 - 1


# --------------------------------------------------------------------- enums


class _NamedIntEnum(enum.IntEnum):
    """An ``IntEnum`` that prints as its name (``str``, ``format``): ``RUNNING``, not ``2``."""

    def __str__(self) -> str:
        return self.name

    def __format__(self, spec: str) -> str:
        return format(self.name, spec)


class ComponentStatus(_NamedIntEnum):
    """``FfiComponentStatus``.  ``ADDED`` (registered, not started) and
    ``REMOVED`` (removed from the graph) exist only in FFI 0.13: a 0.4 plugin
    reporting them breaks its ABI."""

    STOPPED = 0
    STARTING = 1
    RUNNING = 2
    STOPPING = 3
    RECONFIGURING = 4
    ERROR = 5
    ADDED = 6
    REMOVED = 7


class RecoveryPolicy(_NamedIntEnum):
    """What an FFI 0.13 reaction wants after a gap in its results
    (``default_recovery_policy_fn``): fail (``STRICT``), start over from a
    snapshot (``AUTO_RESET``) or go on past the gap (``AUTO_SKIP_GAP``)."""

    STRICT = 0
    AUTO_RESET = 1
    AUTO_SKIP_GAP = 2


class DispatchMode(_NamedIntEnum):
    """``FfiDispatchMode``."""

    BROADCAST = 0
    CHANNEL = 1


class ChangeOp(_NamedIntEnum):
    """``FfiChangeOp``; ``.wire`` is the name used in payload documents."""

    INSERT = 0
    UPDATE = 1
    DELETE = 2

    @property
    def wire(self) -> str:
        """``"insert"``, ``"update"`` or ``"delete"``."""
        return _OP_TO_WIRE[self]

    @classmethod
    def from_wire(cls, name: str) -> ChangeOp:
        """The operation named ``name`` in a payload document; ``ValueError``
        for any other name."""
        try:
            return OP_FROM_WIRE[name]
        except (KeyError, TypeError):
            raise ValueError(
                f"unknown change operation {name!r} (expected one of "
                f"{', '.join(repr(n) for n in OP_FROM_WIRE)})"
            ) from None


_OP_TO_WIRE: dict[ChangeOp, str] = {
    ChangeOp.INSERT: "insert",
    ChangeOp.UPDATE: "update",
    ChangeOp.DELETE: "delete",
}
#: Payload-document operation names to :class:`ChangeOp`.
OP_FROM_WIRE: dict[str, ChangeOp] = {name: op for op, name in _OP_TO_WIRE.items()}


class LogLevel(_NamedIntEnum):
    """``FfiLogLevel``."""

    ERROR = 0
    WARN = 1
    INFO = 2
    DEBUG = 3
    TRACE = 4

    def to_logging(self) -> int:
        """The matching :mod:`logging` level; TRACE is :data:`TRACE` (5)."""
        return _LOGGING_LEVELS[self]


_LOGGING_LEVELS: dict[LogLevel, int] = {
    LogLevel.ERROR: logging.ERROR,
    LogLevel.WARN: logging.WARNING,
    LogLevel.INFO: logging.INFO,
    LogLevel.DEBUG: logging.DEBUG,
    LogLevel.TRACE: TRACE,
}


class LifecycleEventType(_NamedIntEnum):
    """``FfiLifecycleEventType``."""

    STARTING = 0
    STARTED = 1
    STOPPING = 2
    STOPPED = 3
    ERROR = 4

    def to_status(self) -> ComponentStatus:
        """The component status this event announces."""
        return _LIFECYCLE_STATUS[self]


_LIFECYCLE_STATUS: dict[LifecycleEventType, ComponentStatus] = {
    LifecycleEventType.STARTING: ComponentStatus.STARTING,
    LifecycleEventType.STARTED: ComponentStatus.RUNNING,
    LifecycleEventType.STOPPING: ComponentStatus.STOPPING,
    LifecycleEventType.STOPPED: ComponentStatus.STOPPED,
    LifecycleEventType.ERROR: ComponentStatus.ERROR,
}


class CredentialKind(_NamedIntEnum):
    """``FfiCredentialType``."""

    USERNAME_PASSWORD = 0
    TOKEN = 1
    CERTIFICATE = 2


# ------------------------------------------------------------------ helpers


def _str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    """Labels and ids as a tuple; a bare string is refused (it would be
    split into characters)."""
    if isinstance(values, str):
        raise TypeError(f"expected a list of strings, not the string {values!r}")
    return tuple(values)


# ------------------------------------------------------------ source changes


#: Build a wire class instance without ``_check`` (arguments known to fit).
_unchecked = msgspec.StructMeta.__call__


class _Checked(msgspec.StructMeta):
    """Metaclass of the wire classes that check or convert what a caller
    passes: calling the class runs msgspec's ``__init__`` and then the
    instance's ``_check()``.  The payload decoders build instances without
    calling the class, so decoded values pay for neither (the typed decoder
    has checked them already)."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return _unchecked(cls, *args, **kwargs)._check()


class ElementReference(msgspec.Struct, frozen=True, gc=False):
    """Identifies an element: the source it came from and its id there."""

    source_id: str
    element_id: str


class Element(msgspec.Struct, frozen=True, omit_defaults=True, metaclass=_Checked):
    """A graph element: a node, or a relation from ``out_node`` to ``in_node``.

    ``effective_from`` is milliseconds since the Unix epoch.  A deleted
    element may carry no properties (``{}``) and, for a relation, no
    ``in_node``/``out_node``.  ``labels`` may be given as any iterable of
    strings (not a bare string) and is stored as a tuple.

    ``type`` is None only for the element of an FFI 0.13 ``Delete``, which
    carries only the metadata: then ``properties`` is ``{}`` and there are
    no ``in_node``/``out_node``.  Such an element cannot be encoded as a 0.4
    payload (the documents need a type).
    """

    type: ElementType | None
    reference: ElementReference
    labels: tuple[str, ...]
    effective_from: Annotated[int, msgspec.Meta(ge=0)]  # decoders check <= U64_MAX
    # UNSET only while a decoder checks a delete's minimal element; every
    # Element handed out has a dict here.
    properties: dict[str, Any] = msgspec.UNSET  # type: ignore[assignment]
    in_node: ElementReference | None = None
    out_node: ElementReference | None = None

    if TYPE_CHECKING:  # the signature the class call has (msgspec builds __init__)

        def __init__(
            self,
            type: ElementType | None,
            reference: ElementReference,
            labels: Iterable[str],
            effective_from: int,
            properties: dict[str, Any],
            in_node: ElementReference | None = None,
            out_node: ElementReference | None = None,
        ) -> None: ...

    def _check(self) -> Element:
        if type(self.labels) is not tuple:
            msgspec.structs.force_setattr(self, "labels", _str_tuple(self.labels))
        if self.properties is msgspec.UNSET:  # type: ignore[comparison-overlap]
            raise TypeError("Element() missing required argument: 'properties'")
        if self.type != "node" and self.type != "relation":
            if self.type is not None:
                raise ValueError(f"Element type must be 'node' or 'relation', not {self.type!r}")
            if self.properties != {} or self.in_node is not None or self.out_node is not None:
                raise ValueError(
                    "an Element of type None (the metadata of a deleted element) has "
                    "properties={} and no in_node/out_node"
                )
        return self

    def __hash__(self) -> int:
        return hash(
            (
                self.type,
                self.reference,
                self.labels,
                self.effective_from,
                self.in_node,
                self.out_node,
            )
        )


class SourceChange(msgspec.Struct, frozen=True, gc=False):
    """One change a source reports: insert, update or delete of an element.

    Not tracked by the cyclic garbage collector: it holds an operation and an
    element, and only an element whose properties contain the change itself
    (no payload can carry that) could make a cycle."""

    op: ChangeOp
    element: Element


# ------------------------------------------------------------- query results


class ResultDiff(msgspec.Struct, frozen=True, omit_defaults=True, metaclass=_Checked):
    """One entry of a query result; build it with the classmethods.
    ``grouping_keys`` may be given as any iterable of strings and is stored
    as a tuple."""

    type: DiffType
    data: dict[str, Any] | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    grouping_keys: tuple[str, ...] | None = None

    if TYPE_CHECKING:  # the signature the class call has (msgspec builds __init__)

        def __init__(
            self,
            type: DiffType,
            data: dict[str, Any] | None = None,
            before: dict[str, Any] | None = None,
            after: dict[str, Any] | None = None,
            grouping_keys: Iterable[str] | None = None,
        ) -> None: ...

    def _check(self) -> ResultDiff:
        if self.type not in DIFF_TYPES:
            raise ValueError(f"ResultDiff type must be one of {DIFF_TYPES}, not {self.type!r}")
        keys = self.grouping_keys
        if keys is not None and type(keys) is not tuple:
            msgspec.structs.force_setattr(self, "grouping_keys", _str_tuple(keys))
        return self

    def __hash__(self) -> int:
        return hash((self.type, self.grouping_keys))

    # The classmethods know their arguments fit: they skip ``_check``.

    @classmethod
    def add(cls, data: dict[str, Any]) -> ResultDiff:
        """A row entered the result."""
        return _unchecked(cls, "ADD", data)  # type: ignore[no-any-return]

    @classmethod
    def delete(cls, data: dict[str, Any]) -> ResultDiff:
        """A row left the result."""
        return _unchecked(cls, "DELETE", data)  # type: ignore[no-any-return]

    @classmethod
    def update(
        cls,
        data: dict[str, Any],
        before: dict[str, Any],
        after: dict[str, Any],
        grouping_keys: Iterable[str] | None = None,
    ) -> ResultDiff:
        """A row changed from ``before`` to ``after``."""
        return cls(
            "UPDATE",
            data=data,
            before=before,
            after=after,
            grouping_keys=grouping_keys,
        )

    @classmethod
    def aggregation(cls, before: dict[str, Any] | None, after: dict[str, Any]) -> ResultDiff:
        """An aggregate value changed (``before`` is None for the first one)."""
        return _unchecked(cls, "aggregation", None, before, after)  # type: ignore[no-any-return]

    @classmethod
    def noop(cls) -> ResultDiff:
        """Nothing changed."""
        return _unchecked(cls, "noop")  # type: ignore[no-any-return]


class QueryResult(msgspec.Struct, frozen=True, metaclass=_Checked):
    """What a continuous query hands a reaction.  A naive ``timestamp`` is
    taken to be UTC (``tzinfo`` is attached)."""

    query_id: str
    timestamp: datetime
    results: list[ResultDiff]
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)

    def _check(self) -> QueryResult:
        timestamp = self.timestamp
        if timestamp.__class__ is datetime and timestamp.tzinfo is timezone.utc:
            return self
        if not isinstance(timestamp, datetime):
            raise TypeError(f"timestamp must be a datetime, not {type(timestamp).__name__}")
        if timestamp.tzinfo is None or timestamp.utcoffset() is None:
            msgspec.structs.force_setattr(self, "timestamp", timestamp.replace(tzinfo=timezone.utc))
        return self

    def __hash__(self) -> int:
        return hash((self.query_id, self.timestamp))


# --------------------------------------------------------------- credentials


class _TokenAttribute:
    """``Credentials.token(username, token)`` builds token credentials, while
    ``credentials.token`` reads the token: the API uses one name for both."""

    @overload
    def __get__(
        self, instance: None, owner: type[Credentials]
    ) -> Callable[[str, str], Credentials]: ...

    @overload
    def __get__(self, instance: Credentials, owner: type[Credentials]) -> str | None: ...

    def __get__(
        self, instance: Credentials | None, owner: type[Credentials]
    ) -> Callable[[str, str], Credentials] | str | None:
        if instance is not None:
            return instance._token

        def token(username: str, token: str) -> Credentials:
            """Token credentials (``username`` and ``token``)."""
            return owner(CredentialKind.TOKEN, username=username, token=token)

        return token


class Credentials:
    """Credentials an identity provider hands a plugin, built with
    :meth:`username_password`, :meth:`token` or :meth:`certificate`.

    Immutable; ``repr()`` never shows the password, token or private key.
    """

    __slots__ = ("_token", "cert_pem", "key_pem", "kind", "password", "username")

    kind: CredentialKind
    username: str | None
    password: str | None
    cert_pem: str | None
    key_pem: str | None
    _token: str | None

    token = _TokenAttribute()

    def __init__(
        self,
        kind: CredentialKind,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        cert_pem: str | None = None,
        key_pem: str | None = None,
    ) -> None:
        kind = CredentialKind(kind)
        values = {
            "username": username,
            "password": password,
            "token": token,
            "cert_pem": cert_pem,
            "key_pem": key_pem,
        }
        for name in _CREDENTIAL_FIELDS[kind]:
            if values[name] is None:
                raise ValueError(f"{kind.name} credentials need a {name}")
        setattr_ = object.__setattr__
        setattr_(self, "kind", kind)
        setattr_(self, "username", username)
        setattr_(self, "password", password)
        setattr_(self, "_token", token)
        setattr_(self, "cert_pem", cert_pem)
        setattr_(self, "key_pem", key_pem)

    @classmethod
    def username_password(cls, username: str, password: str) -> Credentials:
        """Username and password credentials."""
        return cls(CredentialKind.USERNAME_PASSWORD, username=username, password=password)

    @classmethod
    def certificate(cls, cert_pem: str, key_pem: str, username: str | None = None) -> Credentials:
        """Client certificate credentials (PEM text), optionally with a username."""
        return cls(
            CredentialKind.CERTIFICATE, username=username, cert_pem=cert_pem, key_pem=key_pem
        )

    def _key(self) -> tuple[object, ...]:
        return (self.kind, self.username, self.password, self._token, self.cert_pem, self.key_pem)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Credentials)
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self) -> tuple[Callable[..., Credentials], tuple[object, ...]]:
        return (_rebuild_credentials, self._key())

    def __setattr__(self, name: str, value: object) -> None:
        raise attrs.exceptions.FrozenInstanceError()

    def __delattr__(self, name: str) -> None:
        raise attrs.exceptions.FrozenInstanceError()

    def __repr__(self) -> str:
        parts = [f"kind={self.kind.name}", f"username={self.username!r}"]
        if self.password is not None:
            parts.append("password=<hidden>")
        if self._token is not None:
            parts.append("token=<hidden>")
        if self.cert_pem is not None:
            parts.append(f"cert_pem=<{len(self.cert_pem)} chars>")
        if self.key_pem is not None:
            parts.append("key_pem=<hidden>")
        return f"Credentials({', '.join(parts)})"


def _rebuild_credentials(
    kind: CredentialKind,
    username: str | None,
    password: str | None,
    token: str | None,
    cert_pem: str | None,
    key_pem: str | None,
) -> Credentials:
    return Credentials(
        kind,
        username=username,
        password=password,
        token=token,
        cert_pem=cert_pem,
        key_pem=key_pem,
    )


_CREDENTIAL_FIELDS: dict[CredentialKind, tuple[str, ...]] = {
    CredentialKind.USERNAME_PASSWORD: ("username", "password"),
    CredentialKind.TOKEN: ("username", "token"),
    CredentialKind.CERTIFICATE: ("cert_pem", "key_pem"),
}


# --------------------------------------------------- settings and contexts


@attrs.frozen
class SubscriptionSettings:
    """What a query subscribes to: a source, and the labels it cares about."""

    source_id: str
    query_id: str
    enable_bootstrap: bool
    nodes: tuple[str, ...] = attrs.field(converter=_str_tuple)
    relations: tuple[str, ...] = attrs.field(converter=_str_tuple)


@attrs.frozen
class BootstrapRequest:
    """A query's request for a source's initial data."""

    query_id: str
    node_labels: tuple[str, ...] = attrs.field(converter=_str_tuple)
    relation_labels: tuple[str, ...] = attrs.field(converter=_str_tuple)
    request_id: str


@attrs.frozen
class BootstrapContext:
    """Where a bootstrap request comes from."""

    server_id: str
    source_id: str


@attrs.frozen
class SourceRuntimeContext:
    """Handed to a source's ``initialize``; ``state_store`` is a
    ``StateStoreProvider`` and ``identity_provider`` an ``IdentityProvider``
    (or None)."""

    instance_id: str
    source_id: str
    state_store: Any = attrs.field(default=None, hash=False)
    identity_provider: Any = attrs.field(default=None, hash=False)


@attrs.frozen
class ReactionRuntimeContext:
    """Handed to a reaction's ``initialize``; see :class:`SourceRuntimeContext`.
    ``snapshot_fetcher`` (a :class:`~drasi_host.protocols.SnapshotFetcher`,
    optional) gives a 0.13 reaction the current rows of a query; 0.4
    reactions ignore it."""

    instance_id: str
    reaction_id: str
    state_store: Any = attrs.field(default=None, hash=False)
    identity_provider: Any = attrs.field(default=None, hash=False)
    snapshot_fetcher: Any = attrs.field(default=None, hash=False)


# ---------------------------------------------------------- logs and events


@attrs.frozen
class LogMessage:
    """One log line a plugin emitted.  ``timestamp_us``: microseconds since
    the Unix epoch."""

    level: LogLevel
    message: str
    instance_id: str
    component_id: str
    plugin_id: str
    target: str
    timestamp_us: int


@attrs.frozen
class ComponentEvent:
    """A lifecycle event of a component (``component_type``: ``"source"``,
    ``"reaction"``, ...)."""

    component_id: str
    component_type: str
    status: ComponentStatus
    message: str | None
    timestamp_us: int


__all__ = [
    "DIFF_TYPES",
    "ELEMENT_TYPES",
    "OP_FROM_WIRE",
    "TRACE",
    "BootstrapContext",
    "BootstrapEvent",
    "BootstrapRequest",
    "ChangeOp",
    "ComponentEvent",
    "ComponentStatus",
    "ControlEvent",
    "CredentialKind",
    "Credentials",
    "DiffType",
    "DispatchMode",
    "Element",
    "ElementReference",
    "ElementType",
    "LifecycleEventType",
    "LogLevel",
    "LogMessage",
    "QueryResult",
    "ReactionRuntimeContext",
    "RecoveryPolicy",
    "ResultDiff",
    "SourceChange",
    "SourceEventWrapper",
    "SourceRuntimeContext",
    "SubscriptionSettings",
]
