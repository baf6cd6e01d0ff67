"""Sigstore trust roots (``trusted_root.json``).

A trusted root names everything a keyless signature is checked against: the
Fulcio certificate authorities (each a certificate chain, leaf-most first, with
the period in which it may issue), the Rekor transparency logs (public key,
log id, validity), the certificate-transparency logs and the RFC 3161 timestamp
authorities.  This module only parses and indexes that document; the checks
live in :mod:`drasi_host.registry.simplesigning` (sigstore-python
reads the same file itself for bundles).

The parser follows the protobuf-JSON form of
``application/vnd.dev.sigstore.trustedroot+json;version=0.1`` and is tolerant:
timestamps may carry fractional seconds or an offset, optional fields
(``uri``, ``subject``, ``validFor.end``, ``logId``, ...) may be missing, and a
key in an unsupported encoding leaves that log unusable instead of failing the
whole root.  The production root is bundled as package data and is the
default.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import load_der_public_key

from drasi_host.errors import RegistryError

TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"

_TIMESTAMP_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})?"
)


def parse_timestamp(text: str) -> dt.datetime:
    """Parse an RFC 3339 timestamp (fractional seconds of any length, ``Z`` or
    an offset; no zone means UTC) into an aware UTC datetime."""
    match = _TIMESTAMP_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    tz = dt.timezone.utc
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        tz = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    when = dt.datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz
    )
    return when.astimezone(dt.timezone.utc)


@attrs.frozen
class ValidityPeriod:
    """A half-open-ended period; ``None`` bounds are unbounded."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def contains(self, when: dt.datetime) -> bool:
        if self.start is not None and when < self.start:
            return False
        return not (self.end is not None and when > self.end)


@attrs.frozen
class CertificateAuthority:
    """A Fulcio CA or a timestamp authority: its chain, leaf-most first."""

    certificates: tuple[x509.Certificate, ...]
    valid_for: ValidityPeriod
    subject: str | None = None
    uri: str | None = None


@attrs.frozen
class TransparencyLog:
    """A Rekor log or a CT log.  ``public_key`` is ``None`` when the key's
    encoding is not supported; such a log can never verify anything."""

    log_id: bytes
    public_key: PublicKeyTypes | None
    valid_for: ValidityPeriod
    key_details: str | None = None
    base_url: str | None = None
    hash_algorithm: str | None = None


@attrs.frozen
class TrustedRoot:
    """A parsed ``trusted_root.json``."""

    certificate_authorities: tuple[CertificateAuthority, ...] = ()
    tlogs: tuple[TransparencyLog, ...] = ()
    ctlogs: tuple[TransparencyLog, ...] = ()
    timestamp_authorities: tuple[CertificateAuthority, ...] = ()
    media_type: str | None = None
    source: str = "trusted root"

    def tlog(self, log_id: bytes) -> TransparencyLog | None:
        """The Rekor log with this id (SHA-256 of its key), if trusted."""
        for log in self.tlogs:
            if log.log_id == log_id:
                return log
        return None

    @classmethod
    def from_json(
        cls, data: bytes | str | Mapping[str, Any], source: str = "trusted root"
    ) -> TrustedRoot:
        """Parse a trusted root document; malformed input raises
        :class:`RegistryError` naming ``source``."""
        try:
            document = json.loads(data) if isinstance(data, (bytes, str)) else data
            if not isinstance(document, Mapping):
                raise ValueError("the document is not a JSON object")
            media_type = document.get("mediaType")
            if media_type is not None and not str(media_type).startswith(
                "application/vnd.dev.sigstore.trustedroot"
            ):
                raise ValueError(f"unexpected mediaType {media_type!r}")
            return cls(
                certificate_authorities=tuple(
                    _authority(item) for item in _list(document, "certificateAuthorities")
                ),
                tlogs=tuple(_log(item) for item in _list(document, "tlogs")),
                ctlogs=tuple(_log(item) for item in _list(document, "ctlogs")),
                timestamp_authorities=tuple(
                    _authority(item) for item in _list(document, "timestampAuthorities")
                ),
                media_type=media_type,
                source=source,
            )
        except (ValueError, TypeError, KeyError, binascii.Error) as exc:
            raise RegistryError(f"{source}: invalid Sigstore trusted root: {exc}") from exc

    @classmethod
    def from_path(cls, path: Path | str) -> TrustedRoot:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise RegistryError(f"{path}: cannot read Sigstore trusted root: {exc}") from exc
        return cls.from_json(data, source=str(path))

    @classmethod
    def production(cls) -> TrustedRoot:
        """The bundled Sigstore public-good (production) trusted root."""
        return _production_root()


def load_trusted_root(path: Path | str | None) -> TrustedRoot:
    """``None`` → the bundled production root; else the file at ``path``."""
    return TrustedRoot.production() if path is None else TrustedRoot.from_path(path)


@functools.lru_cache(maxsize=1)
def _production_root() -> TrustedRoot:
    data = resources.files("drasi_host.registry.data").joinpath("trusted_root.json").read_bytes()
    return TrustedRoot.from_json(data, source="bundled Sigstore production trusted_root.json")


# -- helpers ---------------------------------------------------------------


def _list(document: Mapping[str, Any], key: str) -> Iterable[Mapping[str, Any]]:
    value = document.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise ValueError(f"{key} must be a list of objects")
    return value


def _validity(item: Mapping[str, Any]) -> ValidityPeriod:
    period = item.get("validFor") or {}
    if not isinstance(period, Mapping):
        raise ValueError("validFor must be an object")
    start, end = period.get("start"), period.get("end")
    return ValidityPeriod(
        start=parse_timestamp(start) if start else None,
        end=parse_timestamp(end) if end else None,
    )


def _subject(item: Mapping[str, Any]) -> str | None:
    subject = item.get("subject")
    if not isinstance(subject, Mapping):
        return None
    parts = [f"O={subject['organization']}"] if subject.get("organization") else []
    if subject.get("commonName"):
        parts.append(f"CN={subject['commonName']}")
    return ",".join(parts) or None


def _authority(item: Mapping[str, Any]) -> CertificateAuthority:
    chain = item.get("certChain") or {}
    raw = chain.get("certificates") if isinstance(chain, Mapping) else None
    if not raw:
        raise ValueError("a certificate authority has no certChain.certificates")
    certificates = tuple(
        x509.load_der_x509_certificate(base64.b64decode(entry["rawBytes"], validate=True))
        for entry in raw
    )
    uri = item.get("uri")
    return CertificateAuthority(
        certificates=certificates,
        valid_for=_validity(item),
        subject=_subject(item),
        uri=str(uri) if uri else None,
    )


def _log(item: Mapping[str, Any]) -> TransparencyLog:
    public_key = item.get("publicKey")
    if not isinstance(public_key, Mapping) or not public_key.get("rawBytes"):
        raise ValueError("a transparency log has no publicKey.rawBytes")
    raw = base64.b64decode(public_key["rawBytes"], validate=True)
    key: PublicKeyTypes | None
    try:
        key = load_der_public_key(raw)
    except (ValueError, TypeError):
        key = None
    log_id_field = item.get("logId")
    if isinstance(log_id_field, Mapping) and log_id_field.get("keyId"):
        log_id = base64.b64decode(log_id_field["keyId"], validate=True)
    else:
        log_id = hashlib.sha256(raw).digest()
    base_url = item.get("baseUrl")
    hash_algorithm = item.get("hashAlgorithm")
    key_details = public_key.get("keyDetails")
    return TransparencyLog(
        log_id=log_id,
        public_key=key,
        valid_for=_validity(public_key),
        key_details=str(key_details) if key_details else None,
        base_url=str(base_url) if base_url else None,
        hash_algorithm=str(hash_algorithm) if hash_algorithm else None,
    )


__all__ = [
    "TRUSTED_ROOT_MEDIA_TYPE",
    "CertificateAuthority",
    "TransparencyLog",
    "TrustedRoot",
    "ValidityPeriod",
    "load_trusted_root",
    "parse_timestamp",
]
